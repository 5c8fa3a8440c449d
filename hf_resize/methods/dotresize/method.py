"""DOTResize planner: per group, targets → cost → transport plan → merge (producer) and consumer.

MLP neuron groups use the Gram of down_proj's input; query heads the block-traced Gram of o_proj's input
within each KV group; the hidden width the summed RMS-normalised residual Gram of all layers.
The consumer refit assumes a merged unit's activation is the same mix of its sources' activations (exact for
linear paths, an approximation across the MLP nonlinearity that OT keeps small by merging similar units).
"""

from __future__ import annotations

import warnings

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter
from hf_resize.groups import NeuronGroup, head_dim_of, neuron_groups
from hf_resize.methods.base import MethodSpec, register_method
from hf_resize.methods.dotresize.allocation import allocate, marginal_gains
from hf_resize.methods.dotresize.config import DOTResizeConfig
from hf_resize.methods.dotresize.transport import (
    choose_targets,
    cost_matrix,
    merge_matrix,
    orthonormal_basis,
    output_gram,
    spread_matrix,
    target_order,
    transport_plan,
    unit_gram,
)
from hf_resize.methods.parallel import plan_groups
from hf_resize.methods.refit import least_squares_refit, merged_least_squares
from hf_resize.methods.selection import head_columns
from hf_resize.methods.statistics import layer_statistic, summed_statistic
from hf_resize.methods.targets import planned_widths
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan, Plan


def transport_merge(gram: torch.Tensor, count: int, config: DOTResizeConfig, seed: int) -> tuple[torch.Tensor, ...]:
    """(targets, producer m x n, spread n x m) for units with Gram ``gram`` reduced to ``count``."""
    targets = choose_targets(gram, count, config.targets, seed)
    plan = transport_plan(cost_matrix(gram, targets, config.cost), config.solver, config.epsilon, config.iterations)
    return targets, merge_matrix(plan), spread_matrix(plan)


def _consumer(weight: torch.Tensor, gram: torch.Tensor, producer: torch.Tensor, config: DOTResizeConfig) -> torch.Tensor | None:
    if config.consumer != "least_squares":
        return None
    return merged_least_squares(weight, gram, producer, config.damping).to(weight.dtype)


def _mlp_units_gram(layer, adapter, group: NeuronGroup, statistics: dict, config: DOTResizeConfig) -> tuple:
    weight = layer.get_submodule(f"{adapter.mlp}.{adapter.down_proj}").weight
    gram = layer_statistic(statistics, "mlp_gram", group.layer, (group.width, group.width), "dotresize")
    return weight, gram, output_gram(gram, weight) if config.space == "output" else gram


def error_allocation(model: PreTrainedModel, groups: list[NeuronGroup], widths: dict, statistics: dict,
                     config: DOTResizeConfig) -> dict[str, int]:
    """MLP group name → units kept, the same total as the uniform widths, placed by measured refit error."""
    adapter, layers = get_adapter(model), decoder_layers(model)
    mlp = [g for g in groups if g.kind == "mlp"]
    gains = []
    for group in tqdm(mlp, desc="dotresize allocation", unit="layer", disable=len(mlp) < 8):
        weight, gram, units_gram = _mlp_units_gram(layers[group.layer], adapter, group, statistics, config)
        order = target_order(units_gram, group.width, config.targets, config.seed + group.layer)
        layer_gains = marginal_gains(weight, gram, order, config.damping)
        if config.allocation == "error":  # as a fraction of the layer's own output energy tr(W G Wᵀ)
            w = weight.detach().to(device=gram.device, dtype=torch.float64)
            layer_gains = layer_gains / float(((w @ gram) * w).sum().clamp_min(1e-30))
        gains.append(layer_gains)
    total = sum(widths[g.name][0] for g in mlp)
    minimum = max(1, min(round(config.min_width * g.width) for g in mlp))
    return {g.name: count for g, count in zip(mlp, allocate(gains, total, minimum), strict=True)}


def _mlp_plan(group: NeuronGroup, layer, adapter, units: int, statistics: dict, config: DOTResizeConfig) -> GroupPlan:
    weight, gram, units_gram = _mlp_units_gram(layer, adapter, group, statistics, config)
    seed = config.seed + group.layer
    if not config.merge:
        keep = choose_targets(units_gram, units, config.targets, seed)
        refit = least_squares_refit(weight, gram, keep, config.damping).to(weight.dtype) if config.consumer == "least_squares" else None
        return GroupPlan(group, keep=keep, consumer_weight=refit)
    _, producer, spread = transport_merge(units_gram, units, config, seed)
    return GroupPlan(group, producer=producer, consumer=spread, consumer_weight=_consumer(weight, gram, producer, config))


def _head_plan(
    group: NeuronGroup, layer, adapter, units: int, kv_kept: int, head_dim: int, statistics: dict, config: DOTResizeConfig
) -> GroupPlan:
    weight = layer.get_submodule(f"{adapter.attn}.{adapter.o_proj}").weight
    size = group.width * head_dim
    gram = layer_statistic(statistics, "attn_gram", group.layer, (size, size), "dotresize")
    per_kv, seed = group.queries_per_kv, config.seed + group.layer
    if config.space == "output":
        channels, reduce = output_gram(gram, weight), "sum"
    else:
        channels, reduce = gram, "trace"
    heads = unit_gram(channels, head_dim, reduce)
    if config.head_mode == "kv_groups" or not config.merge:
        if config.head_mode == "kv_groups":
            kv_keep = choose_targets(unit_gram(channels, per_kv * head_dim, reduce), kv_kept, config.targets, seed)
            keep = (kv_keep[:, None] * per_kv + torch.arange(per_kv)).flatten()
        else:
            span = [torch.arange(g * per_kv, (g + 1) * per_kv) for g in range(group.kv_width)]
            keep = torch.cat([s[choose_targets(heads[s][:, s], units // group.kv_width, config.targets, seed)] for s in span])
            kv_keep = torch.arange(group.kv_width)
        columns = head_columns(keep, head_dim)
        refit = least_squares_refit(weight, gram, columns, config.damping).to(weight.dtype) if config.consumer == "least_squares" else None
        return GroupPlan(group, keep=keep, kv_keep=kv_keep, consumer_weight=refit)
    producers, spreads = [], []
    for g in range(group.kv_width):  # query heads merge only with heads that share their keys and values
        s = slice(g * per_kv, (g + 1) * per_kv)
        _, producer, spread = transport_merge(heads[s, s], units // group.kv_width, config, seed + 7919 * g)
        producers.append(producer)
        spreads.append(spread)
    producer, spread = torch.block_diag(*producers), torch.block_diag(*spreads)
    wide = torch.kron(producer, torch.eye(head_dim, dtype=producer.dtype))
    return GroupPlan(group, producer=producer, consumer=spread, consumer_weight=_consumer(weight, gram, wide, config))


def _hidden_plan(model: PreTrainedModel, group: NeuronGroup, units: int, statistics: dict, config: DOTResizeConfig) -> GroupPlan:
    shape = (group.width, group.width)
    gram = summed_statistic(statistics, "hidden_gram", len(decoder_layers(model)), shape, "dotresize")
    targets, producer, _ = transport_merge(gram, units, config, config.seed)
    if get_adapter(model).writer_norms:
        # Sandwich norms (Gemma 3) normalise the writers' outputs too, so a re-based stream cannot be folded
        # through them: keep the transport targets instead (a pruning of the hidden width).
        warnings.warn(
            "dotresize: hidden width of a sandwich-norm family is pruned to the transport targets, not merged.",
            stacklevel=3,
        )
        return GroupPlan(group, keep=targets)
    if config.hidden_basis == "qr":
        basis = orthonormal_basis(producer)
        return GroupPlan(group, producer=basis.T.contiguous(), consumer=basis)
    return GroupPlan(group, producer=producer, consumer=torch.linalg.pinv(producer))


def dotresize_plan(model: PreTrainedModel, config: DOTResizeConfig, statistics: dict | None = None) -> Plan:
    adapter = get_adapter(model)
    widths = planned_widths(model, config)
    layers = decoder_layers(model)
    head_dim = head_dim_of(model.config, adapter)
    groups = neuron_groups(model, tuple(config.groups))
    if config.allocation != "uniform" and any(g.kind == "mlp" for g in groups):
        for name, units in error_allocation(model, groups, widths, statistics, config).items():
            widths[name] = (units, None)

    def plan_one(group: NeuronGroup, units: int, kv_kept: int | None) -> GroupPlan:
        if group.kind == "mlp":
            return _mlp_plan(group, layers[group.layer], adapter, units, statistics, config)
        if group.kind == "heads":
            return _head_plan(group, layers[group.layer], adapter, units, kv_kept, head_dim, statistics, config)
        return _hidden_plan(model, group, units, statistics, config)

    plans = plan_groups(groups, widths, plan_one, "dotresize")
    return Plan(method=config.method_name, groups=plans, config=config.to_dict())


register_method(MethodSpec("dotresize", DOTResizeConfig, dotresize_plan, "neuron merging by discrete optimal transport"))
