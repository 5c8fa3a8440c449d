"""Config for models whose layers have different widths (shipped as remote code; needs only transformers).

The saved config is the base family's config plus ``base_model_type`` and ``hf_resize_layer_widths``:
one dict per layer of the width keys that differ from the global values.
"""

from __future__ import annotations

from typing import Any

from transformers import AutoConfig, PretrainedConfig

_OWN_KEYS = ("model_type", "base_model_type", "auto_map", "transformers_version", "architectures")


class HFResizeConfig(PretrainedConfig):
    model_type = "hf_resize"
    base_model_type: str = "llama"
    hf_resize_layer_widths: list | None = None

    def to_base_config(self) -> PretrainedConfig:
        """The stock config of the base family, carrying the per-layer widths as an extra key."""
        values = {k: v for k, v in self.to_dict().items() if k not in _OWN_KEYS}
        return AutoConfig.for_model(self.base_model_type, **values)

    @classmethod
    def from_base_config(cls, base: PretrainedConfig, auto_map: dict[str, str] | None = None) -> HFResizeConfig:
        values = {k: v for k, v in base.to_dict().items() if k not in _OWN_KEYS}
        config = cls(base_model_type=base.model_type, **values)
        if auto_map:
            config.auto_map = auto_map
        return config


class LayerConfigView:
    """One layer's view of a shared config: its own widths, everything else read live from the shared one.

    Live reads matter: attention reads ``config._attn_implementation`` at call time.
    """

    def __init__(self, base: Any, overrides: dict[str, Any]) -> None:
        object.__setattr__(self, "_base", base)
        object.__setattr__(self, "_overrides", dict(overrides))

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        overrides = object.__getattribute__(self, "_overrides")
        if name in overrides:
            return overrides[name]
        return getattr(object.__getattribute__(self, "_base"), name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._overrides:
            self._overrides[name] = value
        else:
            setattr(self._base, name, value)
