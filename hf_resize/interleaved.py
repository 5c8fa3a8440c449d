"""Resizing as a schedule: k pruning steps from dense to the target widths, each planned on fresh statistics of
the model as it is, with optional recovery training after each step (KFAC pruning toward flat minima)."""

from __future__ import annotations

from typing import Any

import torch
from transformers import PreTrainedModel

from hf_resize.calibration import collect_statistics
from hf_resize.groups import neuron_groups
from hf_resize.methods.base import MethodConfig, MethodSpec
from hf_resize.methods.targets import planned_widths
from hf_resize.recovery import lora_recover, spectral_radius
from hf_resize.surgery import apply_plan
from hf_resize.validation import check_logits_finite, check_statistics_finite


def step_widths(model: PreTrainedModel, final: dict[str, tuple[int, int | None]], fraction: float) -> dict:
    """Widths after ``fraction`` (0..1] of the way from ``model``'s current widths to ``final``; heads move in whole
    query heads per KV group (or whole KV groups) so the GQA structure stays regular; 1 gives ``final``."""
    widths = {}
    for group in neuron_groups(model):
        if group.name not in final:
            continue
        units, kv = final[group.name]
        if group.kind == "heads":
            kv_now = group.kv_width
            per_now, per_final = group.width // kv_now, units // kv
            kv_step = round(kv_now - (kv_now - kv) * fraction)
            per_step = round(per_now - (per_now - per_final) * fraction)
            widths[group.name] = (kv_step * per_step, kv_step)
        else:
            widths[group.name] = (round(group.width - (group.width - units) * fraction), None)
    return widths


def run_interleaved(
    model: PreTrainedModel, config: MethodConfig, spec: MethodSpec, tokens: torch.Tensor, statistics: dict | None
) -> dict[str, Any]:
    """Prune in ``config.steps`` steps with ``config.train_steps`` LoRA steps after each; returns what was measured
    (LoRA loss history, KFAC spectral-radius estimates before and after training)."""
    final = planned_widths(model, config)
    probe = tokens[: config.train_batch_size]
    report: dict[str, Any] = {"steps": [], "spectral_radius_dense": spectral_radius(model, probe)}
    for step in range(1, config.steps + 1):
        # each step goes 1/(steps - step + 1) of the remaining way, so the last one lands exactly on ``final``
        widths = step_widths(model, final, 1 / (config.steps - step + 1))
        if statistics is None or step > 1:
            statistics = collect_statistics(model, tokens, config.needs, cache=False)
        check_statistics_finite(statistics, model)
        apply_plan(model, spec.planner(model, config, statistics, widths=widths))
        check_logits_finite(model)
        entry: dict[str, Any] = {"widths": {g.name: g.width for g in neuron_groups(model)}}
        if config.train_steps:
            entry["spectral_radius_before"] = spectral_radius(model, probe)
            history = lora_recover(
                model, tokens, config.train_steps, config.learning_rate, config.lora_rank, config.lora_alpha,
                config.train_batch_size, config.flatness, config.power_iterations, config.seed + step,
            )
            entry["spectral_radius_after"] = spectral_radius(model, probe)
            entry["loss_first"], entry["loss_last"] = history["loss"][0], history["loss"][-1]
            entry["history"] = history
        report["steps"].append(entry)
        statistics = None
    return report
