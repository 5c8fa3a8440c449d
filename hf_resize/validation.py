"""Checks run before any work starts, so bad input fails fast with a message that names the fix."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter
from hf_resize.errors import CalibrationError, OutputExistsError, UnsupportedModelError


def check_model(model: PreTrainedModel) -> None:
    """Supported family, real float weights on a device, all finite."""
    if not isinstance(model, PreTrainedModel):
        raise UnsupportedModelError(
            f"Expected a transformers PreTrainedModel, got {type(model).__name__}: "
            "load it with AutoModelForCausalLM.from_pretrained(...)."
        )
    get_adapter(model)
    config = model.config
    if getattr(model, "hf_quantizer", None) is not None or getattr(config, "quantization_config", None):
        raise UnsupportedModelError(
            "The model is quantized; hf_resize needs float weights. Load it without quantization_config "
            "(for a GGUF file: from_pretrained(dir, gguf_file=..., dtype=torch.float32), then set "
            "model.hf_quantizer = None and delete config.quantization_config)."
        )
    for name, param in model.named_parameters():
        if param.is_meta and any(hasattr(m, "_hf_hook") for m in model.modules()):
            raise UnsupportedModelError(
                f"Parameter {name} is offloaded by accelerate (device_map with 'cpu'/'disk' offload); hf_resize "
                "edits weights in place and needs them all loaded. Load without offloading (device_map=None, or one "
                "device with enough memory)."
            )
        if param.is_meta:
            raise UnsupportedModelError(
                f"Parameter {name} is on the meta device (weights not loaded). Load the model with real weights, "
                "without init_empty_weights or device_map='meta'."
            )
        if not param.dtype.is_floating_point:
            raise UnsupportedModelError(
                f"Parameter {name} has dtype {param.dtype}; hf_resize needs float weights (load with dtype=torch.float32)."
            )
        if not torch.isfinite(param).all():
            raise UnsupportedModelError(f"Parameter {name} contains NaN or Inf; fix or re-download the checkpoint.")


def check_calibration_size(tokens: torch.Tensor | None, needed: int, method: str) -> None:
    if needed <= 0:
        return
    have = 0 if tokens is None else int(tokens.numel())
    if have < needed:
        raise CalibrationError(
            f"Method {method!r} needs at least {needed} calibration tokens, got {have}. "
            "Pass calibration='austen' (built in) or more text, or raise num_samples / seq_len."
        )


def check_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing output folder unless ``overwrite``; refuse an unwritable parent."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"Output folder {out} already exists. Choose another path or pass overwrite=True (--overwrite).")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path {out} exists and is not a folder; choose another path.")
    parent = out.resolve().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputExistsError(
            f"Cannot create the folder {parent} for the output ({exc.strerror or exc.__class__.__name__}); "
            "choose a writable output path."
        ) from exc
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise OutputExistsError(f"Cannot write into {parent}; choose a writable output path.")
    return out


def check_logits_finite(model: PreTrainedModel) -> None:
    """A resized model that produces NaN/Inf is never returned or written."""
    vocab = model.config.vocab_size
    ids = torch.arange(min(8, vocab)).unsqueeze(0).to(model.device)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    if not torch.isfinite(logits).all():
        raise UnsupportedModelError(
            "The resized model produces NaN/Inf logits; nothing was written. Try a smaller ratio or float32 weights."
        )


def check_calibration_tokens(tokens: torch.Tensor | None, model: PreTrainedModel) -> None:
    """Integer token ids inside the model's vocabulary (an out-of-range id would crash the embedding lookup)."""
    if not isinstance(tokens, torch.Tensor) or tokens.numel() == 0 or tokens.dtype.is_floating_point:
        return  # the collector names the right shape and dtype
    vocab = model.get_input_embeddings().num_embeddings
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0 or high >= vocab:
        raise CalibrationError(
            f"Calibration token ids must lie in [0, {vocab}) (the model's vocabulary), got [{low}, {high}]; "
            "tokenize with this model's tokenizer."
        )


def check_statistics_finite(statistics: dict, model: PreTrainedModel) -> None:
    """Calibration statistics with NaN/Inf (activations overflowing) would silently poison every plan."""
    for kind, per_layer in statistics.items():
        if not isinstance(per_layer, dict):
            continue
        bad = sorted(
            index
            for index, state in per_layer.items()
            if isinstance(state, torch.Tensor) and state.dtype.is_floating_point and not torch.isfinite(state).all()
        )
        if bad:
            dtype = next(model.parameters()).dtype
            raise CalibrationError(
                f"Calibration activations ({kind}) of layer(s) {bad} contain NaN or Inf: the model overflows on "
                f"this data in {dtype}. Check its weights for huge values, or load it in float32 "
                "(dtype=torch.float32) if it is in half precision; nothing was changed."
            )
