"""Turbo-VBI planner: per group, a Bayesian regression of the consumer on its units (``inference``), the support
chains (``support``), the noise level that meets the budget (``turbo``); the most probable units are kept with
their posterior-mean consumer weights."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter
from hf_resize.errors import ConfigError
from hf_resize.groups import NeuronGroup, head_dim_of, neuron_groups
from hf_resize.methods.base import MethodSpec, register_method
from hf_resize.methods.dotresize.allocation import allocate
from hf_resize.methods.dotresize.transport import unit_gram
from hf_resize.methods.parallel import plan_groups
from hf_resize.methods.statistics import layer_statistic
from hf_resize.methods.targets import planned_widths
from hf_resize.methods.turbo_vbi.config import TurboVBIConfig
from hf_resize.methods.turbo_vbi.inference import normalise
from hf_resize.methods.turbo_vbi.support import similarity_chain
from hf_resize.methods.turbo_vbi.turbo import Problem, data_scale, turbo
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan, Plan


@dataclass
class Grouped:
    """A group's Turbo-VBI problem and what maps its normalised solution back to the consumer's weights."""

    group: NeuronGroup
    weight: torch.Tensor
    problem: Problem
    scale: torch.Tensor
    sigma: float


def kept_weights(solved: Grouped, kept: torch.Tensor) -> torch.Tensor:
    """Posterior mean of the consumer restricted to the kept units (their active-branch precisions, the learned
    noise precision), in the original coordinates: [out, kept·u]."""
    reg, state, unit = solved.problem.regression, solved.problem.state, solved.problem.regression.unit
    gamma = state.gamma
    rows = (kept[:, None] * unit + torch.arange(unit)).flatten()
    precision = gamma * reg.tokens * reg.r[rows][:, rows] + torch.diag(state.alpha_on[kept].repeat_interleave(unit))
    mean = gamma * reg.tokens * torch.linalg.solve(precision, reg.rw0[rows])
    return (mean * solved.sigma / solved.scale[rows, None]).T.to(solved.weight.dtype)


def _grouped(group: NeuronGroup, layer, adapter, statistics: dict, config: TurboVBIConfig, units: int,
             head_dim: int) -> Grouped:
    tokens = float(statistics["tokens"])
    if group.kind == "mlp":
        weight = layer.get_submodule(f"{adapter.mlp}.{adapter.down_proj}").weight
        gram = layer_statistic(statistics, "mlp_gram", group.layer, (group.width, group.width), "turbo_vbi")
        reg, scale, sigma = normalise(gram, weight, tokens, 1)
        chains = [similarity_chain(reg.r)]
    else:
        weight = layer.get_submodule(f"{adapter.attn}.{adapter.o_proj}").weight
        size = group.width * head_dim
        gram = layer_statistic(statistics, "attn_gram", group.layer, (size, size), "turbo_vbi")
        per_kv = group.queries_per_kv
        unit = per_kv * head_dim if config.head_mode == "kv_groups" else head_dim
        reg, scale, sigma = normalise(gram, weight, tokens, unit)
        heads = unit_gram(reg.r, unit)
        if config.head_mode == "kv_groups":  # one chain over the KV groups
            chains = [similarity_chain(heads)]
        else:  # one chain per KV group over its query heads (the support prior's blocks)
            chains = [g * per_kv + similarity_chain(heads[g * per_kv:(g + 1) * per_kv, g * per_kv:(g + 1) * per_kv])
                      for g in range(group.kv_width)]
    p = config.support_prior if config.support_prior is not None else units / reg.units
    problem = Problem(reg, chains, min(max(p, 1e-3), 1 - 1e-3), output_energy=sigma**2)
    return Grouped(group, weight, problem, scale, sigma)


def _budget(group: NeuronGroup, widths: dict, config: TurboVBIConfig) -> int:
    units, kv_kept = widths[group.name]
    return kv_kept if group.kind == "heads" and config.head_mode == "kv_groups" else units


def _plan(solved: Grouped, units: int, kv_kept: int | None, config: TurboVBIConfig) -> GroupPlan:
    group, scores = solved.group, solved.problem.state.log_odds
    if group.kind == "mlp":
        kept = torch.argsort(-scores, stable=True)[:units].sort().values
        return GroupPlan(group, keep=kept, consumer_weight=kept_weights(solved, kept))
    per_kv = group.queries_per_kv
    if config.head_mode == "kv_groups":
        kv_keep = torch.argsort(-scores, stable=True)[:kv_kept].sort().values
        keep = (kv_keep[:, None] * per_kv + torch.arange(per_kv)).flatten()
        return GroupPlan(group, keep=keep, kv_keep=kv_keep, consumer_weight=kept_weights(solved, kv_keep))
    per_group = units // group.kv_width  # the same count of query heads in every KV group
    by_group = scores.reshape(group.kv_width, per_kv)
    keep = torch.cat([torch.argsort(-by_group[g], stable=True)[:per_group].sort().values + g * per_kv
                      for g in range(group.kv_width)])
    return GroupPlan(group, keep=keep, kv_keep=torch.arange(group.kv_width),
                     consumer_weight=kept_weights(solved, keep))


def turbo_vbi_plan(model: PreTrainedModel, config: TurboVBIConfig, statistics: dict | None = None) -> Plan:
    adapter, layers = get_adapter(model), decoder_layers(model)
    widths = planned_widths(model, config)
    head_dim = head_dim_of(model.config, adapter)
    groups = neuron_groups(model, tuple(config.groups))
    priors = config.priors()

    def grouped(group: NeuronGroup) -> Grouped:
        return _grouped(group, layers[group.layer], adapter, statistics, config, widths[group.name][0], head_dim)

    def run(problems: list[Problem], budget: int, each=None) -> None:
        turbo(problems, budget, priors, config.turbo_iterations, config.vb_iterations, config.persistence,
              config.tolerance, each)

    if config.allocation == "uniform":
        def plan_one(group: NeuronGroup, units: int, kv_kept: int | None) -> GroupPlan:
            solved = grouped(group)
            run([solved.problem], _budget(group, widths, config))
            return _plan(solved, units, kv_kept, config)

        return Plan(method=config.method_name, groups=plan_groups(groups, widths, plan_one, "turbo_vbi"),
                    config=config.to_dict())
    # per_layer (MLP only): one Turbo loop over every layer that shrinks, sharing the budget's offset
    solved = {g.name: grouped(g) for g in groups if widths[g.name][0] < g.width}
    if solved:  # (nothing to plan at ratio 0)
        with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
            rounds = tqdm(total=config.turbo_iterations, desc="turbo_vbi rounds", unit="round")

            def each(fn, problems: list[Problem]) -> None:
                list(pool.map(fn, problems))
                rounds.update()

            total = sum(widths[name][0] for name in solved)
            run([s.problem for s in solved.values()], total, each)
            rounds.close()
        minimum = max(1, min(round(config.min_width * s.group.width) for s in solved.values()))
        ranked = [(s.problem.state.log_odds / data_scale(s.problem)).sort(descending=True).values
                  for s in solved.values()]
        for name, count in zip(solved, allocate(ranked, total, minimum), strict=True):
            widths[name] = (count, None)
    # a layer allocated its full width still gets its posterior-mean weights; the others are the identity
    plans = [_plan(solved[g.name], *widths[g.name], config) if g.name in solved else GroupPlan(g, keep=torch.arange(g.width))
             for g in groups]
    return Plan(method=config.method_name, groups=plans, config=config.to_dict())


def check(model: PreTrainedModel, config: TurboVBIConfig) -> None:
    """Before calibration: a per-layer floor the budget cannot pay for."""
    if config.allocation != "per_layer":
        return
    widths = planned_widths(model, config)
    for group in neuron_groups(model, ("mlp",)):
        if widths[group.name][0] < round(config.min_width * group.width):
            raise ConfigError(
                f"allocation='per_layer' keeps {widths[group.name][0]} of {group.width} neurons per layer on average, "
                f"below min_width={config.min_width} of a layer; lower min_width or the ratio."
            )


register_method(MethodSpec("turbo_vbi", TurboVBIConfig, turbo_vbi_plan, "structured Bayesian compression (Turbo-VBI)",
                           check=check))
