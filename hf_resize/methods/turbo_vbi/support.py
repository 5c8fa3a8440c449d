"""Turbo-VBI module B: the structured support prior and sum-product message passing on it.

Units are laid on chains (MLP neurons: one chain over the layer's neurons ordered so that neighbours have
similar activations; heads: one chain per KV group), and the support is a stationary binary Markov chain along
each: P(s = 1) = p, and s_{i+1} repeats s_i with extra probability λ (P(1|1) = p + (1 − p)λ, P(1|0) = p(1 − λ)),
which favours runs of kept or removed units over scattered ones. Given module A's extrinsic messages (log
Bayes factors of s_j), forward-backward gives each unit's posterior; the extrinsic message back to A is the
neighbours' evidence passed along the chain, without the unit's own (so no evidence is counted twice).
"""

from __future__ import annotations

import numpy as np
import torch


def similarity_chain(gram: torch.Tensor) -> torch.Tensor:
    """Order of the units [k] as a nearest-neighbour chain under correlation distance, starting at the largest."""
    norms = gram.diagonal().clamp_min(1e-30).sqrt()
    corr = (gram / norms[:, None] / norms[None, :]).abs().numpy().copy()
    order = [int(torch.argmax(norms))]
    corr[:, order[0]] = -1.0
    for _ in range(gram.shape[0] - 1):
        nxt = int(np.argmax(corr[order[-1]]))
        order.append(nxt)
        corr[:, nxt] = -1.0
    return torch.tensor(order)


def chain_extrinsic(llr: torch.Tensor, p: float, stay: float) -> torch.Tensor:
    """P(s_i = 1) from everything on the chain except unit i's own evidence exp(s_i · llr_i): the forward
    prediction (before unit i's evidence) times the backward message (after it), normalised."""
    n = llr.shape[0]
    trans = np.array([[1 - p * (1 - stay), p * (1 - stay)], [(1 - p) * (1 - stay), p + (1 - p) * stay]])
    x = llr.numpy()
    evidence = np.stack([np.exp(-np.maximum(x, 0)), np.exp(np.minimum(x, 0))], 1)  # ∝ (1, e^llr), max 1
    predicted, beta = np.empty((n, 2)), np.ones((n, 2))
    predicted[0] = (1 - p, p)
    for i in range(1, n):
        alpha = predicted[i - 1] * evidence[i - 1]
        predicted[i] = (alpha / alpha.sum()) @ trans
    for i in range(n - 2, -1, -1):
        message = trans @ (evidence[i + 1] * beta[i + 1])
        beta[i] = message / message.sum()
    extrinsic = predicted * beta
    return torch.from_numpy(extrinsic[:, 1] / extrinsic.sum(1))


def module_b(llr: torch.Tensor, chains: list[torch.Tensor], p: float, stay: float) -> torch.Tensor:
    """Extrinsic prior P(s_j = 1) for module A from the chains' sum-product, given A's messages ``llr`` [k]."""
    prior = torch.empty_like(llr)
    for chain in chains:
        prior[chain] = chain_extrinsic(llr[chain], p, stay)
    return prior
