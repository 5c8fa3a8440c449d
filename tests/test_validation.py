"""Bad input fails before work starts with a message that names the fix."""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_model
from transformers import GPT2Config, GPT2LMHeadModel

import hf_resize
from hf_resize.errors import CalibrationError, UnsupportedModelError
from hf_resize.validation import check_calibration_size


def test_unknown_family_lists_supported():
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(UnsupportedModelError, match="llama.*phi3"):
        hf_resize.resize(model, hf_resize.MagnitudeConfig())


def test_meta_weights_are_refused():
    with torch.device("meta"):
        model = tiny_model("llama")
    with pytest.raises(UnsupportedModelError, match="meta device"):
        hf_resize.resize(model, hf_resize.MagnitudeConfig())


def test_quantized_model_is_refused():
    model = tiny_model("llama")
    model.config.quantization_config = {"quant_method": "bitsandbytes"}
    with pytest.raises(UnsupportedModelError, match="quantized"):
        hf_resize.resize(model, hf_resize.MagnitudeConfig())


def test_nan_weights_are_refused_before_work():
    model = tiny_model("llama")
    with torch.no_grad():
        model.model.layers[1].self_attn.q_proj.weight[0, 0] = float("inf")
    before = model.model.layers[0].mlp.down_proj.weight.shape
    with pytest.raises(UnsupportedModelError, match="NaN or Inf"):
        hf_resize.resize(model, hf_resize.MagnitudeConfig())
    assert model.model.layers[0].mlp.down_proj.weight.shape == before


def test_too_little_calibration():
    with pytest.raises(CalibrationError, match="at least 2048"):
        check_calibration_size(torch.zeros(2, 10, dtype=torch.long), 2048, "wanda_sp")
    with pytest.raises(CalibrationError, match="austen"):
        check_calibration_size(None, 1, "wanda_sp")
