"""Lay solved groups end to end into one :class:`~stream_trapti.trace.OccupancyTrace`.

Stream runs fused groups one after another (every group's inputs and outputs go through the off-chip core), so the
trace of a workload is its groups' occupancies placed at the running sum of their cycles. The same function
composes a whole inference from groups solved once and reused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from stream_trapti.trace import ACCESS_SOURCES, CLASSES, LAYER_PREFIX, VIEWS, GroupSpan, OccupancyTrace, TensorPeak
from stream_trapti.tracker.group import GroupOccupancy

DEFAULT_WINDOWS = 4096
"""Access statistics default to this many windows over the whole trace."""

TOP_TENSORS = 8
"""Tensors attributed by name per memory and view, largest first (as many as Stream's own occupancy report)."""


@dataclass(frozen=True)
class ResidentCache:
    """A KV cache kept in on-chip memory ``memory`` across groups, outside Stream's per-group allocation: ``initial``
    bytes from cycle 0, and ``added[i]`` more from the start of group ``i`` to the end of the trace (the entries the
    group's layer appends). It counts in both views, as a KV-cache class."""

    memory: int
    initial: int
    added: np.ndarray


def compose(
    groups: Sequence[GroupOccupancy],
    window: int | None = None,
    metadata: Mapping[str, str] | None = None,
    resident: ResidentCache | None = None,
) -> OccupancyTrace:
    """The trace of ``groups`` run back to back, with the ``resident`` cache on top of what Stream allocates;
    ``window`` is the access-statistics window in cycles."""
    if not groups:
        raise ValueError("cannot compose an occupancy trace from no groups: the solve recorded none")
    memories = groups[0].memories
    if any(g.memories != memories for g in groups):
        raise ValueError("groups of one trace must come from the same accelerator: their on-chip memories differ")
    cycles, starts = _layout(groups)
    total = int(cycles.sum())
    if total <= 0:
        raise ValueError("the composed groups take no cycles")
    window = window or max(1, -(-total // DEFAULT_WINDOWS))

    events = _occupancy_events(groups, cycles, starts, total)
    if resident is not None:
        events = np.concatenate([events, _resident_events(resident, starts)])
    times, occupancy = _step_function(events, len(memories), total)
    return OccupancyTrace(
        cycles=total,
        memories=memories,
        times=times,
        occupancy=occupancy,
        window=window,
        accesses=_accesses(groups, starts, len(memories), total, window),
        groups=tuple(
            GroupSpan(g.name, int(s), int(s + g.cycles), tuple(int(v) for v in g.reserved.sum(axis=1)))
            for g, s in zip(groups, starts, strict=True)
        ),
        tensors=_top_tensors(groups, starts),
        metadata=dict(metadata or {}),
    )


@dataclass(frozen=True)
class NeededIntervals:
    """Every needed interval of groups run back to back, in absolute cycles: ``[begin, end)`` (non-empty), memory
    index, class index and bytes, one entry per interval."""

    begin: np.ndarray
    end: np.ndarray
    memory: np.ndarray
    tensor_class: np.ndarray
    size: np.ndarray


def needed_intervals(groups: Sequence[GroupOccupancy]) -> NeededIntervals:
    """The needed intervals of ``groups`` run back to back, as :func:`compose` lays them out; an interval a group's
    end cuts short ends there."""
    cycles, starts = _layout(groups)
    counts = [len(g.needed_bytes) for g in groups]
    offset, limit = np.repeat(starts, counts), np.repeat(cycles, counts)

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(g, name) for g in groups]).astype(np.int64)

    begin = offset + np.clip(joined("needed_start"), 0, limit)
    end = offset + np.clip(joined("needed_end"), 0, limit)
    live = end > begin
    return NeededIntervals(
        begin[live],
        end[live],
        joined("needed_memory")[live],
        joined("needed_class")[live],
        joined("needed_bytes")[live],
    )


def _layout(groups: Sequence[GroupOccupancy]) -> tuple[np.ndarray, np.ndarray]:
    """Each group's cycles and its start when the groups run back to back."""
    cycles = np.array([g.cycles for g in groups], dtype=np.int64)
    return cycles, np.concatenate([[0], np.cumsum(cycles)[:-1]])


def _occupancy_events(
    groups: Sequence[GroupOccupancy], cycles: np.ndarray, starts: np.ndarray, total: int
) -> np.ndarray:
    """Rows of (cycle, view, memory, class, ±bytes): reserved for each group's span, needed for each interval."""
    index, m, c = np.nonzero(np.stack([g.reserved for g in groups]))
    amount = np.stack([g.reserved for g in groups])[index, m, c]
    reserved = VIEWS.index("reserved")
    needed = needed_intervals(groups)
    view = np.full_like(needed.memory, VIEWS.index("needed"))
    rows = [
        np.column_stack([starts[index], np.full_like(m, reserved), m, c, amount]),
        np.column_stack([starts[index] + cycles[index], np.full_like(m, reserved), m, c, -amount]),
        np.column_stack([needed.begin, view, needed.memory, needed.tensor_class, needed.size]),
        np.column_stack([needed.end, view, needed.memory, needed.tensor_class, -needed.size]),
    ]
    events = np.concatenate(rows).astype(np.int64)
    return events[events[:, 0] < total]


def _resident_events(resident: ResidentCache, starts: np.ndarray) -> np.ndarray:
    """Rows of (cycle, view, memory, class, +bytes) for the resident cache in both views; it is never freed."""
    at = np.concatenate([[0], starts])
    size = np.concatenate([[resident.initial], resident.added]).astype(np.int64)
    keep = size != 0
    at, size = at[keep], size[keep]
    kv = CLASSES.index("kv_cache")
    rows = [
        np.column_stack([at, np.full_like(at, v), np.full_like(at, resident.memory), np.full_like(at, kv), size])
        for v in range(len(VIEWS))
    ]
    return np.concatenate(rows).astype(np.int64)


def _step_function(events: np.ndarray, memories: int, total: int) -> tuple[np.ndarray, np.ndarray]:
    """Change points and the (view, memory, class, change point) bytes after summing the events at each."""
    times, where = np.unique(np.concatenate([[0], events[:, 0]]), return_inverse=True)
    delta = np.zeros((len(VIEWS), memories, len(CLASSES), len(times)), dtype=np.int64)
    np.add.at(delta, (events[:, 1], events[:, 2], events[:, 3], where[1:]), events[:, 4])
    return times, np.cumsum(delta, axis=3)


def _accesses(
    groups: Sequence[GroupOccupancy], starts: np.ndarray, memories: int, total: int, window: int
) -> np.ndarray:
    """Bytes read and written per access source and memory in each window."""
    windows = -(-total // window)
    accesses = np.zeros((len(ACCESS_SOURCES), 2, memories, windows), dtype=np.int64)
    counts = [len(g.access_bytes) for g in groups]

    def joined(name: str) -> np.ndarray:
        return np.concatenate([getattr(g, name) for g in groups]).astype(np.int64)

    at = np.clip(np.repeat(starts, counts) + joined("access_time"), 0, total - 1) // window
    index = (joined("access_source"), joined("access_kind"), joined("access_memory"), at)
    np.add.at(accesses, index, joined("access_bytes"))
    return accesses


def _top_tensors(groups: Sequence[GroupOccupancy], starts: np.ndarray) -> tuple[TensorPeak, ...]:
    """The largest tensors per memory and view: reserved bytes as charged, needed bytes at their most concurrent."""
    peaks: dict[tuple[int, str, str, str], int] = {}
    for g in groups:
        for m, tensor, cls, size in g.reserved_tensors:
            key = (m, "reserved", tensor, cls)
            peaks[key] = max(peaks.get(key, 0), size)
    per_arrays: dict[int, dict[tuple[int, int, int], int]] = {}
    for g in groups:
        # A layer repeated from one solve shares that solve's arrays: its peaks are computed once.
        key = id(g.needed_bytes)
        if key not in per_arrays:
            per_arrays[key] = _needed_peaks(g)
        for (m, t, c), size in per_arrays[key].items():
            key = (m, "needed", g.tensor_names[t], CLASSES[c])
            peaks[key] = max(peaks.get(key, 0), size)
    ranked = sorted(peaks.items(), key=lambda kv: (kv[0][0], kv[0][1], -kv[1], _layer_order(kv[0][2])))
    kept: list[TensorPeak] = []
    seen: dict[tuple[int, str], set[str]] = {}
    for (m, view, tensor, cls), size in ranked:
        # The same tensor of every repeated layer would fill the list: keep the first layer's.
        listed = seen.setdefault((m, view), set())
        role = LAYER_PREFIX.sub("layer*.", tensor)
        if len(listed) < TOP_TENSORS and role not in listed:
            listed.add(role)
            kept.append(TensorPeak(m, view, tensor, cls, size))
    return tuple(kept)


def _layer_order(tensor: str) -> tuple[int, str]:
    """Sort key putting layer 2 before layer 10."""
    found = LAYER_PREFIX.search(tensor)
    return (int(found.group(1)) if found else -1, tensor)


def _needed_peaks(g: GroupOccupancy) -> dict[tuple[int, int, int], int]:
    """The most bytes each (memory, tensor, class) has live at once within one group."""
    if len(g.needed_bytes) == 0:
        return {}
    key = np.column_stack([g.needed_memory, g.needed_tensor, g.needed_class])
    keys, owner = np.unique(key, axis=0, return_inverse=True)
    at = np.concatenate([g.needed_start, g.needed_end])
    delta = np.concatenate([g.needed_bytes, -g.needed_bytes])
    who = np.concatenate([owner, owner])
    # Ends sort before starts at the same cycle: an interval [a, b) and one starting at b never overlap.
    order = np.lexsort((delta, at, who))
    running = np.cumsum(delta[order])
    group_of = who[order]
    # Every tensor's deltas sum to zero, so the running sum restarts from 0 at each tensor's first event.
    peak = np.maximum.reduceat(running, np.searchsorted(group_of, np.arange(len(keys))))
    return {tuple(int(v) for v in k): int(p) for k, p in zip(keys, peak, strict=True)}
