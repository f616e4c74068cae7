"""The occupancy trace: what every on-chip memory holds at every cycle of a Stream schedule, and how much is read
and written in it over time.

A trace is a step function over cycles ``[0, cycles)`` held as change points, never as one value per cycle, so a
whole inference of 10⁹ cycles stays a few megabytes. Values are exact integer bytes. Two views are kept:

* ``reserved``: the bytes Stream's allocation reserves in the memory while a fused group runs (what its
  ``memory_capacity`` constraints charge, i.e. Stream's ``memory_occupancy`` report);
* ``needed``: the bytes written and still to be read, from the write (producer start or transfer arrival) to the
  end of the last reader.

Each view is split by tensor class (:data:`CLASSES`). The file format (:meth:`OccupancyTrace.save`) is a zip of
``.npy`` arrays and one ``meta.json`` (:mod:`stream_trapti.archive`): ``numpy.load`` and ``json`` read it without
this package.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from stream_trapti import archive
from stream_trapti.atomic import atomic_write
from stream_trapti.errors import InputFileError

VIEWS: tuple[str, ...] = ("reserved", "needed")
CLASSES: tuple[str, ...] = ("weight", "activation", "kv_cache")
ACCESS_SOURCES: tuple[str, ...] = ("transfer", "compute")
"""Who accesses a memory: Stream's DMA transfers into and out of it, or the computation of the nodes on its cores
(operand reads and partial-sum writes, as ZigZag's cost model counts them for Stream)."""

OFFCHIP = -1
"""The memory index that stands for the off-chip memory where on-chip memories are numbered (a group's ports)."""

LAYER_PREFIX = re.compile(r"layer(\d+)\.")
"""The prefix naming the decoder layer a tensor or group belongs to, as stream_trapti.workloads names them."""

FORMAT_VERSION = 2
SRAM_METADATA_KEY = "stream_sram_pj"
"""Trace metadata key holding Stream's own energy per on-chip memory and access source (JSON), recorded by the
tracker at solve time (:meth:`stream_trapti.tracker.estimate.StreamEstimate.metadata`)."""

View = Literal["reserved", "needed"]


@dataclass(frozen=True)
class MemoryInfo:
    """One on-chip memory instance; a memory shared by several cores appears once, with all their ids.
    ``read_pj``/``write_pj`` are the energies per port access the hardware description gives Stream."""

    name: str
    core_ids: tuple[int, ...]
    capacity_bytes: int
    read_port_bits: int
    write_port_bits: int
    read_pj: float = 0.0
    write_pj: float = 0.0


@dataclass(frozen=True)
class GroupSpan:
    """One fused group of the schedule: its cycles ``[start, end)`` and the bytes Stream reported it reserves in
    each memory (in :attr:`OccupancyTrace.memories` order)."""

    name: str
    start: int
    end: int
    reserved_bytes: tuple[int, ...]


@dataclass(frozen=True)
class TensorPeak:
    """The most bytes one tensor occupies in one memory under one view, for attributing a peak."""

    memory: int
    view: str
    tensor: str
    tensor_class: str
    peak_bytes: int


@dataclass(frozen=True, eq=False)
class OccupancyTrace:
    """Occupancy of every on-chip memory over ``[0, cycles)``.

    ``times`` (K,) are the change points, starting at 0 and strictly increasing; ``occupancy`` (view, memory,
    class, K) holds the bytes on ``[times[k], times[k+1])`` (the last one up to ``cycles``). ``accesses``
    (source, 2, memory, W) holds the bytes read (0) and written (1) in each window of ``window`` cycles, per
    :data:`ACCESS_SOURCES`.
    """

    cycles: int
    memories: tuple[MemoryInfo, ...]
    times: np.ndarray
    occupancy: np.ndarray
    window: int
    accesses: np.ndarray
    groups: tuple[GroupSpan, ...] = ()
    tensors: tuple[TensorPeak, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        k = len(self.times)
        if k == 0 or self.times[0] != 0 or np.any(np.diff(self.times) <= 0) or self.times[-1] >= max(self.cycles, 1):
            raise ValueError("OccupancyTrace.times must start at 0, increase strictly and stay below cycles")
        expected = (len(VIEWS), len(self.memories), len(CLASSES), k)
        if self.occupancy.shape != expected:
            raise ValueError(f"OccupancyTrace.occupancy has shape {self.occupancy.shape}, expected {expected}")
        windows = -(-self.cycles // self.window) if self.cycles else 0
        expected = (len(ACCESS_SOURCES), 2, len(self.memories), windows)
        if self.accesses.shape != expected:
            raise ValueError(f"OccupancyTrace.accesses has shape {self.accesses.shape}, expected {expected}")

    # ------------------------------------------------------------------ queries
    def memory_index(self, memory: int | str) -> int:
        """The index of a memory given by index or name."""
        if isinstance(memory, int):
            if not 0 <= memory < len(self.memories):
                raise IndexError(f"memory index {memory} out of range: the trace has {len(self.memories)} memories")
            return memory
        names = [m.name for m in self.memories]
        if memory not in names:
            raise KeyError(f"no memory named {memory!r} in the trace; it has {names}")
        return names.index(memory)

    def series(self, memory: int | str, view: View = "needed", tensor_class: str | None = None) -> np.ndarray:
        """Bytes at each change point of one memory, summed over classes unless ``tensor_class`` names one."""
        values = self.occupancy[_view_index(view), self.memory_index(memory)]
        return values.sum(axis=0) if tensor_class is None else values[_class_index(tensor_class)]

    def durations(self) -> np.ndarray:
        """Cycles each change point's value holds for."""
        return np.diff(np.append(self.times, self.cycles))

    def value_at(self, memory: int | str, cycle: int, view: View = "needed", tensor_class: str | None = None) -> int:
        """Bytes held at ``cycle``."""
        if not 0 <= cycle < self.cycles:
            raise ValueError(f"cycle {cycle} is outside the trace's [0, {self.cycles})")
        k = int(np.searchsorted(self.times, cycle, side="right")) - 1
        return int(self.series(memory, view, tensor_class)[k])

    def peak(self, memory: int | str, view: View = "needed", tensor_class: str | None = None) -> tuple[int, int]:
        """The most bytes held, and the first cycle it is reached."""
        values = self.series(memory, view, tensor_class)
        k = int(np.argmax(values))
        return int(values[k]), int(self.times[k])

    def time_above(self, memory: int | str, threshold: int, view: View = "needed") -> int:
        """Cycles during which more than ``threshold`` bytes are held."""
        return int(self.durations()[self.series(memory, view) > threshold].sum())

    def histogram(self, memory: int | str, bins: int | Sequence[int] = 32, view: View = "needed") -> tuple:
        """Cycles spent at each occupancy level: ``(cycles per bin, bin edges in bytes)``, weighted by duration."""
        values = self.series(memory, view)
        capacity = self.memories[self.memory_index(memory)].capacity_bytes
        edges = np.linspace(0, capacity, bins + 1) if isinstance(bins, int) else np.asarray(bins)
        counts, edges = np.histogram(values, bins=edges, weights=self.durations())
        return counts.astype(np.int64), edges

    def resample(
        self,
        window: int,
        memory: int | str,
        view: View = "needed",
        how: str = "max",
        tensor_class: str | None = None,
    ) -> np.ndarray:
        """One value per window of ``window`` cycles: the ``max`` or the time-weighted ``mean`` of the bytes held."""
        if window < 1:
            raise ValueError(f"resample window must be a positive number of cycles, got {window}")
        values = self.series(memory, view, tensor_class)
        n = -(-self.cycles // window)
        starts = np.arange(n, dtype=np.int64) * window
        if how == "max":
            # Each window's maximum is over the value holding at its start and every change point inside it.
            active = values[np.searchsorted(self.times, starts, side="right") - 1]
            owner = np.concatenate([np.arange(n), self.times // window])
            order = np.argsort(owner, kind="stable")
            candidates = np.concatenate([active, values])[order]
            return np.maximum.reduceat(candidates, np.searchsorted(owner[order], np.arange(n)))
        if how == "mean":
            bounds = np.append(starts, self.cycles)
            return np.diff(self._area(values, bounds)) / np.diff(bounds)
        raise ValueError(f"resample how must be 'max' or 'mean', got {how!r}")

    def _area(self, values: np.ndarray, at: np.ndarray) -> np.ndarray:
        """The integral of a step function over ``[0, a)`` for each ``a`` in ``at`` (byte-cycles)."""
        before = np.concatenate([[0.0], np.cumsum(values * self.durations(), dtype=np.float64)])
        k = np.searchsorted(self.times, at, side="right") - 1
        return before[k] + values[k] * (at - self.times[k])

    def access_totals(self, source: str | None = None) -> np.ndarray:
        """Bytes read (column 0) and written (column 1) per memory over the whole trace, by every source or by the
        one of :data:`ACCESS_SOURCES` named."""
        accesses = self.accesses.sum(axis=0) if source is None else self.accesses[_source_index(source)]
        return accesses.sum(axis=2).T

    # ------------------------------------------------------------------ formats
    def save(self, path: str | Path) -> Path:
        """Write the trace to ``path`` (``.npz``), atomically and byte-for-byte reproducibly."""
        meta = {
            "format": "stream-trapti occupancy trace",
            "version": FORMAT_VERSION,
            "cycles": self.cycles,
            "window": self.window,
            "views": list(VIEWS),
            "classes": list(CLASSES),
            "access_sources": list(ACCESS_SOURCES),
            "memories": [asdict(m) for m in self.memories],
            "groups": [asdict(g) for g in self.groups],
            "tensors": [asdict(t) for t in self.tensors],
            "metadata": dict(sorted(self.metadata.items())),
        }
        arrays = {"times": self.times, "occupancy": self.occupancy, "accesses": self.accesses}
        return atomic_write(path, archive.pack(arrays, meta))

    @classmethod
    def load(cls, path: str | Path) -> OccupancyTrace:
        """Read a trace written by :meth:`save`."""
        try:
            arrays, meta = archive.unpack(path)
            missing = {"times", "occupancy", "accesses"} - set(arrays)
            if missing:
                raise KeyError(f"no {sorted(missing)}")
        except (OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            raise InputFileError(f"trace {path}: not a stream-trapti occupancy trace ({error})") from error
        if meta.get("version") != FORMAT_VERSION:
            raise InputFileError(
                f"trace {path}: trace format version {meta.get('version')}, this package reads {FORMAT_VERSION}"
            )
        return cls(
            cycles=int(meta["cycles"]),
            memories=tuple(MemoryInfo(**{**m, "core_ids": tuple(m["core_ids"])}) for m in meta["memories"]),
            times=arrays["times"],
            occupancy=arrays["occupancy"],
            window=int(meta["window"]),
            accesses=arrays["accesses"],
            groups=tuple(GroupSpan(**{**g, "reserved_bytes": tuple(g["reserved_bytes"])}) for g in meta["groups"]),
            tensors=tuple(TensorPeak(**t) for t in meta["tensors"]),
            metadata=meta["metadata"],
        )

    def to_csv(self, path: str | Path) -> Path:
        """One row per change point: cycle, then bytes per memory, view and class."""
        columns = [f"{m.name}.{v}.{c}" for v in VIEWS for m in self.memories for c in CLASSES]
        table = np.column_stack([self.times, self.occupancy.reshape(-1, len(self.times)).T])
        text = io.StringIO()
        text.write(",".join(["cycle", *columns]) + "\n")
        np.savetxt(text, table, fmt="%d", delimiter=",")
        return atomic_write(path, text.getvalue().encode())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, OccupancyTrace):
            return NotImplemented
        return (
            (self.cycles, self.memories, self.window, self.groups, self.tensors, dict(self.metadata))
            == (other.cycles, other.memories, other.window, other.groups, other.tensors, dict(other.metadata))
            and np.array_equal(self.times, other.times)
            and np.array_equal(self.occupancy, other.occupancy)
            and np.array_equal(self.accesses, other.accesses)
        )


def stream_sram_pj(trace: OccupancyTrace, memory: int | str) -> dict[str, float] | None:
    """Stream's own energy of one memory of ``trace`` per access source, as the solve recorded it; None when the
    trace does not carry it."""
    recorded = json.loads(trace.metadata.get(SRAM_METADATA_KEY, "{}"))
    return recorded.get(trace.memories[trace.memory_index(memory)].name)


def stream_sram_energy_pj(trace: OccupancyTrace, memory: int | str) -> float | None:
    """What Stream's cost model charges the memory for the traced run, as its solve added it up: the DMA transfers'
    port accesses plus the SRAM part of every node's ZigZag energy (one monolithic SRAM, no leakage); None when the
    trace does not carry it."""
    recorded = stream_sram_pj(trace, memory)
    return None if recorded is None else sum(recorded.values())


def _view_index(view: str) -> int:
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    return VIEWS.index(view)


def _source_index(source: str) -> int:
    if source not in ACCESS_SOURCES:
        raise ValueError(f"unknown access source {source!r}; expected one of {ACCESS_SOURCES}")
    return ACCESS_SOURCES.index(source)


def _class_index(tensor_class: str) -> int:
    if tensor_class not in CLASSES:
        raise ValueError(f"unknown tensor class {tensor_class!r}; expected one of {CLASSES}")
    return CLASSES.index(tensor_class)
