"""Reading calibration statistics inside a planner, with errors that say how to get the right ones."""

from __future__ import annotations

import torch

from hf_resize.errors import CalibrationError


def layer_statistic(statistics: dict | None, kind: str, layer: int, shape: tuple[int, ...], method: str) -> torch.Tensor:
    """``statistics[kind][layer]`` as float64, checked to have ``shape``."""
    value = (statistics or {}).get(kind, {}).get(layer)
    if value is None:
        raise CalibrationError(
            f"{method} needs the {kind!r} statistic of layer {layer}; run it through hf_resize.resize(..., "
            f"calibration=...) or pass collect_statistics(model, tokens, <{method} config>.needs)."
        )
    if tuple(value.shape) != tuple(shape):
        raise CalibrationError(
            f"{kind} of layer {layer} has shape {tuple(value.shape)}, expected {tuple(shape)}: "
            "statistics come from another model; collect them again."
        )
    return value.to(torch.float64)


def summed_statistic(statistics: dict | None, kind: str, layers: int, shape: tuple[int, ...], method: str) -> torch.Tensor:
    """Σ over all ``layers`` of ``statistics[kind][layer]`` (float64), each checked as in ``layer_statistic``."""
    return sum(layer_statistic(statistics, kind, i, shape, method) for i in range(layers))
