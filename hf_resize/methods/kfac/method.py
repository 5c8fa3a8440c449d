"""KFAC planner: per consumer, greedy structured OBS removal of units (see ``obs``), compensated weights kept."""

from __future__ import annotations

import torch
from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter
from hf_resize.errors import CalibrationError
from hf_resize.groups import NeuronGroup, head_dim_of, neuron_groups
from hf_resize.methods.base import MethodSpec, register_method
from hf_resize.methods.kfac.config import KFACPruneConfig
from hf_resize.methods.kfac.obs import greedy_removal
from hf_resize.methods.parallel import plan_groups
from hf_resize.methods.targets import planned_widths
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan, Plan


def consumer_factors(statistics: dict | None, layer: int, name: str, shape: tuple[int, int]) -> tuple:
    """(Ā, Ḡ, D̄) of one consumer as float64 expectations over the calibration tokens; D̄ is None without the
    ``kfac_gradient`` statistic."""
    statistics = statistics or {}
    entry = (statistics.get("kfac_consumers") or {}).get(layer, {}).get(name)
    if entry is None:
        raise CalibrationError(
            f"kfac needs the 'kfac_consumers' statistic of layer {layer} ({name}); run it through "
            "hf_resize.resize(..., calibration=...) or collect_statistics(model, tokens, <KFACPruneConfig>.needs)."
        )
    out, n = shape
    if tuple(entry["A"].shape) != (n, n) or tuple(entry["G"].shape) != (out, out):
        raise CalibrationError(f"kfac_consumers of layer {layer} do not match {name} {shape}: statistics from another model.")
    tokens = float(statistics["tokens"])
    gradient = (statistics.get("kfac_gradient") or {}).get(layer, {}).get(name)
    d = None if gradient is None else gradient["D"].to(torch.float64) / tokens
    return entry["A"].to(torch.float64) / tokens, entry["G"].to(torch.float64) / tokens, d


def _mlp_plan(group: NeuronGroup, layer, adapter, units: int, statistics: dict, config: KFACPruneConfig) -> GroupPlan:
    name = f"{adapter.mlp}.{adapter.down_proj}"
    weight = layer.get_submodule(name).weight
    a, g, d = consumer_factors(statistics, group.layer, name, tuple(weight.shape))
    kept, w, _ = greedy_removal(weight, a, g, d, group.width - units, 1, config.damping, rounds=config.rounds)
    return GroupPlan(group, keep=kept, consumer_weight=w.to(weight.dtype))


def _head_plan(group: NeuronGroup, layer, adapter, units: int, kv_kept: int, head_dim: int, statistics: dict,
               config: KFACPruneConfig) -> GroupPlan:
    name = f"{adapter.attn}.{adapter.o_proj}"
    weight = layer.get_submodule(name).weight
    a, g, d = consumer_factors(statistics, group.layer, name, tuple(weight.shape))
    per_kv = group.queries_per_kv
    if config.head_mode == "kv_groups":  # a KV group and its query heads leave together
        kv_keep, w, _ = greedy_removal(weight, a, g, d, group.kv_width - kv_kept, per_kv * head_dim, config.damping,
                                          rounds=config.rounds)
        keep = (kv_keep[:, None] * per_kv + torch.arange(per_kv)).flatten()
        return GroupPlan(group, keep=keep, kv_keep=kv_keep, consumer_weight=w.to(weight.dtype))
    quota = (torch.arange(group.width) // per_kv, per_kv - units // group.kv_width)  # the same count per KV group
    keep, w, _ = greedy_removal(weight, a, g, d, group.width - units, head_dim, config.damping, quota, config.rounds)
    return GroupPlan(group, keep=keep, kv_keep=torch.arange(group.kv_width), consumer_weight=w.to(weight.dtype))


def kfac_plan(
    model: PreTrainedModel,
    config: KFACPruneConfig,
    statistics: dict | None = None,
    widths: dict[str, tuple[int, int | None]] | None = None,
) -> Plan:
    """Plan the removal; ``widths`` (group name → (units, KV heads) kept) overrides the config's ratio, for the
    intermediate steps of an interleaved schedule."""
    adapter, layers = get_adapter(model), decoder_layers(model)
    widths = widths or planned_widths(model, config)
    head_dim = head_dim_of(model.config, adapter)
    groups = neuron_groups(model, tuple(config.groups))

    def plan_one(group: NeuronGroup, units: int, kv_kept: int | None) -> GroupPlan:
        if group.kind == "mlp":
            return _mlp_plan(group, layers[group.layer], adapter, units, statistics, config)
        return _head_plan(group, layers[group.layer], adapter, units, kv_kept, head_dim, statistics, config)

    plans = plan_groups(groups, widths, plan_one, "kfac")
    return Plan(method=config.method_name, groups=plans, config=config.to_dict())


register_method(MethodSpec("kfac", KFACPruneConfig, kfac_plan, "curvature-guided (KFAC) neuron and head pruning"))
