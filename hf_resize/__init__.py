"""hf_resize: make Hugging Face causal LMs narrower and get back an ordinary PreTrainedModel.

``import hf_resize`` registers the per-layer-width model type with the transformers Auto classes.
"""

from transformers import AutoConfig, AutoModelForCausalLM

from hf_resize import adapters, methods  # noqa: F401  (register families and methods)
from hf_resize.errors import HFResizeError
from hf_resize.evaluation import evaluate  # also registers lm-eval's "hf-resize" model type (lazily)
from hf_resize.export import save_resized
from hf_resize.groups import NeuronGroup, neuron_groups
from hf_resize.methods import (
    DOTResizeConfig,
    KFACPruneConfig,
    MagnitudeConfig,
    MethodConfig,
    TurboVBIConfig,
    WandaSPConfig,
    available_methods,
)
from hf_resize.modeling.configuration_hf_resize import HFResizeConfig
from hf_resize.modeling.modeling_hf_resize import HFResizeForCausalLM
from hf_resize.params import parameter_counts
from hf_resize.plan import GroupPlan, Plan
from hf_resize.publish import build_model_card, push_folder, push_model
from hf_resize.resize import resize
from hf_resize.streaming import resize_from_disk
from hf_resize.surgery import apply_plan

AutoConfig.register("hf_resize", HFResizeConfig, exist_ok=True)
AutoModelForCausalLM.register(HFResizeConfig, HFResizeForCausalLM, exist_ok=True)

__version__ = "0.1.0"
__all__ = [
    "GroupPlan",
    "HFResizeConfig",
    "HFResizeError",
    "HFResizeForCausalLM",
    "DOTResizeConfig",
    "KFACPruneConfig",
    "TurboVBIConfig",
    "MagnitudeConfig",
    "MethodConfig",
    "WandaSPConfig",
    "NeuronGroup",
    "Plan",
    "apply_plan",
    "available_methods",
    "build_model_card",
    "evaluate",
    "neuron_groups",
    "parameter_counts",
    "push_folder",
    "push_model",
    "resize",
    "resize_from_disk",
    "save_resized",
]
