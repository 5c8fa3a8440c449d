"""Turbo-VBI module A on sufficient statistics: the posterior of one consumer's weights, precisions and support.

Model, per layer and group kind, in normalised coordinates (every unit's activation scaled to unit RMS, the
output to unit mean square per column, so the priors are scale-free): the dense output y_t = W0ᵀ h_t is
regressed on the unit activations h_t, y_t = Wᵀ h_t + ε, ε ~ N(0, γ⁻¹ I), with k units of u rows each (a neuron:
u = 1; a head: u = head_dim) and the three-layer prior

    s_j ∈ {0, 1} ~ π_j (from module B),   ρ_j / γT | s_j ~ Gamma(a, b) if s_j = 1 else Gamma(ā, b̄),
    w_j | ρ_j ~ N(0, ρ_j⁻¹ I).

The precisions are relative to the data precision γT (the conjugate scaling): the inactive prior, sharply peaked
at ā/b̄ = 1e8, is then a spike (w_j ≈ 0) however large γ grows; with absolute precisions the exactly realisable
dense output drove γ up until no finite inactive precision could switch a unit off.

Everything is computed from the per-token Gram R = E[h hᵀ], the cross term R W0 and the token count T (the data
weight): memory O(width²), never O(tokens).

One module-A pass, for a fixed support prior π:

* q(W) is Gaussian with one covariance shared by the output columns, Σ = (γT R + diag ρ)⁻¹, mean M = Σ γT R W0;
  with q(W) exact the weight part of the evidence lower bound is the log evidence log p(Y | ρ, γ) itself.
* ρ (a point estimate per unit, type-II VB): each active unit's maximises the bound given the others, from its
  leave-one-out statistics (Tipping and Faul's s_j, q_j); all take their step at once and the step is halved
  until the bound does not decrease (so it never does). Inactive units sit on the spike.
* γ by EM from the expected residual, once the budget has put the support in place (``turbo.py``).
* q(s_j) is the collapsed update: the Bayes factor for keeping unit j with w_j and ρ_j integrated out given the
  other units (ρ_j numerically over a log grid under the active prior; the inactive prior at its mean), times
  the prior odds π_j. The plain mean-field update of q(s_j) waits for ARD's precision to diverge, which grows
  slowly per pass: on a planted problem it left every unit on. The collapsed step maximises the collapsed
  evidence, not the bound above, so the bound is monotone across the ρ steps only (tested).

The log Bayes factor (without the prior odds) is module A's extrinsic message to module B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

# Grid of log relative precisions log(ρ / γT) for the one-dimensional precision problems: 1e-12 .. 1e8.
LOG_GRID = torch.linspace(math.log(1e-12), math.log(1e8), 801, dtype=torch.float64)


@dataclass
class Priors:
    """Gamma shape/rate pairs of a unit's relative precision ρ_j / γT (relative to the data's: the conjugate
    scaling, which keeps the prior meaningful however large γ grows): vague when active, sharply peaked at
    ā/b̄ = 1e8 when inactive (a spike: the unit's weights shrunk to ~1e-8 of a fit)."""

    a: float = 1e-3
    b: float = 1e-3
    a_off: float = 1e3
    b_off: float = 1e-5


@dataclass
class Regression:
    """Normalised sufficient statistics of one consumer: R [n, n], R W0 [n, out], energy = tr(W0ᵀ R W0), T tokens,
    ``unit`` rows per unit."""

    r: torch.Tensor
    rw0: torch.Tensor
    energy: float
    tokens: float
    unit: int

    @property
    def units(self) -> int:
        return self.r.shape[0] // self.unit


@dataclass
class State:
    """Module A's posterior for one noise precision γ, carried across passes (and warm-started across γ)."""

    alpha: torch.Tensor  # ρ_j point estimate [k]
    alpha_on: torch.Tensor  # the active branch's best ρ_j [k] (for the kept units' final weights)
    support: torch.Tensor  # q(s_j = 1) [k]
    log_odds: torch.Tensor  # logit q(s_j = 1) [k]: the ranking key of the ratio rule
    llr: torch.Tensor  # log Bayes factor of s_j = 1 (module A → B) [k]
    prior_logit: torch.Tensor  # logit π_j (module B → A, with the budget's offset) [k]
    gamma: float  # noise precision γ (type-II ML, updated by EM)


@dataclass
class Gaussian:
    """q(W) = N(M, Σ) columnwise: M [n, out], the diagonal u×u blocks of Σ [k, u, u], log det Σ."""

    mean: torch.Tensor
    blocks: torch.Tensor
    logdet: float


def normalise(gram: torch.Tensor, weight: torch.Tensor, tokens: float, unit: int) -> tuple[Regression, torch.Tensor, float]:
    """Regression for consumer ``weight`` [out, n] reading activations with Gram ``gram`` (a sum over ``tokens``).

    Returns the regression, the per-input scales d (h̃ = h / d) and the output scale σ (ỹ = y / σ); a weight W̃ in
    normalised coordinates maps back as W = W̃ σ / d (rows)."""
    g = gram.to(torch.float64) / tokens
    scale = g.diagonal().clamp_min(1e-30).sqrt()
    r = g / scale[:, None] / scale[None, :]
    w0 = weight.detach().to(torch.float64).T * scale[:, None]  # [n, out] in normalised inputs
    rw0 = r @ w0
    sigma = math.sqrt(max(float((w0 * rw0).sum()) / w0.shape[1], 1e-30))
    return Regression(r, rw0 / sigma, float((w0 * rw0).sum()) / sigma**2, float(tokens), unit), scale, sigma


def log_gamma_pdf(rho: torch.Tensor, shape: float, rate: float) -> torch.Tensor:
    return shape * math.log(rate) - math.lgamma(shape) + (shape - 1) * rho.log() - rate * rho


def log_prior(alpha: torch.Tensor, data: float, shape: float, rate: float) -> torch.Tensor:
    """log p(ρ) for ρ / data ~ Gamma(shape, rate), ``data`` = γT."""
    return log_gamma_pdf(alpha / data, shape, rate) - math.log(data)


def weights_posterior(reg: Regression, gamma: float, alpha: torch.Tensor) -> Gaussian:
    """q(W): one Cholesky of γT R + diag ρ; Σ's diagonal blocks from its triangular inverse."""
    k, u = reg.units, reg.unit
    precision = gamma * reg.tokens * reg.r + torch.diag(alpha.repeat_interleave(u))
    factor = torch.linalg.cholesky(precision)
    inverse = torch.linalg.solve_triangular(factor, torch.eye(factor.shape[0], dtype=factor.dtype), upper=False)
    mean = inverse.T @ (inverse @ (gamma * reg.tokens * reg.rw0))
    cols = inverse.reshape(-1, k, u)  # Σ = L⁻ᵀ L⁻¹: block J is (L⁻¹_{:,J})ᵀ L⁻¹_{:,J}
    blocks = torch.einsum("ikp,ikq->kpq", cols, cols)
    return Gaussian(mean, blocks, -2 * float(factor.diagonal().log().sum()))


def log_evidence(reg: Regression, gamma: float, alpha: torch.Tensor, q: Gaussian) -> float:
    """log p(Y | ρ, γ) = out/2 (Σ log ρ + log|Σ| + T log γ − T log 2π) − γT/2 (tr Y − tr(Mᵀ R W0))."""
    out, t = reg.rw0.shape[1], reg.tokens
    logs = float(alpha.log().sum()) * reg.unit + q.logdet + t * math.log(gamma) - t * math.log(2 * math.pi)
    return 0.5 * (out * logs - gamma * t * (reg.energy - float((q.mean * reg.rw0).sum())))


def bound(reg: Regression, state: State, q: Gaussian, priors: Priors) -> float:
    """Module A's evidence lower bound for q(W) exact, point ρ, Bernoulli q(s) and the prior π."""
    on, x, data = state.support.clamp(1e-300, 1 - 1e-16), state.prior_logit, state.gamma * reg.tokens
    # an inactive unit sits on the spike (its prior's mean) and contributes the same constant whatever ρ, γ are
    rho = torch.where(state.support >= 0.5, log_prior(state.alpha, data, priors.a, priors.b), 0.0)
    support = -on * F.softplus(-x) - (1 - on) * F.softplus(x) - on * on.log() - (1 - on) * (1 - on).log()
    return log_evidence(reg, state.gamma, state.alpha, q) + float(rho.sum()) + float(support.sum())


def leave_one_out(reg: Regression, state: State, q: Gaussian) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit j's view of the data with j itself left out, in the eigenbasis of its u×u block: eigenvalues λ [k, u]
    of s_j = Σ_JJ⁻¹ − ρ_j I and the energies c [k, u] of q_j = Σ_JJ⁻¹ M_J (summed over the output columns)."""
    k, u = reg.units, reg.unit
    inv = torch.linalg.inv(q.blocks)
    s = inv - state.alpha[:, None, None] * torch.eye(u, dtype=inv.dtype)
    lam, vec = torch.linalg.eigh((s + s.transpose(1, 2)) / 2)
    proj = vec.transpose(1, 2) @ (inv @ q.mean.reshape(k, u, -1))
    return lam.clamp_min(0.0), proj.pow(2).sum(-1)


def unit_log_evidence(log_rho: torch.Tensor, lam: torch.Tensor, energies: torch.Tensor, out: int) -> torch.Tensor:
    """ℓ_j(ρ) = log p(Y | unit j in with precision ρ) − log p(Y | unit j out), for log ρ values ``log_rho``
    [k or 1, m] (per unit, or shared) → [k, m]."""
    rho = log_rho.exp()[:, None, :]
    lam, energies = lam[..., None], energies[..., None]
    return 0.5 * (out * (log_rho[:, None, :] - (rho + lam).log()) + energies / (rho + lam)).sum(1)


def update_precisions(reg: Regression, state: State, q: Gaussian, priors: Priors, max_halvings: int = 20) -> Gaussian:
    """Every active unit's (q(s_j) ≥ ½) best ρ_j given the others: the maximiser of ℓ_j(ρ) + log Gamma(ρ / γT; a, b)
    on the grid (its current value a candidate); inactive units stay on the spike. All step together in log ρ,
    the step halved until the bound does not decrease. Returns q(W) for the accepted precisions."""
    out = reg.rw0.shape[1]
    lam, energies = leave_one_out(reg, state, q)
    data = state.gamma * reg.tokens
    grid = torch.cat([LOG_GRID[None, :].expand(reg.units, -1) + math.log(data), state.alpha.log()[:, None]], 1)
    objective = unit_log_evidence(grid, lam, energies, out) + log_prior(grid.exp(), data, priors.a, priors.b)
    active = grid.gather(1, objective.argmax(1, keepdim=True)).squeeze(1)
    target = torch.where(state.support >= 0.5, active, state.alpha.log())
    start, before = state.alpha.log(), bound(reg, state, q, priors)
    step = 1.0
    for _ in range(max_halvings):
        alpha = (start + step * (target - start)).exp()
        trial_q = weights_posterior(reg, state.gamma, alpha)
        if bound(reg, replace(state, alpha=alpha), trial_q, priors) >= before - 1e-12 * abs(before):
            state.alpha = alpha
            return trial_q
        step /= 2
    return q


def update_support(reg: Regression, state: State, q: Gaussian, priors: Priors) -> None:
    """The collapsed q(s_j = 1) = σ(llr_j + logit π_j), llr_j the log Bayes factor of keeping unit j with w_j and ρ_j
    integrated out given the other units (ρ_j numerically over the log grid under the active prior; under the
    sharply peaked inactive prior at its mean) — module A's extrinsic message; also the active branch's best ρ_j."""
    out = reg.rw0.shape[1]
    lam, energies = leave_one_out(reg, state, q)
    data = state.gamma * reg.tokens
    ell = unit_log_evidence(LOG_GRID[None, :] + math.log(data), lam, energies, out)
    active = ell + log_gamma_pdf(LOG_GRID.exp(), priors.a, priors.b)[None, :]
    step = float(LOG_GRID[1] - LOG_GRID[0])
    log_on = torch.logsumexp(active + LOG_GRID[None, :], 1) + math.log(step)  # ∫ p(Y|r) Gamma(r) dr, dr = r dlog r
    off = torch.tensor([[math.log(data * priors.a_off / priors.b_off)]], dtype=torch.float64)
    state.llr = log_on - unit_log_evidence(off, lam, energies, out)[:, 0]
    state.alpha_on = (LOG_GRID[active.argmax(1)] + math.log(data)).exp()
    set_prior(state, state.prior_logit)


def spike(reg: Regression, state: State, priors: Priors) -> None:
    """s_j = 0 puts w_j on the spike: ρ_j at the inactive prior's mean ā/b̄ · γT; a unit back on starts from its
    active branch's best ρ_j."""
    off = state.support < 0.5
    spiked = state.alpha >= state.gamma * reg.tokens * priors.a_off / priors.b_off * (1 - 1e-9)
    state.alpha = torch.where(off, torch.full_like(state.alpha, state.gamma * reg.tokens * priors.a_off / priors.b_off),
                              torch.where(spiked, state.alpha_on, state.alpha))


def set_prior(state: State, prior_logit: torch.Tensor) -> None:
    """Take module B's prior log-odds logit π_j; q(s_j = 1) = σ(llr_j + logit π_j) follows."""
    state.prior_logit = prior_logit
    state.log_odds = state.llr + prior_logit
    state.support = torch.sigmoid(state.log_odds)


def update_noise(reg: Regression, state: State, q: Gaussian) -> None:
    """EM step of γ: out / E_q‖ỹ − W̃ᵀh̃‖² per token, the expected residual taken from the identities
    (γT R + A) M = γT R W0 and tr(γT R Σ) = n − Σ_j ρ_j tr Σ_JJ (no extra n³ work). The precisions keep their
    value relative to γT (the prior's scale)."""
    out, n = reg.rw0.shape[1], reg.r.shape[0]
    big_k = state.gamma * reg.tokens
    fit = float((q.mean * reg.rw0).sum())
    shrink = float((state.alpha.repeat_interleave(reg.unit) * q.mean.pow(2).sum(1)).sum())
    spread = n - float((state.alpha * q.blocks.diagonal(dim1=1, dim2=2).sum(1)).sum())
    residual = reg.energy - fit - shrink / big_k + out * spread / big_k
    gamma = out / max(residual, 1e-12 * reg.energy)
    state.alpha, state.alpha_on = state.alpha * gamma / state.gamma, state.alpha_on * gamma / state.gamma
    state.gamma = gamma


def initial_state(reg: Regression, prior_logit: torch.Tensor, gamma: float = 100.0) -> State:
    """Every unit on, with the precision a unit of average energy would have (ρ = out·u·k / tr Y), and noise at
    1% of the output energy."""
    k, out = reg.units, reg.rw0.shape[1]
    alpha = torch.full((k,), out * reg.unit * k / max(reg.energy, 1e-30), dtype=torch.float64)
    zeros = torch.zeros(k, dtype=torch.float64)
    return State(alpha, alpha.clone(), torch.ones(k, dtype=torch.float64), zeros + 30, zeros, prior_logit, gamma)


def module_a(reg: Regression, state: State, priors: Priors, iterations: int, learn_noise: bool = True,
             trace: list[tuple[str, float]] | None = None) -> Gaussian:
    """``iterations`` passes of ρ → γ (EM, if ``learn_noise``) → q(s), each from the exact q(W), for a fixed
    support prior π; ``trace`` collects (step, bound) after every step. The bound cannot decrease at the ρ step;
    the γ step rescales the precisions with γT (the prior's scale) and the collapsed q(s) step maximises the
    collapsed evidence, so neither is an ascent step of this bound (see the module's docstring)."""
    q = weights_posterior(reg, state.gamma, state.alpha)
    for _ in range(iterations):
        if trace is not None:
            trace.append(("weights", bound(reg, state, q, priors)))
        q = update_precisions(reg, state, q, priors)
        if trace is not None:
            trace.append(("precisions", bound(reg, state, q, priors)))
        if learn_noise:
            update_noise(reg, state, q)
            q = weights_posterior(reg, state.gamma, state.alpha)
            if trace is not None:
                trace.append(("noise", bound(reg, state, q, priors)))
        update_support(reg, state, q, priors)
        if trace is not None:
            trace.append(("support", bound(reg, state, q, priors)))
    spike(reg, state, priors)
    return q
