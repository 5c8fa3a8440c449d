"""lm-eval model type ``hf-resize``: load a model, resize it on the fly with any hf_resize method, then score it.

    hf-resize-lm-eval --model hf-resize \\
        --model_args pretrained=smollm2-135m,method=magnitude,ratio=0.25 \\
        --tasks austen --include_path "$(python -m hf_resize.evaluation.tasks)"

lm-eval (0.4.x) has no plugin discovery for model types, so the plain ``lm_eval`` command only knows
``hf-resize`` once this module is imported; ``hf-resize-lm-eval`` (or ``python -m hf_resize.evaluation.lm_eval_cli``)
is ``lm_eval`` with the registration done first. In Python, ``import hf_resize`` registers it lazily.

Model args (comma-separated ``key=value``; lm-eval splits on commas, so list values use ``+``):
``pretrained`` (built-in name, folder or Hub id), ``method`` (omit for the dense model), ``ratio``,
``groups`` (e.g. ``mlp+heads``), ``target`` (``width``/``body``), ``head_mode``, ``seed``, ``calibration``
(``austen``, a .txt/.jsonl file or a Hub dataset), ``num_samples``, ``seq_len``, any other option of the
method's config (e.g. ``compensate=none``), plus HFLM's own args (``max_length``, default 1024; ``batch_size``;
``device``; ``dtype``, applied after resizing, which runs in float32).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM

from hf_resize.errors import ConfigError

MODEL_TYPE = "hf-resize"
_LIST_SEPARATORS = ("+", "|", ";")


def _method_config(method: str, values: dict[str, Any]):
    from hf_resize.methods import get_method

    spec = get_method(method)
    if isinstance(values.get("groups"), str):
        groups = values["groups"]
        for sep in _LIST_SEPARATORS:
            groups = groups.replace(sep, ",")
        values["groups"] = groups
    return spec.config_class.from_dict(values)


def _dtype(value: str | torch.dtype | None) -> torch.dtype | None:
    if value is None or value == "auto" or isinstance(value, torch.dtype):
        return None if value == "auto" else value
    dtype = getattr(torch, str(value), None)
    if not isinstance(dtype, torch.dtype):
        raise ConfigError(f"dtype must be a torch dtype name such as float32 or bfloat16, got {value!r}.")
    return dtype


@register_model(MODEL_TYPE)
class HFResizeLM(HFLM):
    """HFLM over a model that hf_resize loads and (when ``method`` is given) resizes before scoring."""

    def __init__(
        self,
        pretrained: str,
        method: str | None = None,
        calibration: str = "austen",
        num_samples: int = 128,
        seq_len: int = 512,
        max_length: int | None = 1024,
        device: str | None = None,
        dtype: str | torch.dtype | None = "auto",
        trust_remote_code: bool = False,
        tokenizer: Any = None,
        **kwargs: Any,
    ) -> None:
        from hf_resize.data.models import load_model
        from hf_resize.methods import get_method
        from hf_resize.resize import resize

        config_fields: set[str] = set()
        if method is not None:
            config_fields = {f.name for f in dataclasses.fields(get_method(str(method)).config_class)}
        values = {k: kwargs.pop(k) for k in list(kwargs) if k in config_fields}
        if method is None and any(k in kwargs for k in ("ratio", "groups", "target", "head_mode")):
            raise ConfigError("hf-resize model args set ratio/groups/target but no method; add method=magnitude (or another).")
        config = _method_config(str(method), values) if method is not None else None  # validate before loading

        model, loaded_tokenizer = load_model(str(pretrained), trust_remote_code=bool(trust_remote_code))
        if tokenizer is None:
            tokenizer = loaded_tokenizer
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer, trust_remote_code=bool(trust_remote_code))
        if tokenizer is None:
            raise ConfigError(f"{pretrained} has no tokenizer files; add tokenizer=<name or folder> to --model_args.")
        if config is not None:
            resize(model, config, calibration=calibration, tokenizer=tokenizer,
                   num_samples=int(num_samples), seq_len=int(seq_len))
        self.hf_resize_info: dict[str, Any] | None = getattr(model, "hf_resize_info", None)
        target_dtype = _dtype(dtype)
        if target_dtype is not None:
            model = model.to(target_dtype)
        if device is None or (str(device).startswith("cuda") and not torch.cuda.is_available()):
            device = "cuda" if torch.cuda.is_available() else "cpu"
        model = model.to(device).eval()
        super().__init__(pretrained=model, tokenizer=tokenizer, max_length=max_length, **kwargs)
        self.hf_resize_source = str(pretrained)

    def get_model_info(self) -> dict:
        info = super().get_model_info()
        info["hf_resize"] = {"source": self.hf_resize_source, **(self.hf_resize_info or {"method": None})}
        return info


__all__ = ["MODEL_TYPE", "HFResizeLM"]
