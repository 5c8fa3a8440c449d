"""One registry of family adapters, keyed by ``config.model_type``."""

from __future__ import annotations

from transformers import PretrainedConfig, PreTrainedModel

from hf_resize.adapters.base import FamilyAdapter
from hf_resize.errors import UnsupportedModelError

_ADAPTERS: dict[str, FamilyAdapter] = {}


def register_adapter(adapter: FamilyAdapter) -> FamilyAdapter:
    """Register ``adapter`` for each of its model types; a new family is one call to this."""
    for model_type in adapter.model_types:
        _ADAPTERS[model_type] = adapter
    return adapter


def supported_model_types() -> list[str]:
    return sorted(_ADAPTERS)


def get_adapter(model_or_config: PreTrainedModel | PretrainedConfig) -> FamilyAdapter:
    """The adapter for a model or config, or an error listing the supported families."""
    config = getattr(model_or_config, "config", model_or_config)
    model_type = getattr(config, "base_model_type", None) or getattr(config, "model_type", None)
    if model_type not in _ADAPTERS:
        raise UnsupportedModelError(
            f"hf_resize does not support model_type {model_type!r}. Supported: {', '.join(supported_model_types())}. "
            "To add a family, describe it in a FamilyAdapter (hf_resize/adapters/) and call register_adapter."
        )
    return _ADAPTERS[model_type]
