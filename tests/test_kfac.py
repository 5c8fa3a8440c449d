"""KFAC pruning: the predicted loss increase ranks single-unit removals like the true one, OBS compensation lowers
the layer's reconstruction error, greedy removal respects the GQA structure, config validation."""

from __future__ import annotations

import pytest
import torch
from conftest import logits, tiny_model
from scipy.stats import spearmanr
from torch.nn import functional as F

import hf_resize
from hf_resize.calibration.collectors import collect_statistics
from hf_resize.errors import ConfigError
from hf_resize.methods import KFACPruneConfig
from hf_resize.methods.base import get_method
from hf_resize.methods.kfac.method import consumer_factors
from hf_resize.methods.kfac.obs import greedy_removal, predicted_increase
from hf_resize.methods.refit import least_squares_refit
from hf_resize.methods.targets import planned_widths

TOKENS = torch.randint(3, 97, (32, 64), generator=torch.Generator().manual_seed(0))


def _mean_loss(model) -> float:
    with torch.no_grad():
        logits = model(input_ids=TOKENS).logits
    # the same normalisation as the statistics: summed next-token loss over all N = B * L positions
    return float(F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), TOKENS[:, 1:].reshape(-1), reduction="sum")) / TOKENS.numel()


def _compensated(weight: torch.Tensor, a: torch.Tensor, span: slice, damping: float = 0.01) -> torch.Tensor:
    h = torch.linalg.inv(a + damping * a.diagonal().mean() * torch.eye(a.shape[0], dtype=a.dtype))
    new = weight - weight[:, span] @ (torch.linalg.inv(h[span, span]) @ h[span])
    new[:, span] = 0
    return new


@pytest.mark.parametrize(("name", "unit"), [("mlp.down_proj", 1), ("self_attn.o_proj", 8)])
@pytest.mark.parametrize("compensate", [False, True])
def test_predicted_loss_increase_ranks_single_removals_like_the_true_increase(name: str, unit: int, compensate: bool) -> None:
    model = tiny_model("llama").double()
    statistics = collect_statistics(model, TOKENS, frozenset({"kfac_consumers", "kfac_gradient"}), progress=False)
    base = _mean_loss(model)
    for layer in (0, 1):
        linear = model.model.layers[layer].get_submodule(name)
        weight = linear.weight.data.clone()
        a, g, d = consumer_factors(statistics, layer, name, tuple(weight.shape))
        predicted = predicted_increase(weight, a, g, d, unit, compensate=compensate)
        true = []
        for j in range(weight.shape[1] // unit):
            span = slice(j * unit, (j + 1) * unit)
            if compensate:
                linear.weight.data = _compensated(weight, a, span)
            else:
                linear.weight.data = weight.clone()
                linear.weight.data[:, span] = 0
            true.append(_mean_loss(model) - base)
        linear.weight.data = weight
        assert spearmanr(predicted, true).statistic >= 0.8, (layer, name)


def test_compensation_lowers_the_layer_reconstruction_error() -> None:
    model = tiny_model("llama").double()
    statistics = collect_statistics(model, TOKENS, frozenset({"kfac_consumers"}), progress=False)
    weight = model.model.layers[0].mlp.down_proj.weight.data
    a, g, _ = consumer_factors(statistics, 0, "mlp.down_proj", tuple(weight.shape))
    kept, compensated, _ = greedy_removal(weight, a, g, None, remove=24)
    assert kept.shape == (40,)

    def error(new: torch.Tensor) -> float:  # E||W x − W' x_kept||² over the calibration activations
        diff = weight.clone()
        diff[:, kept] -= new
        return float(((diff @ a) * diff).sum())

    # the sequence of one-unit OBS updates reaches the least-squares optimum for the kept set (up to the damping)
    optimum = least_squares_refit(weight, a, kept, damping=0.0)
    assert error(optimum) <= error(compensated) <= 1.01 * error(optimum)
    assert error(compensated) < 0.7 * error(weight[:, kept])


def test_greedy_head_removal_keeps_the_same_count_in_every_kv_group() -> None:
    model = tiny_model("llama").double()
    statistics = collect_statistics(model, TOKENS, frozenset({"kfac_consumers"}), progress=False)
    weight = model.model.layers[1].self_attn.o_proj.weight.data
    a, g, _ = consumer_factors(statistics, 1, "self_attn.o_proj", tuple(weight.shape))
    quota = (torch.arange(6) // 3, 1)
    kept, w, _ = greedy_removal(weight, a, g, None, remove=2, unit=8, quota=quota)
    assert torch.bincount(kept // 3, minlength=2).tolist() == [2, 2]
    assert w.shape == (48, 32)


@pytest.mark.parametrize("head_mode", ["query_per_group", "kv_groups"])
def test_resize_removes_units_and_generates(head_mode: str, input_ids: torch.Tensor) -> None:
    model = tiny_model("qwen2")
    config = KFACPruneConfig(ratio=0.5, groups=("mlp", "heads"), head_mode=head_mode)
    heads, kv_heads = planned_widths(model, config)["heads.0"]
    hf_resize.resize(model, config, calibration=TOKENS)
    layer = model.model.layers[0]
    assert layer.mlp.down_proj.in_features == 32
    assert layer.self_attn.o_proj.in_features == heads * 8 < 48
    assert layer.self_attn.k_proj.out_features == kv_heads * 8
    with torch.no_grad():
        assert torch.isfinite(model(input_ids=input_ids).logits).all()


def test_first_order_option_decides_the_statistics() -> None:
    assert KFACPruneConfig(first_order=True).needs == {"kfac_consumers", "kfac_gradient"}
    assert KFACPruneConfig().needs == {"kfac_consumers"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(groups=("hidden",)), "not the hidden width"),
        (dict(steps=0), "steps must be an integer >= 1"),
        (dict(rounds=0), "rounds must be an integer >= 1"),
        (dict(train_steps=-1), "train_steps must be an integer >= 0"),
        (dict(learning_rate=0), "learning_rate must be a number > 0"),
        (dict(flatness=-1.0), "flatness must be a number >= 0"),
        (dict(first_order="yes"), "first_order must be true or false"),
    ],
)
def test_bad_options_are_refused_with_the_fix(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        KFACPruneConfig(**options)


def test_registered_as_kfac() -> None:
    assert get_method("kfac").config_class is KFACPruneConfig


def test_interleaved_schedule_lands_on_the_planned_widths_and_saves(input_ids: torch.Tensor, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    model = tiny_model("mistral")
    config = KFACPruneConfig(ratio=0.5, groups=("mlp", "heads"), steps=2, train_steps=2, flatness=1.0, learning_rate=1e-3)
    planned = planned_widths(model, config)
    hf_resize.resize(model, config, calibration=TOKENS)
    schedule = model.hf_resize_info["schedule"]
    assert [step["widths"]["mlp.0"] for step in schedule["steps"]] == [48, planned["mlp.0"][0]]
    assert schedule["steps"][-1]["widths"]["heads.0"] == planned["heads.0"][0]
    assert all(step["history"]["merge_error"][0] <= 1e-5 for step in schedule["steps"])
    out = hf_resize.save_resized(model, tmp_path / "out")
    loaded = AutoModelForCausalLM.from_pretrained(out).eval()
    assert (logits(loaded, input_ids) - logits(model.eval(), input_ids)).abs().max() <= 1e-5


def test_train_steps_zero_is_one_shot() -> None:
    assert not KFACPruneConfig().interleaved
    assert KFACPruneConfig(train_steps=5).interleaved and KFACPruneConfig(steps=3).interleaved


def test_training_without_calibration_tokens_is_refused_before_any_change(input_ids: torch.Tensor) -> None:
    from hf_resize.errors import CalibrationError

    model = tiny_model("llama")
    before = logits(model, input_ids)
    statistics = collect_statistics(model, TOKENS, KFACPruneConfig().needs, progress=False)
    with pytest.raises(CalibrationError, match="needs calibration data"):
        hf_resize.resize(model, KFACPruneConfig(ratio=0.5, train_steps=2), statistics=statistics)
    assert torch.equal(logits(model, input_ids), before)


def test_precomputed_statistics_serve_the_first_step_and_calibration_the_training() -> None:
    model = tiny_model("llama")
    config = KFACPruneConfig(ratio=0.5, train_steps=1)
    statistics = collect_statistics(model, TOKENS, config.needs, progress=False)
    hf_resize.resize(model, config, calibration=TOKENS, statistics=statistics)
    assert len(model.hf_resize_info["schedule"]["steps"]) == 1
