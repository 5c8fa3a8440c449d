"""Wanda-sp (structured Wanda): score units by consumer-weight norm times input activation norm; optionally refit
the consumer by damped least squares on the calibration Gram matrix.

MLP neuron j: ||W_down[:, j]||₂ · sqrt(G_jj). Query head h: ||W_o[:, head h]||_F · sqrt(tr G_hh). KV heads: the sum
of their query heads' scores. Least-squares refit for kept inputs S (a consumer W reading x):
W_new = W G[:, S] (G[S, S] + λI)⁻¹, λ = damping · mean(diag G[S, S]), which minimises Σ ||W x − W_new x_S||² over
the calibration activations (ridge-damped).
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

COMPENSATIONS = ("least_squares", "none")
_HIDDEN_MESSAGE = (
    "wanda_sp cannot reduce the hidden (residual) width: its scores need one consumer per unit. "
    "Leave 'hidden' out of groups (use groups=('mlp', 'heads')), or use method 'magnitude' for the hidden width."
)


@dataclass
class WandaSPConfig(MethodConfig):
    """Wanda-sp: activation-aware structured pruning of MLP neurons and attention heads. See MethodConfig.

    Args:
        compensate: ``"least_squares"`` refits down_proj / o_proj on the calibration Gram matrix for the kept
            inputs; ``"none"`` only slices.
        damping: ridge term of the refit, relative to the mean diagonal of the kept Gram block (>= 0).
    """

    method_name: ClassVar[str] = "wanda_sp"
    needs: ClassVar[frozenset[str]] = frozenset({"mlp_gram", "attn_gram"})
    min_calibration_tokens: ClassVar[int] = 2048

    compensate: str = "least_squares"
    damping: float = 0.01

    def __post_init__(self) -> None:
        super().__post_init__()
        if "hidden" in self.groups:
            raise ConfigError(_HIDDEN_MESSAGE)
        require_choice("compensate", self.compensate, COMPENSATIONS)
        self.damping = require_number("damping", self.damping, 0, "0.01")
        if self.compensate == "none":
            self.min_calibration_tokens = 512  # scores read only the Gram diagonal; the refit needs more


def wanda_sp_plan(model: PreTrainedModel, config: WandaSPConfig, statistics: dict | None = None) -> Plan:
    if "hidden" in config.groups:
        raise ConfigError(_HIDDEN_MESSAGE)
    adapter = get_adapter(model)
    widths = planned_widths(model, config)
    layers = decoder_layers(model)
    head_dim = head_dim_of(model.config, adapter)
    plans = []
    for group in neuron_groups(model, tuple(config.groups)):
        units, kv_kept = widths[group.name]
        layer = layers[group.layer]
        if group.kind == "mlp":
            weight = layer.get_submodule(f"{adapter.mlp}.{adapter.down_proj}").weight
            gram = layer_statistic(statistics, "mlp_gram", group.layer, (group.width, group.width), "wanda_sp")
            w = weight.detach().to(device=gram.device, dtype=torch.float64)
            scores = w.pow(2).sum(0).sqrt() * gram.diagonal().clamp_min(0).sqrt()
            keep = top_units(scores.cpu(), units)
            kv_keep, columns = None, keep
        else:
            weight = layer.get_submodule(f"{adapter.attn}.{adapter.o_proj}").weight
            gram = layer_statistic(statistics, "attn_gram", group.layer, (group.width * head_dim,) * 2, "wanda_sp")
            w = weight.detach().to(device=gram.device, dtype=torch.float64)
            w_norm = w.reshape(w.shape[0], group.width, head_dim).pow(2).sum((0, 2)).sqrt()
            x_norm = gram.diagonal().clamp_min(0).reshape(group.width, head_dim).sum(1).sqrt()
            q_scores = (w_norm * x_norm).cpu()
            kv_scores = q_scores.reshape(group.kv_width, group.queries_per_kv).sum(1)
            keep, kv_keep = head_keep(group, q_scores, kv_scores, units, kv_kept, config.head_mode)
            columns = head_columns(keep, head_dim)
        consumer_weight = None
        if config.compensate == "least_squares" and units < group.width:
            consumer_weight = least_squares_refit(weight, gram, columns, config.damping).to(weight.dtype)
        plans.append(GroupPlan(group, keep=keep, kv_keep=kv_keep, consumer_weight=consumer_weight))
    return Plan(method=config.method_name, groups=plans, config=config.to_dict())


register_method(
    MethodSpec(
        "wanda_sp",
        WandaSPConfig,
        wanda_sp_plan,
        "activation-aware structured pruning with least-squares consumer refit",
    )
)
