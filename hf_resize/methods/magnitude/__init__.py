"""Magnitude pruning: keep the units whose weights have the largest norms. A baseline, needs no data."""

from hf_resize.methods.magnitude.method import MagnitudeConfig, magnitude_plan

__all__ = ["MagnitudeConfig", "magnitude_plan"]
