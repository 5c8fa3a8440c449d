"""TurboVBIConfig: structured Bayesian compression of MLP neurons and attention heads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hf_resize.errors import ConfigError
from hf_resize.methods.base import MethodConfig, require_choice, require_int, require_number
from hf_resize.methods.turbo_vbi.inference import Priors

ALLOCATIONS = ("uniform", "per_layer")


@dataclass
class TurboVBIConfig(MethodConfig):
    """Turbo-VBI (after Xia, Tsang, Lau 2023). See MethodConfig for ratio, groups, target, head_mode.

    Per layer and group kind, a Bayesian regression of the dense consumer output on the units' activations with
    a three-layer sparse prior (support s_j → precision ρ_j → weights w_j; ``inference.py``) is solved by
    alternating variational Bayes (module A: q(W), the precisions and q(s)) with sum-product on a Markov-chain
    support prior (module B, ``support.py``), all from the calibration Gram matrices. docs/turbo_vbi.md has the
    model and the measurements.

    Ratio rule (``turbo.py``): the support prior carries one log-odds offset τ (a factor e^{τ s_j} on every unit,
    like a per-unit description cost), set after every module-A pass so that the posterior's expected number of
    active units Σ_j q(s_j = 1) equals the budget — per group for the uniform allocation, one τ shared by all
    MLP layers for the per-layer one. The kept units are the budget's count of most probable ones (largest
    posterior log-odds of s_j); their weights are the posterior mean of the regression restricted to them.

    Args:
        allocation: ``"uniform"`` (every layer keeps the same width) or ``"per_layer"`` (one offset τ for all MLP
            layers: a unit stays when it is worth τ nats of its layer's evidence, wherever it is; the same total
            as uniform, ranked across layers by posterior log-odds, at least ``min_width`` of each layer;
            exported with per-layer widths).
        turbo_iterations: most rounds of module A then module B (stops early when no support probability moves
            by more than ``tolerance``).
        vb_iterations: module-A passes per round.
        tolerance: support-change threshold for stopping.
        support_prior: the support chain's stationary probability p that a unit is kept; None uses the kept
            fraction the ratio asks for. (The budget's offset τ comes on top.)
        persistence: λ in [0, 1): how strongly neighbouring units on a chain share their support state.
        active_shape, active_rate: Gamma prior of an active unit's precision relative to the data's, ρ_j / γT
            (vague).
        inactive_shape, inactive_rate: Gamma prior of an inactive unit's relative precision (mean 1e8, sharply
            peaked: a spike that puts its weights at ~1e-8 of a fit).
        min_width: per-layer allocation floor, as a fraction of the layer's width.
    """

    method_name: ClassVar[str] = "turbo_vbi"
    needs: ClassVar[frozenset[str]] = frozenset({"mlp_gram", "attn_gram"})
    min_calibration_tokens: ClassVar[int] = 2048

    allocation: str = "uniform"
    turbo_iterations: int = 8
    vb_iterations: int = 1
    tolerance: float = 1e-3
    support_prior: float | None = None
    persistence: float = 0.5
    active_shape: float = 1e-3
    active_rate: float = 1e-3
    inactive_shape: float = 1e3
    inactive_rate: float = 1e-5
    min_width: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if "hidden" in self.groups:
            raise ConfigError(
                "turbo_vbi removes MLP neurons and attention heads, not the hidden width; use groups=('mlp', 'heads'), "
                "or method 'pca_slice' / 'dotresize' for the hidden width."
            )
        require_choice("allocation", self.allocation, ALLOCATIONS)
        self.turbo_iterations = require_int("turbo_iterations", self.turbo_iterations, "8")
        self.vb_iterations = require_int("vb_iterations", self.vb_iterations, "1")
        self.tolerance = require_number("tolerance", self.tolerance, 0, "1e-3")
        if self.support_prior is not None:
            p = require_number("support_prior", self.support_prior, 0, "0.75", strict=True)
            if p >= 1:
                raise ConfigError(f"support_prior must be in (0, 1) (e.g. 0.75); got {self.support_prior!r}.")
            self.support_prior = p
        self.persistence = require_number("persistence", self.persistence, 0, "0.5")
        if self.persistence >= 1:
            raise ConfigError(f"persistence must be in [0, 1) (e.g. 0.5); got {self.persistence!r}.")
        for name in ("active_shape", "active_rate", "inactive_shape", "inactive_rate"):
            setattr(self, name, require_number(name, getattr(self, name), 0, "1e-3", strict=True))
        self.min_width = require_number("min_width", self.min_width, 0, "0.1")
        if self.min_width > 1:
            raise ConfigError(f"min_width must be in [0, 1] (e.g. 0.1); got {self.min_width!r}.")
        if self.allocation == "per_layer" and "heads" in self.groups:
            raise ConfigError("allocation='per_layer' spreads MLP neurons only; use groups=('mlp',) with it.")

    def priors(self) -> Priors:
        return Priors(self.active_shape, self.active_rate, self.inactive_shape, self.inactive_rate)
