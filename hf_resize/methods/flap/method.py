"""FLAP-style fluctuation pruning (An et al. 2024), a baseline.

A unit's score is the fluctuation of its input channel over the calibration tokens times the squared norm of
the consumer column that reads it: MLP neuron j: Var(h_j) · ||W_down[:, j]||²; query head h: the sum of that
over its head_dim channels of o_proj. Widths are uniform (FLAP's adaptive per-layer structure is not used).
FLAP adds the removed channels' mean output back as a bias; the stock Llama/Qwen/Mistral/Gemma/Phi configs
have no down_proj / o_proj bias, so this baseline offers a least-squares refit instead (``compensate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter
from hf_resize.errors import ConfigError
from hf_resize.groups import head_dim_of, neuron_groups
from hf_resize.methods.base import MethodConfig, MethodSpec, register_method, require_choice, require_number
from hf_resize.methods.refit import least_squares_refit
from hf_resize.methods.selection import head_columns, head_keep, top_units
from hf_resize.methods.statistics import layer_statistic
from hf_resize.methods.targets import planned_widths
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan, Plan

COMPENSATIONS = ("none", "least_squares")


@dataclass
class FLAPConfig(MethodConfig):
    """FLAP-style fluctuation pruning of MLP neurons and attention heads. See MethodConfig.

    Args:
        compensate: ``"none"`` only slices; ``"least_squares"`` refits down_proj / o_proj on the kept inputs.
        damping: ridge term of the refit, relative to the mean diagonal of the kept Gram block (>= 0).
    """

    method_name: ClassVar[str] = "flap"
    needs: ClassVar[frozenset[str]] = frozenset({"mlp_gram", "mlp_mean", "attn_gram", "attn_mean"})
    min_calibration_tokens: ClassVar[int] = 2048

    compensate: str = "none"
    damping: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if "hidden" in self.groups:
            raise ConfigError("flap scores MLP neurons and heads only; leave 'hidden' out of groups.")
        require_choice("compensate", self.compensate, COMPENSATIONS)
        self.damping = require_number("damping", self.damping, 0, "0.01")
        if self.compensate == "none":
            self.min_calibration_tokens = 512  # variances per channel; the refit needs more


def fluctuation(gram: torch.Tensor, total: torch.Tensor, tokens: int) -> torch.Tensor:
    """Per-channel variance over the calibration tokens from Σ x xᵀ and Σ x."""
    mean = total / tokens
    return (gram.diagonal() / tokens - mean.pow(2)).clamp_min(0)


def flap_plan(model: PreTrainedModel, config: FLAPConfig, statistics: dict | None = None) -> Plan:
    adapter = get_adapter(model)
    widths = planned_widths(model, config)
    layers = decoder_layers(model)
    head_dim = head_dim_of(model.config, adapter)
    tokens = int((statistics or {}).get("tokens", 1))
    plans = []
    for group in neuron_groups(model, tuple(config.groups)):
        units, kv_kept = widths[group.name]
        layer = layers[group.layer]
        kind = "mlp" if group.kind == "mlp" else "attn"
        path = f"{adapter.mlp}.{adapter.down_proj}" if kind == "mlp" else f"{adapter.attn}.{adapter.o_proj}"
        weight = layer.get_submodule(path).weight
        size = group.width if kind == "mlp" else group.width * head_dim
        gram = layer_statistic(statistics, f"{kind}_gram", group.layer, (size, size), "flap")
        total = layer_statistic(statistics, f"{kind}_mean", group.layer, (size,), "flap")
        channel = fluctuation(gram, total, tokens) * weight.detach().double().pow(2).sum(0).to(gram.device)
        if kind == "mlp":
            keep = columns = top_units(channel.cpu(), units)
            kv_keep = None
        else:
            q_scores = channel.reshape(group.width, head_dim).sum(1).cpu()
            kv_scores = q_scores.reshape(group.kv_width, group.queries_per_kv).sum(1)
            keep, kv_keep = head_keep(group, q_scores, kv_scores, units, kv_kept, config.head_mode)
            columns = head_columns(keep, head_dim)
        refit = None
        if config.compensate == "least_squares" and units < group.width:
            refit = least_squares_refit(weight, gram, columns, config.damping).to(weight.dtype)
        plans.append(GroupPlan(group, keep=keep, kv_keep=kv_keep, consumer_weight=refit))
    return Plan(method=config.method_name, groups=plans, config=config.to_dict())


register_method(MethodSpec("flap", FLAPConfig, flap_plan, "FLAP-style fluctuation pruning (baseline)"))
