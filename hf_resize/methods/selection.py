"""Turning per-unit scores into keep-indices at a group's granularity (shared by every pruning method)."""

from __future__ import annotations

import torch

from hf_resize.groups import NeuronGroup


def top_units(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of the ``count`` highest scores, ascending; ties broken by index for determinism."""
    order = torch.argsort(-scores.double(), stable=True)
    return order[:count].sort().values


def head_keep(
    group: NeuronGroup, q_scores: torch.Tensor, kv_scores: torch.Tensor, units: int, kv_kept: int, head_mode: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """Query-head and KV-head keep indices that keep the GQA structure regular.

    ``kv_groups``: keep the best KV groups whole (scored by their KV heads plus their query heads).
    ``query_per_group``: keep every KV head and the same number of best query heads in each group.
    """
    per_kv = group.queries_per_kv
    by_group = q_scores.reshape(group.kv_width, per_kv)
    if head_mode == "kv_groups":
        kv_keep = top_units(kv_scores + by_group.sum(1), kv_kept)
        keep = (kv_keep[:, None] * per_kv + torch.arange(per_kv)).flatten()
        return keep, kv_keep
    per_group = units // group.kv_width
    keep = torch.cat([top_units(by_group[g], per_group) + g * per_kv for g in range(group.kv_width)])
    return keep, torch.arange(group.kv_width)


def head_columns(keep: torch.Tensor, head_dim: int) -> torch.Tensor:
    """Consumer input columns (o_proj) of the kept heads, in ascending head order."""
    return (keep.sort().values[:, None] * head_dim + torch.arange(head_dim)).flatten()
