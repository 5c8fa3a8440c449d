"""DOTResize: exact at m = n, merging recovers planted duplicate neurons where pruning cannot, the QR hidden
basis keeps logits through RMSNorm, the shared contract on every family, and config validation."""

from __future__ import annotations

import warnings

import pytest
import torch
from conftest import FAMILIES, logits, tiny_model
from transformers import AutoModelForCausalLM

import hf_resize
from hf_resize.calibration.collectors import collect_statistics
from hf_resize.errors import ConfigError
from hf_resize.groups import neuron_groups
from hf_resize.methods import DOTResizeConfig, WandaSPConfig
from hf_resize.methods.base import get_method
from hf_resize.methods.dotresize import dotresize_plan, transport_merge
from hf_resize.methods.dotresize.transport import (
    choose_targets,
    cost_matrix,
    merge_matrix,
    orthonormal_basis,
    transport_plan,
    unit_gram,
)
from hf_resize.methods.wanda_sp import wanda_sp_plan
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan, Plan
from hf_resize.surgery import apply_plan


def calibration(seed: int = 0) -> torch.Tensor:
    return torch.randint(3, 97, (32, 64), generator=torch.Generator().manual_seed(seed))


def head_mode_for(family: str) -> str:
    return "query_per_group" if FAMILIES[family].get("num_key_value_heads", 2) == 1 else "kv_groups"


def _gram(n: int, seed: int = 0) -> torch.Tensor:
    x = torch.randn(200, n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x.T @ x


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_ratio_zero_changes_no_logit(family: str, input_ids: torch.Tensor) -> None:
    model = tiny_model(family)
    before = logits(model, input_ids)
    groups = ("mlp", "heads", "hidden")
    hf_resize.resize(model, DOTResizeConfig(ratio=0.0, groups=groups), calibration=calibration())
    assert (logits(model, input_ids) - before).abs().max().item() <= 1e-5


def test_exact_transport_with_as_many_targets_as_units_is_the_identity() -> None:
    gram = _gram(12)
    targets = choose_targets(gram, 12, "kmeans++", seed=0)
    plan = transport_plan(cost_matrix(gram, targets, "sqeuclidean"), "emd", 0.05, 1000)
    assert torch.equal(targets, torch.arange(12))
    assert torch.allclose(merge_matrix(plan), torch.eye(12, dtype=torch.float64), atol=1e-12)


def test_entropic_plan_has_the_uniform_marginals_and_approaches_exact_as_epsilon_shrinks() -> None:
    gram = _gram(20, seed=1)
    cost = cost_matrix(gram, choose_targets(gram, 15, "activation_norm", 0), "sqeuclidean")
    exact = transport_plan(cost, "emd", 0.05, 1000)
    errors = []
    for eps in (0.5, 0.05, 0.005):
        plan = transport_plan(cost, "sinkhorn", eps, 5000)
        assert torch.allclose(plan.sum(1), torch.full((20,), 1 / 20, dtype=plan.dtype), atol=1e-6)
        assert torch.allclose(plan.sum(0), torch.full((15,), 1 / 15, dtype=plan.dtype), atol=1e-6)
        errors.append(float((plan - exact).abs().sum()))
    assert errors[0] > errors[1] > errors[2]


def test_kmeans_targets_skip_duplicates_and_norm_targets_take_the_largest() -> None:
    x = torch.randn(100, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    x = torch.cat([x, x], dim=1)  # units 6..11 duplicate 0..5
    gram = x.T @ x
    picked = choose_targets(gram, 6, "kmeans++", seed=0)
    assert sorted(int(i) % 6 for i in picked) == list(range(6))
    norm = choose_targets(gram, 4, "activation_norm", seed=0)
    assert set(norm.tolist()) == set(torch.argsort(-gram.diagonal())[:4].tolist())


def test_unit_gram_sums_the_diagonal_of_each_block() -> None:
    gram = _gram(6)
    blocks = unit_gram(gram, 3)
    assert torch.allclose(blocks[0, 1], gram[0:3, 3:6].diagonal().sum())
    assert blocks.shape == (2, 2)


def _duplicated_llama():
    """A tiny Llama whose MLP neurons 32..63 copy neurons 0..31 (gate and up rows) in every layer."""
    model = tiny_model("llama", intermediate_size=64)
    with torch.no_grad():
        for layer in decoder_layers(model):
            for proj in (layer.mlp.gate_proj, layer.mlp.up_proj):
                proj.weight[32:] = proj.weight[:32]
    return model


def test_merging_recovers_planted_duplicates_where_pruning_cannot(input_ids: torch.Tensor) -> None:
    dense = _duplicated_llama()
    before = logits(dense, input_ids)
    tokens = calibration()
    stats = collect_statistics(dense, tokens, DOTResizeConfig.needs | WandaSPConfig.needs, cache=False)
    merged = _duplicated_llama()
    config = DOTResizeConfig(ratio=0.5, solver="emd", consumer="transport", space="activation", targets="kmeans++")
    apply_plan(merged, dotresize_plan(merged, config, stats))
    pruned = _duplicated_llama()
    apply_plan(pruned, wanda_sp_plan(pruned, WandaSPConfig(ratio=0.5, compensate="none"), stats))
    merged_error = (logits(merged, input_ids) - before).abs().max().item()
    pruned_error = (logits(pruned, input_ids) - before).abs().max().item()
    assert merged.config.intermediate_size == pruned.config.intermediate_size == 32
    assert merged_error <= 1e-4
    assert pruned_error > 100 * max(merged_error, 1e-6)


def test_orthogonal_hidden_basis_keeps_logits_through_rmsnorm(input_ids: torch.Tensor) -> None:
    model = tiny_model("llama")
    before = logits(model, input_ids)
    n = model.config.hidden_size
    stats = collect_statistics(model, calibration(), frozenset({"hidden_gram"}), cache=False)
    gram = sum(stats["hidden_gram"].values())
    _, producer, _ = transport_merge(gram, n, DOTResizeConfig(epsilon=0.5), seed=0)  # m = n: a full-rank mix
    basis = orthonormal_basis(producer)
    assert not torch.allclose(producer, torch.eye(n, dtype=producer.dtype), atol=1e-3)
    assert torch.allclose(basis.T @ basis, torch.eye(n, dtype=basis.dtype), atol=1e-10)
    group = neuron_groups(model, ("hidden",))[0]
    apply_plan(model, Plan("dotresize", [GroupPlan(group, producer=basis.T.contiguous(), consumer=basis)]))
    assert (logits(model, input_ids) - before).abs().max().item() <= 1e-4


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_resized_model_saves_and_loads_with_stock_transformers(family: str, input_ids: torch.Tensor, tmp_path) -> None:
    model = tiny_model(family)
    config = DOTResizeConfig(ratio=0.3, groups=("mlp", "heads", "hidden"), head_mode=head_mode_for(family))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # gemma3's hidden width is pruned (documented warning)
        hf_resize.resize(model, config, calibration=calibration())
    after = logits(model, input_ids)
    assert hf_resize.parameter_counts(model).body < hf_resize.parameter_counts(tiny_model(family)).body
    loaded = AutoModelForCausalLM.from_pretrained(hf_resize.save_resized(model, tmp_path / "out")).eval()
    assert (logits(loaded, input_ids) - after).abs().max().item() <= 1e-6


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"targets": "random"}, "targets must be one of"),
        ({"cost": "l1"}, "cost must be one of"),
        ({"solver": "lp"}, "solver must be one of"),
        ({"epsilon": 0}, "epsilon must be a number > 0"),
        ({"iterations": 0}, "iterations must be a positive integer"),
        ({"consumer": "pinv"}, "consumer must be one of"),
        ({"merge": "yes"}, "merge must be true or false"),
        ({"hidden_basis": "svd"}, "hidden_basis must be one of"),
        ({"damping": -1}, "damping must be a number >= 0"),
    ],
)
def test_bad_options_are_refused_with_the_fix(options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DOTResizeConfig(**options)


def test_registered_as_dotresize() -> None:
    assert get_method("dotresize").config_class is DOTResizeConfig
    assert DOTResizeConfig().to_dict()["method"] == "dotresize"


def test_marginal_gains_are_the_energy_a_refit_on_each_prefix_explains() -> None:
    from hf_resize.methods.dotresize.allocation import marginal_gains
    from hf_resize.methods.refit import least_squares_refit

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(400, 10, dtype=torch.float64, generator=gen) @ torch.randn(10, 10, dtype=torch.float64, generator=gen)
    w = torch.randn(4, 10, dtype=torch.float64, generator=gen)
    gram, order = x.T @ x, torch.tensor([3, 0, 7, 1, 9, 2, 4, 8, 5, 6])
    raw = torch.linalg.solve_triangular(
        torch.linalg.cholesky(gram[order][:, order]), (w @ gram[:, order]).T, upper=False
    ).pow(2).sum(1)
    total = (x @ w.T).pow(2).sum()
    for k in (1, 4, 10):
        refit = least_squares_refit(w, gram, order[:k], damping=0.0)
        residual = (x @ w.T - x[:, order[:k]] @ refit.T).pow(2).sum()
        assert torch.allclose(total - residual, raw[:k].sum(), rtol=1e-8)
    gains = marginal_gains(w, gram, order, damping=0.0)
    assert torch.all(gains[1:] <= gains[:-1]) and torch.all(gains <= raw + 1e-9)


def test_allocation_keeps_the_total_and_the_minimum_and_follows_the_gains() -> None:
    from hf_resize.methods.dotresize.allocation import allocate

    gains = [torch.tensor([9.0, 8, 7, 6, 5, 4]), torch.tensor([1.0, 0.5, 0.2, 0.1, 0.05, 0.01])]
    assert allocate(gains, 6, minimum=1) == [5, 1]
    assert allocate(gains, 6, minimum=2) == [4, 2]
    with pytest.raises(ValueError):
        allocate(gains, 3, minimum=2)


def test_error_allocation_gives_per_layer_widths_with_the_uniform_budget(input_ids: torch.Tensor, tmp_path) -> None:
    model = tiny_model("llama", num_hidden_layers=3, intermediate_size=64)
    uniform = hf_resize.resize(tiny_model("llama", num_hidden_layers=3, intermediate_size=64),
                               DOTResizeConfig(ratio=0.4, merge=False), calibration=calibration())
    hf_resize.resize(model, DOTResizeConfig(ratio=0.4, allocation="error"), calibration=calibration())
    widths = [layer.mlp.down_proj.in_features for layer in decoder_layers(model)]
    assert sum(widths) == 3 * uniform.config.intermediate_size and len(set(widths)) > 1
    assert hf_resize.parameter_counts(model).body == hf_resize.parameter_counts(uniform).body
    after = logits(model, input_ids)
    loaded = AutoModelForCausalLM.from_pretrained(hf_resize.save_resized(model, tmp_path / "out")).eval()
    assert [layer.mlp.down_proj.in_features for layer in decoder_layers(loaded)] == widths
    assert (logits(loaded, input_ids) - after).abs().max().item() <= 1e-6


def test_planning_groups_in_threads_gives_the_sequential_plan() -> None:
    model = tiny_model("llama")
    config = DOTResizeConfig(ratio=0.5, groups=("mlp", "heads"))
    statistics = collect_statistics(model, calibration(), config.needs, progress=False)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        threaded = dotresize_plan(model, config, statistics)
        torch.set_num_threads(1)  # one worker: the groups run one after the other
        sequential = dotresize_plan(model, config, statistics)
    finally:
        torch.set_num_threads(threads)
    assert [p.group.name for p in threaded.groups] == [p.group.name for p in sequential.groups]
    for a, b in zip(threaded.groups, sequential.groups, strict=True):
        assert torch.allclose(a.producer, b.producer, atol=1e-12) and torch.allclose(a.consumer, b.consumer, atol=1e-12)
        assert torch.allclose(a.consumer_weight, b.consumer_weight, atol=1e-6)
