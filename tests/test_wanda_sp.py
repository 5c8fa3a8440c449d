"""Wanda-sp: the shared method contract on every family, least-squares refit beats slicing, hidden is refused."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, logits, tiny_model
from transformers import AutoModelForCausalLM

import hf_resize
from hf_resize.errors import CalibrationError, ConfigError
from hf_resize.methods import WandaSPConfig
from hf_resize.methods.base import get_method
from hf_resize.methods.wanda_sp import wanda_sp_plan
from hf_resize.modeling.modeling_hf_resize import decoder_layers


def calibration() -> torch.Tensor:
    # 32 x 64 = 2048 tokens: WandaSPConfig.min_calibration_tokens.
    return torch.randint(3, 97, (32, 64), generator=torch.Generator().manual_seed(0))


def head_mode_for(family: str) -> str:
    return "query_per_group" if FAMILIES[family].get("num_key_value_heads", 2) == 1 else "kv_groups"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ratio_zero_changes_no_logit(family: str, input_ids: torch.Tensor) -> None:
    model = tiny_model(family)
    before = logits(model, input_ids)
    hf_resize.resize(model, WandaSPConfig(ratio=0.0, groups=("mlp", "heads")), calibration=calibration())
    assert (logits(model, input_ids) - before).abs().max().item() <= 1e-5


def _layer_inputs(model, tokens: torch.Tensor) -> list[tuple[tuple, dict]]:
    """Each decoder layer's (args, kwargs) in a forward pass of ``model``."""
    captured: list = [None] * len(decoder_layers(model))
    handles = [
        layer.register_forward_pre_hook(
            lambda m, a, k, i=i: captured.__setitem__(i, (a, k)), with_kwargs=True
        )
        for i, layer in enumerate(decoder_layers(model))
    ]
    with torch.no_grad():
        model(input_ids=tokens, use_cache=False)
    for handle in handles:
        handle.remove()
    return captured


def _layer_error(reference, model, inputs) -> float:
    """Σ over layers of ||layer_ref(x) − layer_new(x)||² on the reference model's layer inputs."""
    total = 0.0
    with torch.no_grad():
        for ref, new, (args, kwargs) in zip(
            decoder_layers(reference), decoder_layers(model), inputs, strict=True
        ):
            out_ref, out_new = ref(*args, **kwargs), new(*args, **kwargs)
            out_ref = out_ref[0] if isinstance(out_ref, tuple) else out_ref
            out_new = out_new[0] if isinstance(out_new, tuple) else out_new
            total += (out_ref - out_new).double().pow(2).sum().item()
    return total


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("groups", [("mlp",), ("heads",)])
def test_least_squares_beats_slicing_on_calibration_data(family: str, groups: tuple[str, ...]) -> None:
    tokens = calibration()
    reference = tiny_model(family)
    inputs = _layer_inputs(reference, tokens)
    errors, keeps = {}, {}
    for compensate in ("none", "least_squares"):
        model = tiny_model(family)
        config = WandaSPConfig(
            ratio=0.5, groups=groups, compensate=compensate, head_mode=head_mode_for(family)
        )
        hf_resize.resize(model, config, calibration=tokens)
        errors[compensate] = _layer_error(reference, model, inputs)
        keeps[compensate] = model.hf_resize_info["widths"]
    assert keeps["none"] == keeps["least_squares"]  # same units kept; only the consumer differs
    assert 0 < errors["least_squares"] < errors["none"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_save_load_round_trip(family: str, input_ids: torch.Tensor, tmp_path) -> None:
    model = tiny_model(family)
    config = WandaSPConfig(ratio=0.5, groups=("mlp", "heads"), head_mode="query_per_group")
    hf_resize.resize(model, config, calibration=calibration())
    expected = logits(model, input_ids)
    out = hf_resize.save_resized(model, tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert torch.equal(logits(loaded, input_ids), expected)
    assert loaded.config.intermediate_size == 32


def test_same_seed_same_weights() -> None:
    states = []
    for _ in range(2):
        model = tiny_model("llama")
        hf_resize.resize(model, WandaSPConfig(ratio=0.3, groups=("mlp", "heads")), calibration=calibration())
        states.append(model.state_dict())
    assert states[0].keys() == states[1].keys()
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_scores_follow_activations() -> None:
    """With equal down_proj column norms, the neurons with the largest activations are kept."""
    model = tiny_model("llama")
    with torch.no_grad():
        for layer in decoder_layers(model):
            layer.mlp.down_proj.weight.copy_(torch.nn.functional.normalize(layer.mlp.down_proj.weight, dim=0))
    width = model.config.intermediate_size
    diag = torch.arange(1, width + 1, dtype=torch.float64)
    stats = {"mlp_gram": {i: torch.diag(diag) for i in range(2)}, "attn_gram": {}, "tokens": 1}
    plan = wanda_sp_plan(model, WandaSPConfig(ratio=0.25, compensate="none"), stats)
    for group_plan in plan.groups:
        assert torch.equal(group_plan.keep, torch.arange(width // 4, width))


def test_hidden_group_is_refused() -> None:
    with pytest.raises(ConfigError, match="magnitude"):
        WandaSPConfig(groups=("mlp", "hidden"))
    config = WandaSPConfig()
    config.groups = ("hidden",)
    with pytest.raises(ConfigError, match="hidden"):
        hf_resize.resize(tiny_model("llama"), config, calibration=calibration())


@pytest.mark.parametrize("options", [dict(compensate="ols"), dict(damping=-0.1), dict(damping="a lot")])
def test_bad_options_are_config_errors(options: dict) -> None:
    with pytest.raises(ConfigError):
        WandaSPConfig(**options)
    with pytest.raises(ConfigError, match="valid"):
        WandaSPConfig.from_dict({"dampening": 0.1})


def test_registered_and_needs_calibration() -> None:
    assert get_method("wanda_sp").config_class is WandaSPConfig
    assert WandaSPConfig().to_dict()["method"] == "wanda_sp"
    with pytest.raises(CalibrationError):
        hf_resize.resize(tiny_model("llama"), WandaSPConfig(), calibration=torch.randint(3, 97, (8, 64)))
