"""PCA slicing (SliceGPT-style): the basis is the top principal subspace, a full rotation keeps logits, and the
sliced model saves and loads with stock transformers."""

from __future__ import annotations

import pytest
import torch
from conftest import logits, tiny_model
from transformers import AutoModelForCausalLM

import hf_resize
from hf_resize.calibration.collectors import collect_statistics
from hf_resize.errors import ConfigError
from hf_resize.groups import neuron_groups
from hf_resize.methods import PCASliceConfig
from hf_resize.methods.pca_slice import principal_basis
from hf_resize.plan import GroupPlan, Plan
from hf_resize.surgery import apply_plan


def calibration() -> torch.Tensor:
    return torch.randint(3, 97, (32, 64), generator=torch.Generator().manual_seed(0))


def test_principal_basis_is_orthonormal_and_keeps_more_energy_than_any_coordinate_slice() -> None:
    x = torch.randn(400, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) @ torch.randn(
        10, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    gram = x.T @ x
    basis = principal_basis(gram, 4)
    assert torch.allclose(basis.T @ basis, torch.eye(4, dtype=basis.dtype), atol=1e-10)
    kept = torch.trace(basis.T @ gram @ basis)
    best_slice = gram.diagonal().sort(descending=True).values[:4].sum()
    assert kept >= best_slice
    assert torch.allclose(kept, torch.linalg.eigvalsh(gram)[-4:].sum())


def test_full_rotation_keeps_logits(input_ids: torch.Tensor) -> None:
    model = tiny_model("qwen2")
    before = logits(model, input_ids)
    stats = collect_statistics(model, calibration(), PCASliceConfig.needs, cache=False)
    n = model.config.hidden_size
    basis = principal_basis(sum(stats["hidden_gram"].values()), n)
    group = neuron_groups(model, ("hidden",))[0]
    apply_plan(model, Plan("pca_slice", [GroupPlan(group, producer=basis.T.contiguous(), consumer=basis)]))
    assert (logits(model, input_ids) - before).abs().max().item() <= 1e-4


def test_sliced_model_round_trips(input_ids: torch.Tensor, tmp_path) -> None:
    model = hf_resize.resize(tiny_model("llama"), PCASliceConfig(ratio=0.25), calibration=calibration())
    assert model.config.hidden_size < 48
    after = logits(model, input_ids)
    loaded = AutoModelForCausalLM.from_pretrained(hf_resize.save_resized(model, tmp_path / "out")).eval()
    assert (logits(loaded, input_ids) - after).abs().max().item() <= 1e-6


def test_other_groups_are_refused() -> None:
    with pytest.raises(ConfigError, match="hidden width only"):
        PCASliceConfig(groups=("mlp",))


def test_sandwich_norm_family_is_refused_before_calibration() -> None:
    # No calibration passed: the refusal must come before any data is needed.
    with pytest.raises(ConfigError, match="sandwich norms"):
        hf_resize.resize(tiny_model("gemma3_text"), PCASliceConfig(ratio=0.25))
