"""Stream's own cost-model figures for a schedule, carried beside its trace."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from stream_trapti.tracker.group import GroupOccupancy


@dataclass(frozen=True)
class StreamEstimate:
    """What Stream's own cost model says of the same schedule: cycles and energy (pJ; a monolithic SRAM, no
    leakage), summed over its fused groups."""

    cycles: int
    energy_pj: float

    @classmethod
    def of(cls, groups: Sequence[GroupOccupancy]) -> StreamEstimate:
        """The estimate of ``groups`` run back to back: Stream's per-group figures added up."""
        return cls(sum(g.cycles for g in groups), sum(g.energy_pj for g in groups))

    def metadata(self) -> dict[str, str]:
        """The estimate as trace metadata, so Stage II can put it beside its own figures."""
        return {"stream_cycles": str(self.cycles), "stream_energy_pj": repr(self.energy_pj)}
