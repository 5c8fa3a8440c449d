"""Resizing methods; importing this package registers every built-in method."""

from hf_resize.methods import magnitude  # noqa: F401  (registers)
from hf_resize.methods.base import MethodConfig, available_methods, get_method, register_method
from hf_resize.methods.dotresize import DOTResizeConfig  # registers dotresize
from hf_resize.methods.flap import FLAPConfig  # registers flap
from hf_resize.methods.kfac import KFACPruneConfig  # registers kfac
from hf_resize.methods.magnitude import MagnitudeConfig
from hf_resize.methods.pca_slice import PCASliceConfig  # registers pca_slice
from hf_resize.methods.turbo_vbi import TurboVBIConfig  # registers turbo_vbi
from hf_resize.methods.wanda_sp import WandaSPConfig  # registers wanda_sp

__all__ = ["DOTResizeConfig", "FLAPConfig", "KFACPruneConfig", "MagnitudeConfig", "PCASliceConfig", "TurboVBIConfig", "MethodConfig", "WandaSPConfig", "available_methods", "get_method", "register_method"]
