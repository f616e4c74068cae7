"""A trace's files: the trace itself, its CSV, a Perfetto counter trace, an occupancy plot and a summary."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from stream_trapti.atomic import OUTPUT_MARKER, atomic_directory
from stream_trapti.reports.roofline import roofline_figures, write_roofline
from stream_trapti.summary import AccessFigures, MemoryFigures, TensorFigures, TraceFigures
from stream_trapti.trace import ACCESS_SOURCES, CLASSES, OccupancyTrace, stream_sram_pj

if TYPE_CHECKING:
    from stream_trapti.api import TraceResult

PLOT_POINTS = 4096
"""Above this many change points, plots and Perfetto counters show per-window values instead of every step."""

_LAYER_GROUP = re.compile(r"[^/]+/layer\d+\.")
"""A group of a decoder layer: ``<step>/layer<i>.`` begins its name (:mod:`stream_trapti.workloads.builder`)."""


CLASS_COLOURS = {"weight": "#4c72b0", "activation": "#dd8452", "kv_cache": "#55a868"}


def write_trace_outputs(result: TraceResult, out_dir: str | Path, inputs: Iterable[str | Path] = ()) -> list[Path]:
    """Write ``trace.npz``, ``trace.csv``, ``trace.perfetto.json``, ``occupancy.png``, ``roofline.csv``,
    ``roofline.png`` and ``summary.json`` into ``out_dir``, which is replaced whole and only once everything is
    written (and never when it holds one of the run's ``inputs``: see :func:`stream_trapti.atomic.atomic_directory`)."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, inputs) as staging:
        result.trace.save(staging / "trace.npz")
        result.trace.to_csv(staging / "trace.csv")
        (staging / "trace.perfetto.json").write_text(json.dumps(perfetto_json(result.trace)))
        plot_occupancy(result.trace, staging / "occupancy.png")
        summary = trace_summary(result)
        write_roofline(summary.roofline, staging)
        (staging / "summary.json").write_text(summary.to_json())
    return sorted(p for p in out_dir.iterdir() if p.name != OUTPUT_MARKER)


def trace_summary(result: TraceResult) -> TraceFigures:
    """The headline figures of a trace: cycles, Stream's energy, off-chip bytes, and per memory the peaks of each view
    and class, when they happen and which tensors are largest, and the accesses by source (``transfer``,
    ``compute``) beside Stream's own energy for them; and the roofline of its groups
    (:func:`~stream_trapti.reports.roofline.roofline_figures`)."""
    trace = result.trace
    return TraceFigures(
        cycles=trace.cycles,
        stream_cycles=result.stream.cycles,
        stream_energy_pj=result.stream.energy_pj,
        dram_bytes_read=sum(read for read, _ in result.stream.dram_bytes.values()),
        dram_bytes_written=sum(written for _, written in result.stream.dram_bytes.values()),
        dram_bytes_by_class={c: sum(moved) for c, moved in result.stream.dram_bytes.items()},
        groups=len(trace.groups),
        metadata=dict(trace.metadata),
        memories=tuple(_memory_figures(trace, m) for m in range(len(trace.memories))),
        roofline=roofline_figures(result.groups),
    )


def _memory_figures(trace: OccupancyTrace, m: int) -> MemoryFigures:
    """The figures of memory ``m`` of ``trace``: see :class:`MemoryFigures`."""
    memory = trace.memories[m]
    views = {}
    for view in ("reserved", "needed"):
        peak, at = trace.peak(m, view)
        views |= {
            f"peak_{view}_bytes": peak,
            f"peak_{view}_cycle": at,
            f"peak_{view}_group": next((g.name for g in trace.groups if g.start <= at < g.end), None),
            f"peak_{view}_by_class": {c: trace.peak(m, view, c)[0] for c in CLASSES},
            f"top_{view}_tensors": tuple(
                TensorFigures(tensor=t.tensor, tensor_class=t.tensor_class, bytes=t.peak_bytes)
                for t in trace.tensors
                if t.memory == m and t.view == view
            ),
        }
    read, write = trace.access_totals()[m]
    return MemoryFigures(
        name=memory.name,
        core_ids=memory.core_ids,
        capacity_bytes=memory.capacity_bytes,
        **views,
        bytes_read=int(read),
        bytes_written=int(write),
        accesses={source: _access_figures(trace, m, source) for source in ACCESS_SOURCES},
        stream_sram_energy_pj=stream_sram_pj(trace, m),
    )


def _access_figures(trace: OccupancyTrace, m: int, source: str) -> AccessFigures:
    """Bytes and port words one access source reads and writes in memory ``m`` over the trace."""
    memory = trace.memories[m]
    read, write = (int(v) for v in trace.access_totals(source)[m])
    return AccessFigures(
        bytes_read=read,
        bytes_written=write,
        reads=-(-read * 8 // memory.read_port_bits),
        writes=-(-write * 8 // memory.write_port_bits),
    )


def _plot_series(
    trace: OccupancyTrace, m: int, view: str, tensor_class: str | None, start: int = 0, end: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cycles and bytes to draw over ``[start, end)`` (default: the whole trace): every step when there are few, else
    the per-window maximum."""
    end = trace.cycles if end is None else end
    values = trace.series(m, view, tensor_class)
    first = np.searchsorted(trace.times, start, side="right") - 1
    stop = np.searchsorted(trace.times, end, side="left")
    if stop - first <= PLOT_POINTS:
        x = trace.times[first:stop].copy()
        x[0] = start  # the value holding at the window's start, drawn from it
        return x, values[first:stop]
    window = -(-(end - start) // PLOT_POINTS)
    bins = np.arange(start // window, -(-end // window))
    x = bins * window
    x[0] = start
    return x, trace.resample(window, m, view, "max", tensor_class)[bins]


def perfetto_json(trace: OccupancyTrace, clock_ghz: float = 1.0) -> dict:
    """A Chrome/Perfetto trace: one counter track per memory and view with a series per class, and the fused groups
    as slices. Open it at ui.perfetto.dev; timestamps are µs at ``clock_ghz``."""
    us = 1e-3 / clock_ghz
    events: list[dict] = [{"ph": "M", "pid": 1, "name": "process_name", "args": {"name": "on-chip memory occupancy"}}]
    for m, memory in enumerate(trace.memories):
        for view in ("reserved", "needed"):
            columns = {c: _plot_series(trace, m, view, c) for c in CLASSES}
            times = columns[CLASSES[0]][0]
            for k, cycle in enumerate(times):
                args = {c: int(columns[c][1][k]) for c in CLASSES}
                events.append(
                    {"ph": "C", "pid": 1, "name": f"{memory.name} {view} (bytes)", "ts": cycle * us, "args": args}
                )
    events.append({"ph": "M", "pid": 2, "name": "process_name", "args": {"name": "fused groups"}})
    for g in trace.groups:
        events.append(
            {"ph": "X", "pid": 2, "tid": 1, "name": g.name, "ts": g.start * us, "dur": (g.end - g.start) * us}
        )
    return {"traceEvents": events, "displayTimeUnit": "ns", "otherData": {"cycles": trace.cycles, **trace.metadata}}


def zoom_window(trace: OccupancyTrace) -> tuple[str, int, int] | None:
    """The first decoder layer of the first step (``prefill_L128/layer0``, from the group names): its name and its
    cycles ``[start, end)``. None when no group names a layer, or the layer is the whole trace."""
    for group in trace.groups:
        if match := _LAYER_GROUP.match(group.name):
            prefix = match.group(0)
            spans = [(g.start, g.end) for g in trace.groups if g.name.startswith(prefix)]
            start, end = min(s for s, _ in spans), max(e for _, e in spans)
            return (prefix[:-1], start, end) if end - start < trace.cycles else None
    return None


def plot_occupancy(trace: OccupancyTrace, path: str | Path) -> Path:
    """Per memory, the needed bytes stacked by class, with the reserved bytes and the capacity drawn over them: over
    the whole trace, and beside it over one decoder layer (:func:`zoom_window`), whose operators a whole model's
    view compresses into a sawtooth."""
    zoom = zoom_window(trace)
    rows = len(trace.memories)
    figure = Figure(figsize=(16 if zoom else 11, 3.4 * rows))
    axes = figure.subplots(rows, 2 if zoom else 1, squeeze=False, width_ratios=[2, 1] if zoom else None)
    for m, memory in enumerate(trace.memories):
        full = axes[m, 0]
        _draw_occupancy(full, trace, m, 0, trace.cycles)
        full.set_title(f"{memory.name} (cores {', '.join(map(str, memory.core_ids))})")
        full.set_ylabel("MiB")
        if zoom:
            name, start, end = zoom
            full.axvspan(start, end, color="grey", alpha=0.25, linewidth=0, label=f"zoom: {name}")
            top = _draw_occupancy(axes[m, 1], trace, m, start, end)
            # The layer's own scale: against the capacity, a small model's layer is a line along the axis.
            axes[m, 1].set_ylim(0, 1.1 * max(top, 1) / 2**20)
            axes[m, 1].set_title(f"zoom: {name}, cycles {start:,}–{end:,} (its own scale)")
        full.legend(loc="upper right", fontsize=7)
    for axis in axes[-1]:
        axis.set_xlabel("cycle")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return Path(path)


def _draw_occupancy(axis: Axes, trace: OccupancyTrace, m: int, start: int, end: int) -> int:
    """Draw memory ``m``'s needed bytes stacked by class, its reserved bytes and its capacity over ``[start, end)``;
    returns the most bytes drawn."""
    stacked = [_plot_series(trace, m, "needed", c, start, end) for c in CLASSES]
    axis.stackplot(
        stacked[0][0],
        *[values / 2**20 for _, values in stacked],
        labels=[f"needed: {c}" for c in CLASSES],
        colors=[CLASS_COLOURS[c] for c in CLASSES],
        step="post",
    )
    x, reserved = _plot_series(trace, m, "reserved", None, start, end)
    axis.step(x, reserved / 2**20, where="post", color="black", linewidth=0.8, label="reserved (Stream)")
    axis.axhline(trace.memories[m].capacity_bytes / 2**20, color="red", linestyle="--", linewidth=0.8, label="capacity")
    axis.set_xlim(start, end)
    axis.set_ylim(bottom=0)
    return int(max(reserved.max(), sum(values for _, values in stacked).max()))
