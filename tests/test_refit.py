"""Least-squares consumer refits equal the regression solutions they stand for."""

from __future__ import annotations

import torch

from hf_resize.methods.refit import least_squares_refit, merged_least_squares


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.randn(500, 12, dtype=torch.float64, generator=gen), torch.randn(5, 12, dtype=torch.float64, generator=gen)


def test_least_squares_refit_is_the_regression_solution() -> None:
    x, w = _data()
    keep = torch.tensor([0, 2, 3, 7, 11])
    refit = least_squares_refit(w, x.T @ x, keep, damping=0.0)
    expected = torch.linalg.lstsq(x[:, keep], x @ w.T).solution.T
    assert torch.allclose(refit, expected, atol=1e-10)
    assert torch.allclose(least_squares_refit(w, x.T @ x, torch.arange(12), damping=0.0), w, atol=1e-10)


def test_merged_refit_regresses_the_dense_output_on_the_mixed_inputs() -> None:
    x, w = _data()
    producer = torch.rand(7, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    refit = merged_least_squares(w, x.T @ x, producer, damping=0.0)
    z = x @ producer.T
    expected = torch.linalg.lstsq(z, x @ w.T).solution.T
    assert torch.allclose(refit, expected, atol=1e-8)


def test_selection_producer_gives_the_same_refit_as_keep_indices() -> None:
    x, w = _data()
    keep = torch.tensor([1, 4, 5, 9])
    selection = torch.eye(12, dtype=torch.float64)[keep]
    assert torch.allclose(
        merged_least_squares(w, x.T @ x, selection, 0.01), least_squares_refit(w, x.T @ x, keep, 0.01), atol=1e-10
    )


def test_damping_shrinks_the_refit() -> None:
    x, w = _data()
    keep = torch.arange(6)
    assert least_squares_refit(w, x.T @ x, keep, 1.0).norm() < least_squares_refit(w, x.T @ x, keep, 0.0).norm()
