"""The one-call API: validate, collect what the method needs, plan, apply."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hf_resize.groups import neuron_groups
from hf_resize.methods import get_method
from hf_resize.methods.base import MethodConfig
from hf_resize.methods.targets import planned_widths
from hf_resize.params import parameter_counts
from hf_resize.surgery import apply_plan
from hf_resize.validation import (
    check_calibration_size,
    check_calibration_tokens,
    check_logits_finite,
    check_model,
    check_statistics_finite,
)


def _calibration_tokens(calibration, tokenizer, num_samples: int, seq_len: int, seed: int) -> torch.Tensor | None:
    if calibration is None:
        return None
    if isinstance(calibration, torch.Tensor):
        return calibration
    from hf_resize.data.calibration import sample_calibration

    if tokenizer is None:
        from hf_resize.errors import CalibrationError

        raise CalibrationError("Calibration text needs a tokenizer: pass tokenizer=AutoTokenizer.from_pretrained(...).")
    return sample_calibration(calibration, tokenizer, num_sequences=num_samples, seq_len=seq_len, seed=seed)


def resize(
    model: PreTrainedModel,
    config: MethodConfig,
    calibration: Any = None,
    tokenizer: PreTrainedTokenizerBase | None = None,
    num_samples: int = 128,
    seq_len: int = 512,
    statistics: dict | None = None,
    cache: bool = True,
) -> PreTrainedModel:
    """Resize ``model`` in place with the method ``config`` names and return it.

    Args:
        model: a causal LM of a supported family, with real float weights.
        config: a method config, e.g. ``MagnitudeConfig(ratio=0.2, groups=("mlp",))``.
        calibration: token ids [N, L], or a source for ``hf_resize.data.sample_calibration`` ("austen", a
            .txt/.jsonl path, a datasets.Dataset, a Hub dataset name); only methods that need data read it.
        tokenizer: needed when ``calibration`` is text.
        num_samples, seq_len: calibration size when sampling from text.
        statistics: statistics already collected on this same (unresized) model and data, e.g. by
            ``hf_resize.calibration.collect_statistics``; skips the calibration pass (benchmarks reuse them).
        cache: reuse calibration statistics cached on disk for this model and data, and cache new ones
            (``hf_resize.calibration.cache``; ``HF_RESIZE_NO_CACHE=1`` also disables it).

    The returned model records what was done in ``model.hf_resize_info`` (used by export and model cards).
    """
    spec = get_method(config)
    check_model(model)
    planned_widths(model, config)  # an unreachable ratio or granularity fails here, before any calibration
    if spec.check is not None:
        spec.check(model, config)
    tokens = None
    interleaved = getattr(config, "interleaved", False)  # several pruning steps and/or recovery training (kfac)
    if interleaved and statistics is not None and calibration is None:
        from hf_resize.errors import CalibrationError

        raise CalibrationError(f"{spec.name} with pruning steps or training needs calibration data, not only statistics.")
    if config.needs and (statistics is None or interleaved):
        tokens = _calibration_tokens(calibration, tokenizer, num_samples, seq_len, config.seed)
        check_calibration_size(tokens, config.min_calibration_tokens, spec.name)
        check_calibration_tokens(tokens, model)
    before = parameter_counts(model)
    started = time.perf_counter()
    if statistics is None:
        statistics = {}
        if config.needs:
            from hf_resize.calibration import collect_statistics

            statistics = collect_statistics(model, tokens, config.needs, cache=cache)
    check_statistics_finite(statistics, model)
    missing = set(config.needs) - set(statistics)
    if missing:
        from hf_resize.errors import CalibrationError

        raise CalibrationError(f"statistics lack {sorted(missing)} needed by {spec.name}; collect them or pass calibration.")
    schedule = None
    if interleaved:
        from hf_resize.interleaved import run_interleaved

        schedule = run_interleaved(model, config, spec, tokens, statistics)
    else:
        apply_plan(model, spec.planner(model, config, statistics))
        check_logits_finite(model)
    model.hf_resize_info = {
        "method": spec.name,
        "config": dataclasses.asdict(config),
        "parameters_before": before.as_dict(),
        "parameters_after": parameter_counts(model).as_dict(),
        "widths": {g.name: g.width for g in neuron_groups(model)},
        "calibration_tokens": None if tokens is None else list(tokens.shape),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if schedule is not None:
        model.hf_resize_info["schedule"] = schedule
    return model
