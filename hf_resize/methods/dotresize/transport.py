"""The optimal-transport core of DOTResize, on neuron Gram matrices.

Neurons are compared through their calibration activation vectors a_i (one entry per token). Every quantity
needed here comes from the Gram matrix G = Σ_t a(t) a(t)ᵀ: ||a_i||² = G_ii, ⟨a_i, a_j⟩ = G_ij, so no
activation sample has to be stored. For "units" wider than one neuron (attention heads of head_dim), G is the
block-summed Gram: G_ij = tr(G[block i, block j]).
"""

from __future__ import annotations

import ot
import torch

TARGET_CHOICES = ("activation_norm", "kmeans++")
COSTS = ("sqeuclidean", "correlation")
SOLVERS = ("sinkhorn", "sinkhorn_log", "emd")


def unit_gram(gram: torch.Tensor, unit: int, reduce: str = "trace") -> torch.Tensor:
    """[n·unit, n·unit] Gram → [n, n] Gram of units: block traces (units whose channels share one basis, such as
    query heads reading the same values) or block sums (``reduce="sum"``, for output-contribution Grams)."""
    if unit == 1:
        return gram
    n = gram.shape[0] // unit
    blocks = gram.reshape(n, unit, n, unit)
    return blocks.diagonal(dim1=1, dim2=3).sum(-1) if reduce == "trace" else blocks.sum((1, 3))


def output_gram(gram: torch.Tensor, consumer_weight: torch.Tensor) -> torch.Tensor:
    """Gram of the channels' contributions to the consumer's output: ⟨a_i w_iᵀ, a_j w_jᵀ⟩ = G_ij (w_i · w_j)."""
    w = consumer_weight.detach().to(device=gram.device, dtype=torch.float64)
    return gram * (w.T @ w)


def _squared_distances(gram: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """||a_i − a_t||² for every unit i and every target t: [n, m], clamped at 0 against rounding."""
    norms = gram.diagonal()
    return (norms[:, None] + norms[targets][None, :] - 2 * gram[:, targets]).clamp_min(0)


def target_order(gram: torch.Tensor, count: int, how: str, seed: int) -> torch.Tensor:
    """The first ``count`` units in target priority order (the most wanted first).

    ``activation_norm``: decreasing ||a_i||. ``kmeans++``: the largest first, then each next one drawn with
    probability proportional to its squared distance to the nearest chosen unit (seeded), so near-duplicates of
    a chosen unit come late and the early targets cover the activation space.
    """
    n = gram.shape[0]
    norms = gram.diagonal().clamp_min(0)
    if how == "activation_norm":
        return torch.argsort(-norms.cpu(), stable=True)[:count]
    generator = torch.Generator().manual_seed(seed)
    chosen = [int(torch.argmax(norms))]
    nearest = _squared_distances(gram, torch.tensor(chosen))[:, 0].cpu()
    for _ in range(min(count, n) - 1):
        weights = nearest.clone()
        weights[chosen] = 0
        if float(weights.sum()) <= 0:  # only exact duplicates left: take the largest remaining norms
            weights = norms.cpu().clone() + 1e-30
            weights[chosen] = 0
        pick = int(torch.multinomial(weights, 1, generator=generator))
        chosen.append(pick)
        nearest = torch.minimum(nearest, _squared_distances(gram, torch.tensor([pick]))[:, 0].cpu())
    return torch.tensor(chosen)


def choose_targets(gram: torch.Tensor, count: int, how: str, seed: int) -> torch.Tensor:
    """Indices (ascending) of the ``count`` target units; see ``target_order``."""
    if count >= gram.shape[0]:
        return torch.arange(gram.shape[0])
    return target_order(gram, count, how, seed).sort().values


def cost_matrix(gram: torch.Tensor, targets: torch.Tensor, cost: str) -> torch.Tensor:
    """[n, m] cost of moving unit i onto target t, scaled to mean 1 (so the entropic ε is scale-free).

    ``sqeuclidean``: ||a_i − a_t||². ``correlation``: 1 − ⟨a_i, a_t⟩ / (||a_i|| ||a_t||), the uncentred
    correlation (cosine) of the activation vectors.
    """
    if cost == "sqeuclidean":
        c = _squared_distances(gram, targets)
    else:
        norms = gram.diagonal().clamp_min(1e-30).sqrt()
        c = (1 - gram[:, targets] / (norms[:, None] * norms[targets][None, :])).clamp_min(0)
    mean = c.mean()
    return c / mean if mean > 0 else c


def transport_plan(cost: torch.Tensor, solver: str, epsilon: float, iterations: int) -> torch.Tensor:
    """Optimal coupling Π [n, m] of uniform masses on the n sources and the m targets.

    ``emd`` solves the exact problem (network simplex); ``sinkhorn`` / ``sinkhorn_log`` its entropic
    regularisation with strength ``epsilon`` (relative to the mean cost, which ``cost_matrix`` makes 1).
    Plain Sinkhorn underflows for small ε: then the log-domain solver, slower but stable, takes over.
    """
    n, m = cost.shape
    c = cost.to(torch.float64).cpu()
    a = torch.full((n,), 1.0 / n, dtype=torch.float64)
    b = torch.full((m,), 1.0 / m, dtype=torch.float64)
    if solver == "emd":
        return ot.emd(a, b, c, numItermax=max(100_000, 100 * n * m))
    # warn=False: at small ε the iteration budget, not the tolerance, usually ends the loop (docs/dotresize.md);
    # warnings.catch_warnings would not do here, it is not thread-safe and groups are planned in threads.
    plan = ot.sinkhorn(a, b, c, epsilon, method=solver, numItermax=iterations, stopThr=1e-9, warn=False)
    if solver == "sinkhorn" and not (torch.isfinite(plan).all() and plan.sum() > 0.5):
        plan = ot.sinkhorn(a, b, c, epsilon, method="sinkhorn_log", numItermax=iterations, stopThr=1e-9, warn=False)
    if not torch.isfinite(plan).all():
        raise FloatingPointError("the transport plan has non-finite entries; raise epsilon")
    return plan


def merge_matrix(plan: torch.Tensor) -> torch.Tensor:
    """[m, n] producer map: target t becomes the transport-weighted average of the units sent to it (rows sum to 1)."""
    return (plan / plan.sum(0, keepdim=True).clamp_min(1e-300)).T.contiguous()


def spread_matrix(plan: torch.Tensor) -> torch.Tensor:
    """[n, m] consumer map: unit i is read as the mix of targets it was sent to (rows sum to 1)."""
    return plan / plan.sum(1, keepdim=True).clamp_min(1e-300)


def orthonormal_basis(producer: torch.Tensor) -> torch.Tensor:
    """Q [n, m] with orthonormal columns spanning the rows of ``producer`` (T = QR, R folded away).

    Writing the residual stream in this basis keeps RMSNorm's computational invariance: an orthogonal change
    of basis does not change a vector's norm, so the stream's normalisation is unchanged on the kept span.
    """
    q, r = torch.linalg.qr(producer.T.to(torch.float64))
    return q * torch.sign(r.diagonal()).where(r.diagonal() != 0, torch.ones(1, dtype=q.dtype))[None, :]
