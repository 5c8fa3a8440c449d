"""Least-squares consumer refits shared by methods: the consumer weight that best reproduces the dense output.

A consumer W reads inputs x (Gram G = Σ x xᵀ over the calibration tokens). After a resize it reads z = P x
(P: m x n; a selection for pruning, a mixing matrix for merging, assuming the new units' activations are P x).
The refit minimises Σ ||W x − W' z||² + λ||W'||²: W' = W G Pᵀ (P G Pᵀ + λI)⁻¹, λ = damping · mean(diag(P G Pᵀ)).
"""

from __future__ import annotations

import torch


def _solve(rhs: torch.Tensor, system: torch.Tensor, damping: float) -> torch.Tensor:
    """rhs · (system + λI)⁻¹ for a symmetric ``system``; Cholesky, falling back to a pseudo-inverse."""
    lam = damping * system.diagonal().mean()
    system = system + lam * torch.eye(system.shape[0], dtype=system.dtype, device=system.device)
    factor, info = torch.linalg.cholesky_ex(system)
    if int(info) == 0:
        return torch.cholesky_solve(rhs.T, factor).T
    return rhs @ torch.linalg.pinv(system, hermitian=True)


def least_squares_refit(weight: torch.Tensor, gram: torch.Tensor, keep: torch.Tensor, damping: float) -> torch.Tensor:
    """Refit for the kept inputs S: W G[:, S] (G[S, S] + λI)⁻¹ in float64; returns [out, |S|]."""
    gram = gram.to(torch.float64)
    keep = keep.to(gram.device)
    w = weight.detach().to(device=gram.device, dtype=torch.float64)
    g_ss = gram.index_select(0, keep).index_select(1, keep)
    return _solve(w @ gram.index_select(1, keep), g_ss, damping)


def merged_least_squares(
    weight: torch.Tensor, gram: torch.Tensor, producer: torch.Tensor, damping: float
) -> torch.Tensor:
    """Refit for merged inputs z = P x: W G Pᵀ (P G Pᵀ + λI)⁻¹ in float64; returns [out, m]."""
    gram = gram.to(torch.float64)
    p = producer.to(device=gram.device, dtype=torch.float64)
    w = weight.detach().to(device=gram.device, dtype=torch.float64)
    gp = gram @ p.T
    return _solve(w @ gp, p @ gp, damping)
