"""PCA slicing of the hidden width (SliceGPT-style, Ashkboos et al. 2024), a baseline.

The residual stream is rotated onto the top-m principal directions of its RMS-normalised calibration Gram
(summed over the layers' inputs) and the rest is sliced away. SliceGPT rotates each layer separately and adds
shortcut matrices to the residual path; this baseline uses one global rotation so the output stays a stock
config (the same constraint DOTResize's hidden merge works under).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from transformers import PreTrainedModel

from hf_resize.adapters import get_adapter
from hf_resize.errors import ConfigError
from hf_resize.groups import neuron_groups
from hf_resize.methods.base import MethodConfig, MethodSpec, register_method
from hf_resize.methods.statistics import summed_statistic
from hf_resize.methods.targets import planned_widths
from hf_resize.modeling.modeling_hf_resize import decoder_layers
from hf_resize.plan import GroupPlan, Plan


@dataclass
class PCASliceConfig(MethodConfig):
    """PCA slicing of the hidden width (SliceGPT-style, one global rotation). See MethodConfig; groups must be
    ``("hidden",)``."""

    method_name: ClassVar[str] = "pca_slice"
    needs: ClassVar[frozenset[str]] = frozenset({"hidden_gram"})
    min_calibration_tokens: ClassVar[int] = 2048

    groups: tuple[str, ...] = ("hidden",)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.groups != ("hidden",):
            raise ConfigError(f"pca_slice reduces the hidden width only: use groups=('hidden',); got {self.groups!r}.")


def principal_basis(gram: torch.Tensor, count: int) -> torch.Tensor:
    """[n, count] orthonormal eigenvectors of ``gram`` with the largest eigenvalues (sign-fixed, deterministic)."""
    values, vectors = torch.linalg.eigh(gram.to(torch.float64))
    top = vectors[:, torch.argsort(values, descending=True)[:count]]
    signs = torch.sign(top[top.abs().argmax(0), torch.arange(count)])
    return top * signs


def check_family(model: PreTrainedModel, config: PCASliceConfig) -> None:
    adapter = get_adapter(model)
    if adapter.writer_norms:
        raise ConfigError(
            f"pca_slice rotates the residual stream, which sandwich norms ({', '.join(adapter.model_types)}) do not "
            "allow: use method 'dotresize' or 'magnitude' for this model's hidden width, or resize MLP/heads."
        )


def pca_slice_plan(model: PreTrainedModel, config: PCASliceConfig, statistics: dict | None = None) -> Plan:
    (group,) = neuron_groups(model, ("hidden",))
    units, _ = planned_widths(model, config)[group.name]
    shape = (group.width, group.width)
    gram = summed_statistic(statistics, "hidden_gram", len(decoder_layers(model)), shape, "pca_slice")
    if units == group.width:
        return Plan(config.method_name, [GroupPlan(group, keep=torch.arange(group.width))], config.to_dict())
    basis = principal_basis(gram, units)
    return Plan(config.method_name, [GroupPlan(group, producer=basis.T.contiguous(), consumer=basis)], config.to_dict())


register_method(
    MethodSpec("pca_slice", PCASliceConfig, pca_slice_plan, "PCA slicing of the hidden width (baseline)", check=check_family)
)
