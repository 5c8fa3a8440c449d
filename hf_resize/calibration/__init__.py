"""Calibration: forward hooks that accumulate the statistics methods read (Gram matrices, ...)."""

from hf_resize.calibration.collectors import (
    STATISTICS,
    Statistics,
    StatisticSpec,
    collect_statistics,
    gram_update,
    register_statistic,
)

__all__ = [
    "STATISTICS",
    "StatisticSpec",
    "Statistics",
    "collect_statistics",
    "gram_update",
    "register_statistic",
]
