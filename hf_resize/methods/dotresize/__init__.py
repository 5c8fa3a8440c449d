"""DOTResize: neuron merging by discrete optimal transport (MLP neurons, query heads, hidden width)."""

from hf_resize.methods.dotresize.config import DOTResizeConfig
from hf_resize.methods.dotresize.method import dotresize_plan, transport_merge

__all__ = ["DOTResizeConfig", "dotresize_plan", "transport_merge"]
