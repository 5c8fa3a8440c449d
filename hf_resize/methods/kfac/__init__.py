"""KFAC neuron pruning: curvature-guided removal with OBS compensation, optionally interleaved with LoRA recovery."""

from hf_resize.methods.kfac.config import KFACPruneConfig
from hf_resize.methods.kfac.method import kfac_plan

__all__ = ["KFACPruneConfig", "kfac_plan"]
