"""FLAP-style fluctuation pruning: the variance it scores is the real variance, the contract holds, bad groups
are refused."""

from __future__ import annotations

import pytest
import torch
from conftest import FAMILIES, logits, tiny_model

import hf_resize
from hf_resize.calibration.collectors import collect_statistics
from hf_resize.errors import ConfigError
from hf_resize.methods import FLAPConfig
from hf_resize.methods.flap import flap_plan
from hf_resize.methods.flap.method import fluctuation
from hf_resize.modeling.modeling_hf_resize import decoder_layers


def calibration() -> torch.Tensor:
    return torch.randint(3, 97, (32, 64), generator=torch.Generator().manual_seed(0))


def test_fluctuation_is_the_variance_over_tokens() -> None:
    x = torch.randn(300, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * torch.arange(1, 6) + 3
    assert torch.allclose(fluctuation(x.T @ x, x.sum(0), 300), x.var(0, unbiased=False), atol=1e-9)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ratio_zero_changes_no_logit(family: str, input_ids: torch.Tensor) -> None:
    model = tiny_model(family)
    before = logits(model, input_ids)
    hf_resize.resize(model, FLAPConfig(ratio=0.0, groups=("mlp", "heads")), calibration=calibration())
    assert (logits(model, input_ids) - before).abs().max().item() <= 1e-5


def test_keeps_the_neurons_with_the_largest_fluctuation_times_weight() -> None:
    model = tiny_model("llama")
    stats = collect_statistics(model, calibration(), FLAPConfig.needs, cache=False)
    plan = flap_plan(model, FLAPConfig(ratio=0.25), stats)
    for group_plan in plan.groups:
        layer = decoder_layers(model)[group_plan.group.layer]
        down = layer.mlp.down_proj.weight.detach().double()
        gram, total = stats["mlp_gram"][group_plan.group.layer], stats["mlp_mean"][group_plan.group.layer]
        score = fluctuation(gram, total, stats["tokens"]) * down.pow(2).sum(0)
        expected = torch.argsort(-score)[: group_plan.new_width].sort().values
        assert torch.equal(group_plan.keep, expected)


def test_refit_lowers_the_error_of_slicing(input_ids: torch.Tensor) -> None:
    dense = tiny_model("llama")
    before = logits(dense, input_ids)
    errors = {}
    for compensate in ("none", "least_squares"):
        model = hf_resize.resize(tiny_model("llama"), FLAPConfig(ratio=0.5, compensate=compensate), calibration=calibration())
        errors[compensate] = (logits(model, input_ids) - before).pow(2).mean().item()
    assert errors["least_squares"] < errors["none"]


@pytest.mark.parametrize(("options", "message"), [
    ({"groups": ("hidden",)}, "leave 'hidden' out"),
    ({"compensate": "bias"}, "compensate must be one of"),
    ({"damping": -0.1}, "damping must be a number"),
])
def test_bad_options_are_refused(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        FLAPConfig(**options)
