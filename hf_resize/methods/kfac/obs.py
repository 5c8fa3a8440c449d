"""Structured optimal brain surgeon under Kronecker-factored curvature, for the input columns of one consumer.

A consumer W [out, n] (o_proj, down_proj) reads units of ``unit`` columns each (a neuron: 1; a head: head_dim).
With Ā = E[x xᵀ], Ḡ = E[g gᵀ] (the KFAC factors of W) and D̄ = E[g xᵀ] (the gradient of the mean token loss L),
a change ΔW costs, to second order,

    ΔL ≈ tr(D̄ᵀ ΔW) + ½ tr(ΔWᵀ Ḡ ΔW Ā).

Removing unit U forces ΔW[:, U] = −W[:, U]. The compensation of the other columns that minimises the quadratic
term is ΔW = −W_U C H_U:, H = (Ā + λI)⁻¹, C = (H_UU)⁻¹ (the G factor drops out: it weighs every output row alike),
and its second-order cost is ½ tr(Ḡ W_U C W_Uᵀ). Without compensation: ½ tr(W_Uᵀ Ḡ W_U Ā_UU) and −tr(D̄_Uᵀ W_U).
Greedy removal repeats this in rounds (a batch of the cheapest units at a time, with their joint compensation),
updating W, H (a Schur downdate), Ḡ W and D̄ H incrementally.
"""

from __future__ import annotations

import torch


def _inverse(a: torch.Tensor, damping: float) -> torch.Tensor:
    lam = damping * a.diagonal().mean().clamp_min(1e-30)
    return torch.linalg.inv(a + lam * torch.eye(a.shape[0], dtype=a.dtype, device=a.device))


def _blocks(matrix: torch.Tensor, unit: int) -> torch.Tensor:
    """Diagonal blocks [k, unit, unit] of a square [k·unit, k·unit] matrix."""
    k = matrix.shape[0] // unit
    return matrix.reshape(k, unit, k, unit).diagonal(dim1=0, dim2=2).permute(2, 0, 1)


def _columns(w: torch.Tensor, unit: int) -> torch.Tensor:
    """[out, k·unit] → [k, out, unit]."""
    return w.reshape(w.shape[0], -1, unit).permute(1, 0, 2)


def predicted_increase(
    weight: torch.Tensor,
    a: torch.Tensor,
    g: torch.Tensor,
    d: torch.Tensor | None,
    unit: int = 1,
    compensate: bool = True,
    damping: float = 0.01,
) -> torch.Tensor:
    """Predicted increase of the mean token loss when each unit alone is removed: [n // unit].

    ``a``, ``g``, ``d`` are expectations (sums divided by the token count); ``d=None`` drops the first-order term.
    """
    w = weight.detach().to(torch.float64)
    a, g = a.to(torch.float64), g.to(torch.float64)
    if compensate:
        h = _inverse(a, damping)
        alive = torch.ones(w.shape[1] // unit, dtype=torch.bool)
        return _scores(w, h, g @ w, None if d is None else d.to(torch.float64) @ h, alive, unit)
    cols = _columns(w, unit)  # [k, out, u]
    second = 0.5 * torch.einsum("kou,kov,kuv->k", _columns(g @ w, unit), cols, _blocks(a, unit))
    if d is None:
        return second
    return second - torch.einsum("kou,kou->k", _columns(d.to(torch.float64), unit), cols)


def _scores(w: torch.Tensor, h: torch.Tensor, gw: torch.Tensor, dh: torch.Tensor | None, alive: torch.Tensor,
            unit: int) -> torch.Tensor:
    """Compensated cost of removing each unit alone at this point (removed units: +inf)."""
    k = alive.shape[0]
    if unit == 1:  # the common case, as plain column reductions
        diag = h.diagonal().where(alive, torch.ones(1, dtype=h.dtype))
        score = 0.5 * (w * gw).sum(0) / diag
        if dh is not None:
            score = score - (dh * w).sum(0) / diag
    else:
        c = torch.linalg.pinv(_blocks(h, unit), hermitian=True)
        cols = _columns(w, unit)
        score = 0.5 * torch.einsum("kou,kuv,kov->k", cols, c, _columns(gw, unit))
        if dh is not None:
            score = score - torch.einsum("kuv,kov,kou->k", c, _columns(dh, unit), cols)
    return torch.where(alive, score, torch.full((k,), float("inf"), dtype=score.dtype))


def greedy_removal(
    weight: torch.Tensor,
    a: torch.Tensor,
    g: torch.Tensor,
    d: torch.Tensor | None,
    remove: int,
    unit: int = 1,
    damping: float = 0.01,
    quota: tuple[torch.Tensor, int] | None = None,
    rounds: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Remove ``remove`` units in up to ``rounds`` rounds: each round scores every remaining unit alone under the
    compensated KFAC cost at that point and removes the cheapest batch of them together, with their joint
    compensation ΔW = −W_S (H_SS)⁻¹ H_S: (one unit per round when ``remove <= rounds``, the exact greedy).

    ``quota``: (bucket of each unit, removals allowed per bucket), e.g. query heads per KV group.
    Returns (kept unit indices ascending, the compensated weight's kept columns [out, kept·unit], the summed
    predicted loss increase of the rounds' choices).
    """
    w = weight.detach().to(torch.float64).clone()
    a, g = a.to(torch.float64), g.to(torch.float64)
    k = w.shape[1] // unit
    h = _inverse(a, damping)
    gw = g @ w
    dh = d.to(torch.float64) @ h if d is not None else None
    alive = torch.ones(k, dtype=torch.bool)
    taken = torch.zeros(int(quota[0].max()) + 1 if quota else 1, dtype=torch.long)
    total, left = 0.0, remove
    per_round = -(-remove // rounds) if remove else 0
    while left > 0:
        score = _scores(w, h, gw, dh, alive, unit)
        chosen = []
        for j in torch.argsort(score, stable=True).tolist():
            if len(chosen) == min(per_round, left) or not bool(alive[j]):
                break
            if quota is not None:
                if taken[quota[0][j]] >= quota[1]:
                    continue
                taken[quota[0][j]] += 1
            chosen.append(j)
        if not chosen:
            raise ValueError(f"cannot remove {left} more unit(s) within the quota")
        total += float(score[chosen].sum())
        units = torch.tensor(chosen)
        span = (units[:, None] * unit + torch.arange(unit)).flatten()
        step = torch.linalg.solve(h[span][:, span], h[span])  # (H_SS)⁻¹ H_S: — removal plus compensation
        w -= w[:, span] @ step
        gw -= gw[:, span] @ step
        if dh is not None:
            dh -= dh[:, span] @ step
        h -= h[:, span] @ step
        w[:, span], h[span], h[:, span] = 0, 0, 0  # exact zeros where rounding would leave dust
        alive[units] = False
        left -= len(chosen)
    kept = torch.nonzero(alive).flatten()
    columns = (kept[:, None] * unit + torch.arange(unit)).flatten()
    return kept, w[:, columns], total
