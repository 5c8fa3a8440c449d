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
        chains, k = [similarity_chain(reg.r)], group.width
    else:
        weight = layer.get_submodule(f"{adapter.attn}.{adapter.o_proj}").weight
        size = group.width * head_dim
        gram = layer_statistic(statistics, "attn_gram", group.layer, (size, size), "turbo_vbi")
        per_kv = group.queries_per_kv
        unit = per_kv * head_dim if config.head_mode == "kv_groups" else head_dim
        reg, scale, sigma = normalise(gram, weight, tokens, unit)
        heads = unit_gram(reg.r, unit)
        if config.head_mode == "kv_groups":  # one chain over the KV groups
            chains, k = [similarity_chain(heads)], group.kv_width
        else:  # one chain per KV group over its query heads (the support prior's blocks)
            chains = [g * per_kv + similarity_chain(heads[g * per_kv:(g + 1) * per_kv, g * per_kv:(g + 1) * per_kv])
                      for g in range(group.kv_width)]
            k = group.width
    p = config.support_prior if config.support_prior is not None else units / k
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
    groups = [g for g in neuron_groups(model, tuple(config.groups))
              if widths[g.name][0] < g.width or (g.kind == "heads" and widths[g.name][1] < g.kv_width)]
    priors = config.priors()
    solved = [_grouped(g, layers[g.layer], adapter, statistics, config, widths[g.name][0], head_dim) for g in groups]

    def run(problems: list[Problem], budget: int, each=None) -> None:
        turbo(problems, budget, priors, config.turbo_iterations, config.vb_iterations, config.persistence,
              config.tolerance, each)

    # Groups are independent (per-layer: given the shared offset); one per core.
    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
        if config.allocation == "per_layer" and solved:  # (nothing to plan at ratio 0)
            rounds = tqdm(total=config.turbo_iterations, desc="turbo_vbi rounds", unit="round")

            def each(fn, problems: list[Problem]) -> None:
                list(pool.map(fn, problems))
                rounds.update()

            total = sum(widths[s.group.name][0] for s in solved)
            run([s.problem for s in solved], total, each)
            rounds.close()
            minimum = max(1, min(round(config.min_width * s.group.width) for s in solved))
            ranked = [(s.problem.state.log_odds / data_scale(s.problem)).sort(descending=True).values for s in solved]
            for s, count in zip(solved, allocate(ranked, total, minimum), strict=True):
                widths[s.group.name] = (count, None)
        else:
            done = pool.map(lambda s: run([s.problem], _budget(s.group, widths, config)), solved)
            list(tqdm(done, total=len(solved), desc="turbo_vbi", unit="group", disable=len(solved) < 8))
    by_name = {s.group.name: s for s in solved}
    plans = []
    for group in neuron_groups(model, tuple(config.groups)):
        if group.name not in by_name:
            plans.append(GroupPlan(group, keep=torch.arange(group.width)))  # nothing removed: the identity
        else:
            units, kv_kept = widths[group.name]
            plans.append(_plan(by_name[group.name], units, kv_kept, config))
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
