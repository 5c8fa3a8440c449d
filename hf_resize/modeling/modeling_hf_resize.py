"""Models with per-layer widths: the stock family class with each decoder layer built from its own widths.

Shipped next to the weights as remote code (``auto_map``) and registered with the Auto classes on
``import hf_resize``. It only rebuilds layers; every forward is the stock family's.
"""

from __future__ import annotations

import json
import os
import shutil
from functools import cache

from transformers import PreTrainedModel
from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

try:  # inside the package
    from .configuration_hf_resize import HFResizeConfig, LayerConfigView
except ImportError:  # pragma: no cover - flat remote-code module
    from configuration_hf_resize import HFResizeConfig, LayerConfigView

REMOTE_CODE_FILES = ("configuration_hf_resize.py", "modeling_hf_resize.py")
AUTO_MAP = {
    "AutoConfig": "configuration_hf_resize.HFResizeConfig",
    "AutoModelForCausalLM": "modeling_hf_resize.HFResizeForCausalLM",
}


def decoder_layers(model: PreTrainedModel):
    return getattr(model, model.base_model_prefix).layers


def build_layer(model: PreTrainedModel, index: int, overrides: dict):
    """A fresh decoder layer of ``model``'s family with ``overrides`` applied to the shared config."""
    layer_cls = type(decoder_layers(model)[index])
    return layer_cls(LayerConfigView(model.config, overrides), index)


def apply_layer_widths(model: PreTrainedModel) -> None:
    for index, overrides in enumerate(getattr(model.config, "hf_resize_layer_widths", None) or []):
        if overrides:
            decoder_layers(model)[index] = build_layer(model, index, overrides)


@cache
def resized_class(base_cls: type[PreTrainedModel]) -> type[PreTrainedModel]:
    """A subclass of ``base_cls`` whose layers follow ``config.hf_resize_layer_widths``."""

    def __init__(self, config, *args, **kwargs):
        base_cls.__init__(self, config, *args, **kwargs)
        apply_layer_widths(self)

    def save_pretrained(self, save_directory, *args, **kwargs):
        base_cls.save_pretrained(self, save_directory, *args, **kwargs)
        write_resize_config(self.config, save_directory)

    return type(f"HFResize{base_cls.__name__}", (base_cls,), {"__init__": __init__, "save_pretrained": save_pretrained})


def write_resize_config(base_config, save_directory: str | os.PathLike) -> None:
    """Rewrite config.json as an hf_resize config and ship the code that loads it."""
    config = HFResizeConfig.from_base_config(base_config, auto_map=AUTO_MAP)
    with open(os.path.join(save_directory, "config.json"), "w") as f:
        json.dump(json.loads(config.to_json_string(use_diff=False)), f, indent=2, sort_keys=True)
    here = os.path.dirname(os.path.abspath(__file__))
    for name in REMOTE_CODE_FILES:
        source = os.path.join(here, name)
        if os.path.exists(source):
            shutil.copyfile(source, os.path.join(save_directory, name))


def _base_class(config: HFResizeConfig) -> type[PreTrainedModel]:
    import transformers

    return getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[config.base_model_type])


class HFResizeForCausalLM(PreTrainedModel):
    """Entry point for the Auto classes; hands back the stock family class with per-layer widths."""

    config_class = HFResizeConfig

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, config=None, **kwargs):
        kwargs.pop("trust_remote_code", None)
        if config is None:
            config = HFResizeConfig.from_pretrained(pretrained_model_name_or_path, **kwargs)
        base_config = config.to_base_config()
        model_cls = resized_class(_base_class(config))
        return model_cls.from_pretrained(pretrained_model_name_or_path, *args, config=base_config, **kwargs)

    @classmethod
    def from_config(cls, config, **kwargs):
        return resized_class(_base_class(config))(config.to_base_config(), **kwargs)

    _from_config = from_config
