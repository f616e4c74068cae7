"""A trace's files: the trace itself, its CSV, a Perfetto counter trace, an occupancy plot and a summary."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 -- the backend must be chosen first
import numpy as np  # noqa: E402

from stream_trapti.atomic import OUTPUT_MARKER, atomic_directory  # noqa: E402
from stream_trapti.trace import ACCESS_SOURCES, CLASSES, OccupancyTrace, stream_sram_pj  # noqa: E402

if TYPE_CHECKING:
    from stream_trapti.api import TraceResult

PLOT_POINTS = 4096
"""Above this many change points, plots and Perfetto counters show per-window values instead of every step."""

CLASS_COLOURS = {"weight": "#4c72b0", "activation": "#dd8452", "kv_cache": "#55a868"}


def write_trace_outputs(result: TraceResult, out_dir: str | Path, inputs: Iterable[str | Path] = ()) -> list[Path]:
    """Write ``trace.npz``, ``trace.csv``, ``trace.perfetto.json``, ``occupancy.png`` and ``summary.json`` into
    ``out_dir``, which is replaced whole and only once everything is written (and never when it holds one of the
    run's ``inputs``: see :func:`stream_trapti.atomic.atomic_directory`)."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, inputs) as staging:
        result.trace.save(staging / "trace.npz")
        result.trace.to_csv(staging / "trace.csv")
        (staging / "trace.perfetto.json").write_text(json.dumps(perfetto_json(result.trace)))
        plot_occupancy(result.trace, staging / "occupancy.png")
        (staging / "summary.json").write_text(json.dumps(trace_summary(result), indent=1))
    return sorted(p for p in out_dir.iterdir() if p.name != OUTPUT_MARKER)


def trace_summary(result: TraceResult) -> dict:
    """The headline figures of a trace: cycles, Stream's energy, and per memory the peaks of each view and class,
    when they happen and which tensors are largest, and the accesses by source (``transfer``, ``compute``) beside
    Stream's own energy for them."""
    trace = result.trace
    memories = []
    for m, memory in enumerate(trace.memories):
        entry = {"name": memory.name, "core_ids": list(memory.core_ids), "capacity_bytes": memory.capacity_bytes}
        for view in ("reserved", "needed"):
            peak, at = trace.peak(m, view)
            entry[f"peak_{view}_bytes"] = peak
            entry[f"peak_{view}_cycle"] = at
            entry[f"peak_{view}_group"] = next((g.name for g in trace.groups if g.start <= at < g.end), None)
            entry[f"peak_{view}_by_class"] = {c: trace.peak(m, view, c)[0] for c in CLASSES}
            entry[f"top_{view}_tensors"] = [
                {"tensor": t.tensor, "class": t.tensor_class, "bytes": t.peak_bytes}
                for t in trace.tensors
                if t.memory == m and t.view == view
            ]
        read, write = trace.access_totals()[m]
        entry["bytes_read"], entry["bytes_written"] = int(read), int(write)
        entry["accesses"] = {source: _access_entry(trace, m, source) for source in ACCESS_SOURCES}
        entry["stream_sram_energy_pj"] = stream_sram_pj(trace, m)
        memories.append(entry)
    return {
        "cycles": trace.cycles,
        "stream_cycles": result.stream.cycles,
        "stream_energy_pj": result.stream.energy_pj,
        "groups": len(trace.groups),
        "metadata": dict(trace.metadata),
        "memories": memories,
    }


def _access_entry(trace: OccupancyTrace, m: int, source: str) -> dict[str, int]:
    """Bytes and port words one access source reads and writes in memory ``m`` over the trace."""
    memory = trace.memories[m]
    read, write = (int(v) for v in trace.access_totals(source)[m])
    return {
        "bytes_read": read,
        "bytes_written": write,
        "reads": -(-read * 8 // memory.read_port_bits),
        "writes": -(-write * 8 // memory.write_port_bits),
    }


def _plot_series(trace: OccupancyTrace, m: int, view: str, tensor_class: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Cycles and bytes to draw: every step of a short trace, the per-window maximum of a long one."""
    if len(trace.times) <= PLOT_POINTS:
        return trace.times, trace.series(m, view, tensor_class)
    window = -(-trace.cycles // PLOT_POINTS)
    return np.arange(0, trace.cycles, window), trace.resample(window, m, view, "max", tensor_class)


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


def plot_occupancy(trace: OccupancyTrace, path: str | Path) -> Path:
    """Stacked needed bytes by class per memory, with the reserved bytes and the capacity drawn over them."""
    fig, axes = plt.subplots(len(trace.memories), 1, figsize=(11, 3.2 * len(trace.memories)), squeeze=False)
    for m, (ax, memory) in enumerate(zip(axes[:, 0], trace.memories, strict=True)):
        stacked = [_plot_series(trace, m, "needed", c) for c in CLASSES]
        x = stacked[0][0]
        ax.stackplot(
            x,
            *[values / 2**20 for _, values in stacked],
            labels=[f"needed: {c}" for c in CLASSES],
            colors=[CLASS_COLOURS[c] for c in CLASSES],
            step="post",
        )
        rx, reserved = _plot_series(trace, m, "reserved", None)
        ax.step(rx, reserved / 2**20, where="post", color="black", linewidth=0.8, label="reserved (Stream)")
        ax.axhline(memory.capacity_bytes / 2**20, color="red", linestyle="--", linewidth=0.8, label="capacity")
        ax.set_title(f"{memory.name} (cores {', '.join(map(str, memory.core_ids))})")
        ax.set_ylabel("MiB")
        ax.set_xlim(0, trace.cycles)
        ax.legend(loc="upper right", fontsize=7)
    axes[-1, 0].set_xlabel("cycle")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
