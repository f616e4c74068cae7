"""Stream's own cost-model figures for a schedule, carried beside its trace."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from stream_trapti.trace import ACCESS_SOURCES, CLASSES, SRAM_METADATA_KEY
from stream_trapti.tracker.group import GroupOccupancy

DRAM_METADATA_KEY = "stream_dram_bytes"
"""Trace metadata key: JSON of the off-chip bytes ``{class: [read, written]}`` of the traced schedule."""


@dataclass(frozen=True)
class StreamEstimate:
    """What Stream's own cost model says of the same schedule: cycles and energy (pJ; a monolithic SRAM, no
    leakage), summed over its fused groups; ``sram_pj`` is the part of that energy Stream charges each on-chip
    memory, by name and access source (:data:`~stream_trapti.trace.ACCESS_SOURCES`); ``dram_bytes`` what the
    transfers read from and write to the off-chip memory, by tensor class, as ``(read, written)``."""

    cycles: int
    energy_pj: float
    sram_pj: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    dram_bytes: Mapping[str, tuple[int, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, groups: Sequence[GroupOccupancy]) -> StreamEstimate:
        """The estimate of ``groups`` run back to back: Stream's per-group figures added up."""
        memories = groups[0].memories if groups else ()
        sram = {
            memory.name: {
                source: sum(g.stream_sram_pj[m][s] for g in groups) for s, source in enumerate(ACCESS_SOURCES)
            }
            for m, memory in enumerate(memories)
        }
        dram = sum((g.dram_bytes for g in groups), start=np.zeros((len(CLASSES), 2), dtype=np.int64))
        by_class = {c: (int(dram[i, 0]), int(dram[i, 1])) for i, c in enumerate(CLASSES)}
        return cls(sum(g.cycles for g in groups), sum(g.energy_pj for g in groups), sram, by_class)

    @property
    def dram_total_bytes(self) -> int:
        """Bytes moved across the off-chip interface, both directions, all classes."""
        return sum(read + written for read, written in self.dram_bytes.values())

    def metadata(self) -> dict[str, str]:
        """The estimate as trace metadata, so Stage II can put it beside its own figures."""
        return {
            "stream_cycles": str(self.cycles),
            "stream_energy_pj": repr(self.energy_pj),
            SRAM_METADATA_KEY: json.dumps(self.sram_pj, sort_keys=True),
            DRAM_METADATA_KEY: json.dumps(self.dram_bytes, sort_keys=True),
        }
