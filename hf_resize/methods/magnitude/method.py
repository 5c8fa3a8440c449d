"""Weight-norm scores per neuron, head and hidden channel; keep the top ones at each group's granularity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter, get_adapter
from hf_resize.groups import NeuronGroup, head_dim_of, neuron_groups
from hf_resize.methods.base import MethodConfig, MethodSpec, register_method
from hf_resize.methods.selection import head_keep, top_units
from hf_resize.methods.targets import planned_widths
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan, Plan


@dataclass
class MagnitudeConfig(MethodConfig):
    """Magnitude pruning (baseline): a unit's score is the L2 norm of all weights it owns. See MethodConfig."""

    method_name: ClassVar[str] = "magnitude"


def _weight(layer, path: str) -> torch.Tensor:
    return layer.get_submodule(path).weight.detach().double()


def _mlp_scores(layer, adapter: FamilyAdapter) -> torch.Tensor:
    m = adapter.mlp
    if adapter.fused_gate_up:
        gate, up = _weight(layer, f"{m}.{adapter.gate_up_proj}").chunk(2)
    else:
        gate, up = _weight(layer, f"{m}.{adapter.gate_proj}"), _weight(layer, f"{m}.{adapter.up_proj}")
    down = _weight(layer, f"{m}.{adapter.down_proj}")
    return (gate.pow(2).sum(1) + up.pow(2).sum(1) + down.pow(2).sum(0)).sqrt()


def _head_scores(layer, adapter: FamilyAdapter, group: NeuronGroup, head_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    a = adapter.attn
    if adapter.fused_qkv:
        q, k, v = _weight(layer, f"{a}.{adapter.qkv_proj}").split(
            [group.width * head_dim, group.kv_width * head_dim, group.kv_width * head_dim]
        )
    else:
        q, k, v = (_weight(layer, f"{a}.{n}") for n in (adapter.q_proj, adapter.k_proj, adapter.v_proj))
    o = _weight(layer, f"{a}.{adapter.o_proj}")
    q_scores = q.reshape(group.width, -1).pow(2).sum(1) + o.reshape(o.shape[0], group.width, head_dim).pow(2).sum((0, 2))
    kv_scores = k.reshape(group.kv_width, -1).pow(2).sum(1) + v.reshape(group.kv_width, -1).pow(2).sum(1)
    return q_scores.sqrt(), kv_scores.sqrt()


def _hidden_scores(model: PreTrainedModel, adapter: FamilyAdapter) -> torch.Tensor:
    scores = model.get_submodule(adapter.embed).weight.detach().double().pow(2).sum(0)
    for layer in decoder_layers(model):
        scores += _weight(layer, f"{adapter.attn}.{adapter.o_proj}").pow(2).sum(1)
        scores += _weight(layer, f"{adapter.mlp}.{adapter.down_proj}").pow(2).sum(1)
    return scores.sqrt()


def magnitude_plan(model: PreTrainedModel, config: MagnitudeConfig, statistics: dict | None = None) -> Plan:
    adapter = get_adapter(model)
    widths = planned_widths(model, config)
    layers = decoder_layers(model)
    head_dim = head_dim_of(model.config, adapter)
    plans = []
    for group in neuron_groups(model, tuple(config.groups)):
        units, kv_kept = widths[group.name]
        if group.kind == "mlp":
            plans.append(GroupPlan(group, keep=top_units(_mlp_scores(layers[group.layer], adapter), units)))
        elif group.kind == "heads":
            q_scores, kv_scores = _head_scores(layers[group.layer], adapter, group, head_dim)
            keep, kv_keep = head_keep(group, q_scores, kv_scores, units, kv_kept, config.head_mode)
            plans.append(GroupPlan(group, keep=keep, kv_keep=kv_keep))
        else:
            plans.append(GroupPlan(group, keep=top_units(_hidden_scores(model, adapter), units)))
    return Plan(method=config.method_name, groups=plans, config=config.to_dict())


register_method(
    MethodSpec("magnitude", MagnitudeConfig, magnitude_plan, "keep units with the largest weight norms (baseline)")
)
