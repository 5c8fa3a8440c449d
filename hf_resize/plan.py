"""Plans: what a method decided for each neuron group, as data. Surgery is the only thing that applies them."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from hf_resize.groups import NeuronGroup


@dataclass
class GroupPlan:
    """How one group changes from ``n`` to ``m`` units.

    Either ``keep`` (indices of kept units, pruning) or a merge: ``producer`` (m x n) mixes producer units
    into new ones and ``consumer`` (n x m) maps consumer inputs onto them (its inverse or pseudo-inverse).
    For head groups ``kv_keep``/``kv_producer`` do the same for KV heads. ``consumer_weight`` optionally
    replaces the consumer weight outright (compensation, e.g. a least-squares refit of down_proj).
    """

    group: NeuronGroup
    keep: torch.Tensor | None = None
    producer: torch.Tensor | None = None
    consumer: torch.Tensor | None = None
    kv_keep: torch.Tensor | None = None
    kv_producer: torch.Tensor | None = None
    consumer_weight: torch.Tensor | None = None

    def __post_init__(self) -> None:
        if (self.keep is None) == (self.producer is None):
            raise ValueError(f"{self.group.name}: a plan needs exactly one of keep or producer")
        if self.producer is not None and self.consumer is None:
            raise ValueError(f"{self.group.name}: a merge plan needs its consumer-side matrix")
        if self.keep is not None:
            self.keep = torch.as_tensor(self.keep, dtype=torch.long).sort().values
            if self.keep.numel() and (self.keep.min() < 0 or self.keep.max() >= self.group.width):
                raise ValueError(f"{self.group.name}: keep indices out of range")
            if self.keep.unique().numel() != self.keep.numel():
                raise ValueError(f"{self.group.name}: duplicate keep indices")
        if self.kv_keep is not None:
            self.kv_keep = torch.as_tensor(self.kv_keep, dtype=torch.long).sort().values

    @property
    def new_width(self) -> int:
        return int(self.keep.numel()) if self.keep is not None else int(self.producer.shape[0])

    @property
    def new_kv_width(self) -> int | None:
        if self.group.kind != "heads":
            return None
        if self.kv_keep is not None:
            return int(self.kv_keep.numel())
        if self.kv_producer is not None:
            return int(self.kv_producer.shape[0])
        return self.group.kv_width

    @property
    def is_identity(self) -> bool:
        return (
            self.keep is not None
            and self.new_width == self.group.width
            and self.new_kv_width == self.group.kv_width
            and self.consumer_weight is None
        )


@dataclass
class Plan:
    """All group plans of one resize, plus where they came from (for model cards and caches)."""

    method: str
    groups: list[GroupPlan] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def for_kind(self, kind: str) -> list[GroupPlan]:
        return [p for p in self.groups if p.group.kind == kind]
