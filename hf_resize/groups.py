"""Neuron groups: the units of width a method may remove or merge, with everything coupled to them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from transformers import PreTrainedModel

from hf_resize.adapters import FamilyAdapter, get_adapter

GroupKind = Literal["mlp", "heads", "hidden"]
GROUP_KINDS: tuple[GroupKind, ...] = ("mlp", "heads", "hidden")


@dataclass(frozen=True)
class NeuronGroup:
    """One width.

    ``mlp``: intermediate neurons of one layer (producers gate/up rows, consumer down columns).
    ``heads``: query heads of one layer, unit ``head_dim`` rows of q and columns of o; ``kv_width`` KV heads
    (rows of k and v) with ``width // kv_width`` query heads sharing each.
    ``hidden``: the residual stream, global (embeddings, every norm, every reader and writer, lm_head).
    """

    kind: GroupKind
    layer: int | None
    width: int
    unit_size: int = 1
    kv_width: int | None = None

    @property
    def name(self) -> str:
        return self.kind if self.layer is None else f"{self.kind}.{self.layer}"

    @property
    def queries_per_kv(self) -> int:
        return self.width // self.kv_width if self.kv_width else 1


def _layer_width(config, key: str, layer: int):
    """A width from the config, honouring per-layer overrides written by surgery."""
    overrides = getattr(config, "hf_resize_layer_widths", None)
    if overrides and key in overrides[layer]:
        return overrides[layer][key]
    return getattr(config, key)


def head_dim_of(config, adapter: FamilyAdapter) -> int:
    head_dim = getattr(config, adapter.head_dim_key, None)
    return head_dim or getattr(config, adapter.hidden_key) // getattr(config, adapter.heads_key)


def neuron_groups(model: PreTrainedModel, kinds: tuple[GroupKind, ...] = GROUP_KINDS) -> list[NeuronGroup]:
    """Every neuron group of ``model`` of the given kinds, layer by layer, then the hidden width."""
    adapter = get_adapter(model)
    config = model.config
    groups: list[NeuronGroup] = []
    for layer in range(config.num_hidden_layers):
        if "mlp" in kinds:
            groups.append(NeuronGroup("mlp", layer, _layer_width(config, adapter.intermediate_key, layer)))
        if "heads" in kinds:
            groups.append(
                NeuronGroup(
                    "heads",
                    layer,
                    _layer_width(config, adapter.heads_key, layer),
                    unit_size=head_dim_of(config, adapter),
                    kv_width=_layer_width(config, adapter.kv_heads_key, layer),
                )
            )
    if "hidden" in kinds:
        groups.append(NeuronGroup("hidden", None, getattr(config, adapter.hidden_key)))
    return groups
