"""Planning a method's groups in threads, shared by the planners whose per-group work dominates (dotresize, kfac)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch
from tqdm.auto import tqdm

from hf_resize.groups import NeuronGroup
from hf_resize.plan import GroupPlan

PlanOne = Callable[[NeuronGroup, int, "int | None"], GroupPlan]


def plan_groups(
    groups: list[NeuronGroup], widths: dict[str, tuple[int, int | None]], plan_one: PlanOne, desc: str
) -> list[GroupPlan]:
    """``plan_one(group, units, kv_kept)`` for every group whose width changes, the identity plan for the others.

    Groups are independent and their work (Sinkhorn's matrix-vector products, rank-one OBS updates) is
    memory-bound and largely single-threaded, so one group per torch thread roughly halves the time on two cores;
    ``map`` keeps the groups' order, so the result does not depend on the scheduling.
    """

    def plan(group: NeuronGroup) -> GroupPlan:
        units, kv_kept = widths[group.name]
        if units == group.width and (group.kind != "heads" or kv_kept == group.kv_width):
            return GroupPlan(group, keep=torch.arange(group.width))  # nothing removed: the exact identity
        return plan_one(group, units, kv_kept)

    with ThreadPoolExecutor(max_workers=max(1, torch.get_num_threads())) as pool:
        return list(tqdm(pool.map(plan, groups), total=len(groups), desc=desc, unit="group", disable=len(groups) < 8))
