"""DOTResizeConfig: every hyperparameter of DOTResize, validated before any work starts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from hf_resize.errors import ConfigError
from hf_resize.methods.base import MethodConfig, require_choice, require_number
from hf_resize.methods.dotresize.transport import COSTS, SOLVERS, TARGET_CHOICES

CONSUMERS = ("least_squares", "transport")
_GROUP_STATISTICS = {"mlp": "mlp_gram", "heads": "attn_gram", "hidden": "hidden_gram"}
SPACES = ("activation", "output")
ALLOCATIONS = ("uniform", "error", "absolute_error")
HIDDEN_BASES = ("qr", "none")


@dataclass
class DOTResizeConfig(MethodConfig):
    """DOTResize (Verma, Murray, Duh 2025): merge neurons by discrete optimal transport. See MethodConfig.

    For each group of n units (MLP neurons, query heads within a KV group, or the hidden width) reduced to m,
    m target units are chosen, every unit's calibration activations are transported onto the targets'
    (uniform masses, entropic OT), and the transport plan becomes the merge: each target's producer weights
    become the transport-weighted average of the units sent to it.

    Args:
        space: where units are compared (targets and costs): ``"activation"`` (their calibration activations,
            as in the paper) or ``"output"`` (their contributions to the consumer's output, a_i w_iᵀ, which also
            weighs how strongly the next layer reads them). The hidden width always uses activations.
        targets: how targets are chosen: ``"kmeans++"`` (largest activation first, then seeded D² sampling on
            activation distances, which avoids near-duplicates) or ``"activation_norm"`` (the m largest).
        cost: ``"sqeuclidean"`` (||a_i − a_t||²) or ``"correlation"`` (1 − cosine of activation vectors).
        solver: ``"sinkhorn"`` (entropic, falls back to log-domain if it underflows), ``"sinkhorn_log"`` or
            ``"emd"`` (exact OT; ``epsilon`` unused).
        epsilon: entropic regularisation, relative to the mean cost (> 0). Smaller is closer to exact OT.
        iterations: maximum Sinkhorn iterations.
        merge: ``False`` prunes to the same targets instead of merging (ablation; the consumer is still refit).
        consumer: ``"least_squares"`` refits down_proj / o_proj on the calibration Gram to reproduce the dense
            output from the merged units; ``"transport"`` reads each removed unit through the targets it was
            sent to (W' = W Π̂, no refit).
        damping: ridge term of the least-squares refit, relative to the mean diagonal of its system (>= 0).
        hidden_basis: hidden width only: ``"qr"`` writes the stream in an orthonormal basis Q of the merge
            (T = QR, keeps RMSNorm's invariance); ``"none"`` uses the merge itself and its pseudo-inverse.
        allocation: ``"uniform"`` (every MLP layer keeps the same width), ``"error"``: the same total, placed
            where removing units would cost the largest fraction of the layer's output energy after a
            least-squares refit, or ``"absolute_error"``: the same with unnormalised errors. Both give per-layer
            widths, exported through the per-layer path. Heads and the hidden width stay uniform.
        min_width: with ``allocation="error"``, the least fraction of its width an MLP layer keeps (0 < f <= 1).

    Defaults are the best merging settings on held-out calibration text (``benchmarks/validate.py``; never the
    evaluation book). On SmolLM2's SwiGLU MLPs merging still loses to ``merge=False`` (pruning to the same
    targets with the refit): a merged neuron's activation is not the mix of its sources' across the nonlinearity
    (``benchmarks/layer_merge_study.py``).

    Heads: with ``head_mode="query_per_group"`` query heads are merged within their KV group (they share keys,
    so a merged head's attention logits are the weighted average of its sources'). With ``"kv_groups"`` whole
    KV groups are chosen by the same target rule and the rest pruned: merging keys would change every pattern.
    """

    method_name: ClassVar[str] = "dotresize"
    needs: ClassVar[frozenset[str]] = frozenset({"mlp_gram", "attn_gram", "hidden_gram"})
    min_calibration_tokens: ClassVar[int] = 2048

    space: str = "output"
    targets: str = "activation_norm"
    cost: str = "sqeuclidean"
    solver: str = "sinkhorn"
    epsilon: float = 0.01
    iterations: int = 1000
    merge: bool = True
    consumer: str = "least_squares"
    damping: float = 0.01
    hidden_basis: str = "qr"
    allocation: str = "uniform"
    min_width: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, allowed in (
            ("space", SPACES),
            ("targets", TARGET_CHOICES),
            ("cost", COSTS),
            ("solver", SOLVERS),
            ("consumer", CONSUMERS),
            ("hidden_basis", HIDDEN_BASES),
            ("allocation", ALLOCATIONS),
        ):
            require_choice(name, getattr(self, name), allowed)
        self.epsilon = require_number("epsilon", self.epsilon, 0, "0.05", strict=True)
        self.damping = require_number("damping", self.damping, 0, "0.01")
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations < 1:
            raise ConfigError(f"iterations must be a positive integer (e.g. 1000); got {self.iterations!r}.")
        self.min_width = require_number("min_width", self.min_width, 0, "0.1", strict=True)
        if self.min_width > 1:
            raise ConfigError(f"min_width is a fraction of each MLP layer's width, at most 1; got {self.min_width!r}.")
        # Only the statistics of the selected groups (the class attribute lists all of them, for benchmarks).
        self.needs = frozenset(kind for group, kind in _GROUP_STATISTICS.items() if group in self.groups)
        if not isinstance(self.merge, bool):
            raise ConfigError(f"merge must be true or false; got {self.merge!r}.")
