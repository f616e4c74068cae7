"""Fused groups reused across solves: a group another solve already solved is read from the cache, not solved again.

Stream solves the fused groups of a workload one by one, each on its own sub-workload and mapping
(``stream/stages/generation/fusion_group_iteration.py``), so a group's result depends on its sub-workload, its
mapping, the accelerator and the solve options, and on nothing else in the workload. The decode steps of an
inference share most of their groups (the projections and the MLP do not read the cache, so they do not depend on
P); keyed by that content, they are solved once. The key serialises the sub-workload and the mapping with Stream's
own ``get_ir()`` (``stream/workload/workload.py``, ``stream/mapping/mapping.py``): nodes with their dimension
sizes, tensors with their shapes and strides, edges, core allocations and tilings.

A stage placed before Stream's ``FusionGroupIterationStage`` takes the groups the cache holds out of the solve, so
Stream solves only the others; :func:`merge` puts both back in schedule order. When the cache holds every group,
there is nothing left for Stream to solve and the stage ends the solve with :class:`AllGroupsReused`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stream.stages.stage import Stage

from stream_trapti.errors import StreamContractError
from stream_trapti.tracker import cache
from stream_trapti.tracker.group import GroupOccupancy


class AllGroupsReused(Exception):
    """Every group of the solve was in the cache: Stream has nothing left to solve."""


@dataclass
class GroupReuse:
    """The group cache of one solve: ``cache_dir`` holds the groups, ``context`` hashes what every group of the solve
    shares (accelerator, solve options, versions). The stage fills ``keys`` (one per group, in schedule order) and
    ``reused`` (group index → cached group)."""

    cache_dir: Path
    context: str
    keys: list[str] = field(default_factory=list)
    reused: dict[int, GroupOccupancy] = field(default_factory=dict)

    def key(self, sub_workload: Any, mapping: Any) -> str:
        """The content key of one group: the solve's context, the group's sub-workload and its mapping."""
        digest = hashlib.sha256(self.context.encode())
        for ir in (sub_workload.get_ir(), mapping.get_ir()):
            digest.update(json.dumps(ir, sort_keys=True, default=str).encode())
        return digest.hexdigest()

    def stage(self) -> type[Stage]:
        """The stage that takes the cached groups out of the solve, bound to this reuse."""
        return type("GroupReuseStage", (GroupReuseStage,), {"reuse": self})

    def left(self) -> list[int]:
        """The indices of the groups the cache does not hold: what Stream solves."""
        return [i for i in range(len(self.keys)) if i not in self.reused]

    def merge(self, solved: list[GroupOccupancy]) -> list[GroupOccupancy]:
        """The groups of the whole solve in schedule order: the reused ones, and ``solved`` (what Stream solved, in
        order) in the others' places, each stored in the cache under its key."""
        missing = self.left()
        if len(solved) != len(missing):
            raise StreamContractError(f"Stream solved {len(solved)} groups, {len(missing)} were left to it")
        for i, group in zip(missing, solved, strict=True):
            cache.store_groups(self.cache_dir, self.keys[i], [group], cache.FUSED_GROUPS)
        fresh = dict(zip(missing, solved, strict=True))
        return [self.reused[i] if i in self.reused else fresh[i] for i in range(len(self.keys))]


class GroupReuseStage(Stage):
    """Drops the groups the cache holds from the sub-workloads and sub-mappings Stream is about to solve."""

    reads = ("sub_workloads", "sub_mappings")
    writes = ("sub_workloads", "sub_mappings")

    reuse: GroupReuse

    def run(self):
        workloads, mappings = self.ctx.get("sub_workloads"), self.ctx.get("sub_mappings")
        # Set afresh on every run: a fused solve Stream's allocation rejects runs the pipeline again (a token retry).
        self.reuse.keys = [self.reuse.key(w, m) for w, m in zip(workloads, mappings, strict=True)]
        self.reuse.reused = {
            i: hit[0]
            for i, key in enumerate(self.reuse.keys)
            if (hit := cache.load_groups(self.reuse.cache_dir, key, cache.FUSED_GROUPS)) is not None
        }
        left = self.reuse.left()
        if not left:
            raise AllGroupsReused
        self.ctx.set(sub_workloads=[workloads[i] for i in left], sub_mappings=[mappings[i] for i in left])
        sub_stage = self.list_of_callables[0](self.list_of_callables[1:], self.ctx)
        yield from sub_stage.run()
