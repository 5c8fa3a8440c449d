"""FLAP-style fluctuation pruning (baseline)."""

from hf_resize.methods.flap.method import FLAPConfig, flap_plan

__all__ = ["FLAPConfig", "flap_plan"]
