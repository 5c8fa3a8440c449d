"""Calibration: hooks that accumulate the statistics methods read (Gram matrices, KFAC factors, ...).

``collect_statistics(model, tokens, needs, mode="whole"|"sequential", cache=..., on_layer=...)``; see
``collectors`` (pipelines, multi-process), ``kfac`` (gradient factors) and ``cache`` (on-disk safetensors cache).
"""

from hf_resize.calibration.collectors import (
    STATISTICS,
    Statistics,
    StatisticSpec,
    capture_layer_inputs,
    collect_statistics,
    estimate_memory,
    gram_update,
    register_statistic,
)

__all__ = [
    "STATISTICS",
    "StatisticSpec",
    "Statistics",
    "capture_layer_inputs",
    "collect_statistics",
    "estimate_memory",
    "gram_update",
    "register_statistic",
]
