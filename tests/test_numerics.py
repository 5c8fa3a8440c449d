"""Numerical robustness: dead and duplicate neurons, rank-deficient Gram matrices and half-precision models never
crash or produce NaN; the damped least-squares refit stays finite even without damping."""

from __future__ import annotations

import pytest
import torch
from conftest import logits, tiny_model

import hf_resize
from hf_resize.calibration import collect_statistics
from hf_resize.methods.refit import least_squares_refit


@pytest.fixture(autouse=True)
def _no_statistics_cache(monkeypatch):
    """Keep the on-disk statistics cache out of these tests (a hit would also hide recomputation)."""
    monkeypatch.setenv("HF_RESIZE_NO_CACHE", "1")


IDS = torch.randint(3, 97, (2, 12), generator=torch.Generator().manual_seed(1))
TOKENS = torch.randint(3, 97, (16, 160), generator=torch.Generator().manual_seed(0))
CONFIGS = {
    "magnitude": lambda **kw: hf_resize.MagnitudeConfig(groups=("mlp", "heads", "hidden"), **kw),
    "wanda_sp": lambda **kw: hf_resize.WandaSPConfig(groups=("mlp", "heads"), **kw),
    "wanda_sp-undamped": lambda **kw: hf_resize.WandaSPConfig(groups=("mlp", "heads"), damping=0.0, **kw),
}


def _finite_after(model, config, calibration=TOKENS):
    hf_resize.resize(model, config, calibration=calibration)
    out = logits(model, IDS)
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p).all() for p in model.parameters())
    return out


def _kill_and_duplicate(model) -> None:
    """Dead MLP neurons (zero rows and columns), duplicate neurons, and a dead attention head in every layer."""
    with torch.no_grad():
        for layer in model.model.layers:
            mlp, attn = layer.mlp, layer.self_attn
            for proj in (mlp.gate_proj, mlp.up_proj):
                proj.weight[:20] = 0  # 20 of 64 neurons dead
                proj.weight[30:40] = proj.weight[40:50]  # 10 duplicates
            mlp.down_proj.weight[:, :20] = 0
            mlp.down_proj.weight[:, 30:40] = mlp.down_proj.weight[:, 40:50]
            head_dim = model.config.head_dim
            attn.q_proj.weight[:head_dim] = 0  # query head 0 dead
            attn.o_proj.weight[:, :head_dim] = 0


@pytest.mark.parametrize("method", sorted(CONFIGS))
def test_dead_and_duplicate_neurons(method):
    model = tiny_model("llama")
    _kill_and_duplicate(model)
    _finite_after(model, CONFIGS[method](ratio=0.5))


@pytest.mark.parametrize("method", ["wanda_sp", "wanda_sp-undamped"])
def test_rank_deficient_gram_from_one_repeated_token(method):
    model = tiny_model("qwen2")
    repeated = torch.full((128, 16), 7, dtype=torch.long)  # 16 distinct positions: rank <= 16 of 64
    stats = collect_statistics(model, repeated, hf_resize.WandaSPConfig.needs)
    gram = stats["mlp_gram"][0]
    assert gram.dtype == torch.float64  # float64 accumulation
    # the point of the test: a singular Gram matrix (float32 batch products leave ~1e-7 relative noise)
    assert torch.linalg.matrix_rank(gram, rtol=1e-5) <= 16 < gram.shape[0]
    _finite_after(model, CONFIGS[method](ratio=0.5), calibration=repeated)


def test_least_squares_refit_of_a_zero_gram_is_finite():
    weight = torch.randn(8, 6)
    for gram in (torch.zeros(6, 6), torch.ones(6, 6)):  # all dead; all identical (rank 1)
        for damping in (0.0, 0.01):
            new = least_squares_refit(weight, gram, torch.tensor([0, 2, 4]), damping)
            assert new.shape == (8, 3) and torch.isfinite(new).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("method", ["magnitude", "wanda_sp"])
def test_half_precision_models_on_cpu(dtype, method, tmp_path):
    from transformers import AutoModelForCausalLM

    tiny_model("gemma3_text").save_pretrained(tmp_path / "src")  # loaded as users do (rotary buffers stay fp32)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "src", dtype=dtype).eval()
    out = _finite_after(model, CONFIGS[method](ratio=0.5))
    assert out.dtype == dtype and all(p.dtype == dtype for p in model.parameters())
    loaded = AutoModelForCausalLM.from_pretrained(hf_resize.save_resized(model, tmp_path / "o"), dtype=dtype)
    assert torch.equal(logits(loaded.eval(), IDS), out)


def test_half_precision_statistics_accumulate_in_float64():
    model = tiny_model("llama").to(torch.float16)
    stats = collect_statistics(model, TOKENS, hf_resize.WandaSPConfig.needs)
    assert all(g.dtype == torch.float64 and torch.isfinite(g).all() for g in stats["mlp_gram"].values())
