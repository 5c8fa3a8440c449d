"""The Turbo loop: module A then module B until the support settles, with the prior offset that meets a budget.

Ratio rule (documented in ``TurboVBIConfig``): the support prior carries one log-odds offset τ per budget (a
factor e^{τ s_j} on every unit, like a per-unit description cost), set after every module-A pass so that the
posterior's expected number of active units, Σ_j σ(llr_j + logit π_j + τ), equals the budget — per group for the
uniform allocation, one τ shared by all MLP layers for the per-layer one. The kept units are then the budget's
count of most probable ones (largest posterior log-odds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from hf_resize.methods.turbo_vbi.inference import (
    Priors,
    Regression,
    State,
    initial_state,
    module_a,
    set_prior,
    spike,
)
from hf_resize.methods.turbo_vbi.support import module_b


@dataclass
class Problem:
    """One group's regression, its support chains, the chains' stationary marginal p and the running posterior."""

    regression: Regression
    chains: list[torch.Tensor]
    p: float
    state: State | None = None
    chain_logit: torch.Tensor | None = None  # logit of module B's extrinsic P(s_j = 1), before the budget offset
    output_energy: float = 1.0  # mean square of the group's output per column (1 / σ² undoes the normalisation)


def _logit(probability: torch.Tensor) -> torch.Tensor:
    return torch.logit(probability.clamp(1e-15, 1 - 1e-15))


def data_scale(problem: Problem) -> float:
    """γT / σ²: the group's log-evidence per unit of squared output error in the model's own units (the offset's
    scale per group, so one τ prices the same error the same in every layer)."""
    return problem.state.gamma * problem.regression.tokens / problem.output_energy


def budget_offset(log_odds: list[torch.Tensor], budget: float, scales: list[float] | None = None) -> float:
    """τ such that Σ σ(log_odds + τ · scale) = budget (bisection; the sum is increasing in τ)."""
    x = torch.cat(log_odds)
    scale = torch.cat([torch.full_like(v, s) for v, s in zip(log_odds, scales or [1.0] * len(log_odds), strict=True)])
    reach = float((x.abs() / scale).max()) + 50.0
    lo, hi = -reach, reach
    for _ in range(200):
        mid = (lo + hi) / 2
        if float(torch.sigmoid(x + mid * scale).sum()) > budget:
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-9 * reach:
            break
    return (lo + hi) / 2


def turbo(problems: list[Problem], budget: float, priors: Priors, rounds: int, vb_iterations: int,
          persistence: float, tolerance: float,
          each: Callable[[Callable[[Problem], None], list[Problem]], None] | None = None) -> float:
    """Alternate module A (on every problem, through ``each(fn, problems)``, e.g. a thread pool's map) and module B
    until no posterior support probability moves by more than ``tolerance``, at most ``rounds`` times; returns τ."""
    each = each or (lambda fn, items: [fn(item) for item in items])
    for problem in problems:
        if problem.state is None:
            problem.chain_logit = _logit(torch.full((problem.regression.units,), problem.p, dtype=torch.float64))
            problem.state = initial_state(problem.regression, problem.chain_logit)
    tau = 0.0
    for round_ in range(rounds):
        before = torch.cat([torch.sigmoid(p.state.log_odds) for p in problems])
        # γ is learned once the budget has put the support in place (with every unit on it would diverge)
        learn = round_ > 0
        each(lambda p, learn=learn: module_a(p.regression, p.state, priors, vb_iterations, learn), problems)
        scales = [data_scale(p) for p in problems]
        tau = budget_offset([p.state.llr + p.chain_logit for p in problems], budget, scales)
        for p, scale in zip(problems, scales, strict=True):
            p.chain_logit = _logit(module_b(p.state.llr + tau * scale, p.chains, p.p, persistence))
        tau = budget_offset([p.state.llr + p.chain_logit for p in problems], budget, scales)
        for p, scale in zip(problems, scales, strict=True):
            set_prior(p.state, p.chain_logit + tau * scale)
            spike(p.regression, p.state, priors)
        after = torch.cat([torch.sigmoid(p.state.log_odds) for p in problems])
        if round_ > 1 and float((after - before).abs().max()) <= tolerance:
            break
    return tau
