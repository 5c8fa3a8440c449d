"""Turbo-VBI: structured Bayesian compression with a hierarchical sparse prior, from calibration statistics."""

from hf_resize.methods.turbo_vbi.config import TurboVBIConfig
from hf_resize.methods.turbo_vbi.method import turbo_vbi_plan

__all__ = ["TurboVBIConfig", "turbo_vbi_plan"]
