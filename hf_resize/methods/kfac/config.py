"""KFACPruneConfig: curvature-guided removal of MLP neurons and attention heads, optionally interleaved with LoRA
recovery training toward flat minima."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hf_resize.errors import ConfigError
from hf_resize.methods.base import MethodConfig, require_int, require_number


@dataclass
class KFACPruneConfig(MethodConfig):
    """KFAC neuron pruning (after Ebrahimi & Klabjan 2021). See MethodConfig for ratio, groups, target, head_mode.

    Each consumer (down_proj for MLP neurons, o_proj for heads) gets KFAC factors A = E[x xᵀ], G = E[g gᵀ] and the
    gradient E[g xᵀ] under the LM loss on the calibration text. Units are removed greedily, each time the one whose
    removal, with the optimal-brain-surgeon compensation of the remaining columns under A, raises the predicted
    loss least; the compensated weights are kept (see ``hf_resize.methods.kfac.obs``).

    Args:
        damping: added to A as ``damping`` x mean(diag A) before inverting (>= 0; 0.01 is typical).
        first_order: also include the gradient term tr(E[g xᵀ]ᵀ ΔW) in the predicted loss increase (the calibration
            text is not the model's training optimum, so the gradient is not exactly zero). Costs a second
            backward pass over the calibration data (statistic ``kfac_gradient``), so it is off by default.
        rounds: greedy rounds per pruning step: each removes the cheapest batch of units together, with their
            joint compensation (more rounds: closer to one-at-a-time greedy, slower).
        steps: pruning steps; widths shrink linearly from dense to the target over the steps, with fresh KFAC
            factors before each step.
        train_steps: LoRA recovery optimiser steps after each pruning step (0: one-shot pruning, no training).
        learning_rate: AdamW learning rate of the LoRA recovery.
        lora_rank, lora_alpha: LoRA rank and scaling (peft), on every linear of the decoder layers.
        train_batch_size: calibration sequences per recovery step.
        flatness: weight of the flatness term: Σ over consumers of λ_max(A)·λ_max(G), the KFAC estimate of the
            layer Hessian's spectral radius (λ_max(A) by power iteration on the batch, differentiable; λ_max(G)
            from the previous step's gradients, held constant). 0 trains on the LM loss alone.
        power_iterations: power-iteration steps per spectral-radius estimate.
    """

    method_name: ClassVar[str] = "kfac"
    needs: ClassVar[frozenset[str]] = frozenset({"kfac_consumers"})
    min_calibration_tokens: ClassVar[int] = 2048

    damping: float = 0.01
    first_order: bool = False
    rounds: int = 64
    steps: int = 1
    train_steps: int = 0
    learning_rate: float = 1e-4
    lora_rank: int = 8
    lora_alpha: int = 16
    train_batch_size: int = 4
    flatness: float = 0.0
    power_iterations: int = 10

    def __post_init__(self) -> None:
        super().__post_init__()
        if "hidden" in self.groups:
            raise ConfigError(
                "kfac removes MLP neurons and attention heads (the inputs of down_proj / o_proj), not the hidden width; "
                "use groups=('mlp', 'heads'), or method 'pca_slice' / 'dotresize' for the hidden width."
            )
        self.damping = require_number("damping", self.damping, 0, "0.01")
        if not isinstance(self.first_order, bool):
            raise ConfigError(f"first_order must be true or false; got {self.first_order!r}.")
        if self.first_order:  # one more backward pass over the calibration data
            self.needs = frozenset({"kfac_consumers", "kfac_gradient"})
        self.rounds = require_int("rounds", self.rounds, "64")
        self.steps = require_int("steps", self.steps, "4")
        self.train_steps = require_int("train_steps", self.train_steps, "50", minimum=0)
        self.learning_rate = require_number("learning_rate", self.learning_rate, 0, "1e-4", strict=True)
        self.lora_rank = require_int("lora_rank", self.lora_rank, "8")
        self.lora_alpha = require_int("lora_alpha", self.lora_alpha, "16")
        self.train_batch_size = require_int("train_batch_size", self.train_batch_size, "4")
        self.flatness = require_number("flatness", self.flatness, 0, "0.1")
        self.power_iterations = require_int("power_iterations", self.power_iterations, "10")

    @property
    def interleaved(self) -> bool:
        """True when resizing runs as a schedule of pruning steps with recovery training (not one plan)."""
        return self.steps > 1 or self.train_steps > 0
