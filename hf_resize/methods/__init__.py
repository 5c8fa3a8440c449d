"""Resizing methods; importing this package registers every built-in method."""

from hf_resize.methods import magnitude  # noqa: F401  (registers)
from hf_resize.methods.base import MethodConfig, available_methods, get_method, register_method
from hf_resize.methods.magnitude import MagnitudeConfig
from hf_resize.methods.wanda_sp import WandaSPConfig  # noqa: F401  (registers wanda_sp; exported)

__all__ = ["MagnitudeConfig", "MethodConfig", "available_methods", "get_method", "register_method"]
