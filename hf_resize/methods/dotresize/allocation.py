"""Per-layer widths by measured reconstruction error (DOTResize ``allocation="error"``).

For one MLP layer with consumer W, Gram G of its inputs and units in target priority order π, the output
energy a least-squares refit explains with the first k units is ||B_k L_k^{-T}||², B = W G[:, π], L the
Cholesky factor of G[π, π] (leading blocks of L factor leading blocks of G), so one factorisation gives the
whole error curve: marginal gains are the squared column norms of B L^{-T}. The layers' gains are pooled and
the largest ones kept, so units go where removing them would cost the most output error.
"""

from __future__ import annotations

import torch


def marginal_gains(weight: torch.Tensor, gram: torch.Tensor, order: torch.Tensor, damping: float) -> torch.Tensor:
    """Output energy each next unit (in ``order``) adds to a least-squares refit; non-increasing (made so)."""
    g = gram.to(torch.float64)[order][:, order]
    g = g + damping * g.diagonal().mean() * torch.eye(len(order), dtype=g.dtype, device=g.device)
    factor, info = torch.linalg.cholesky_ex(g)
    if int(info) != 0:  # singular even after damping (dead units): jitter until it factors
        factor = torch.linalg.cholesky(g + 1e-6 * g.diagonal().max() * torch.eye(len(order), dtype=g.dtype))
    b = weight.detach().to(device=g.device, dtype=torch.float64) @ gram.to(torch.float64)[:, order]
    x = torch.linalg.solve_triangular(factor, b.T, upper=False)  # L⁻¹ Bᵀ: rows are the columns of B L^{-T}
    gains = x.pow(2).sum(1).cpu()
    return torch.cummin(gains, 0).values  # a later unit never counts for more than an earlier one


def allocate(gains: list[torch.Tensor], total: int, minimum: int) -> list[int]:
    """Units kept per layer: the ``total`` largest pooled gains, at least ``minimum`` per layer."""
    if total < minimum * len(gains) or total > sum(len(g) for g in gains):
        raise ValueError(f"cannot keep {total} units in {len(gains)} layers with at least {minimum} each")
    counts = [minimum] * len(gains)
    rest = torch.cat([g[minimum:] for g in gains])
    owner = torch.cat([torch.full((len(g) - minimum,), i) for i, g in enumerate(gains)])
    for i in owner[torch.argsort(-rest, stable=True)[: total - minimum * len(gains)]].tolist():
        counts[i] += 1
    return counts
