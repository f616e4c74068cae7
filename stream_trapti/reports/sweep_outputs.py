"""The files of a design sweep: one results table (``results.parquet``, ``results.csv``), a plot per swept axis and
``report.md``.

The table has one row per point, in the sweep's order, with the columns of :data:`COLUMNS`: the point's axes (the
hardware by name and content hash, or the template a generated accelerator comes from, with its array and DRAM
columns resolved), how many solves it took, the reason it was skipped (else empty), and its
figures, all of the memory the Stage II sweep explores. The same rows give the same bytes in every file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from matplotlib.figure import Figure

from stream_trapti.atomic import atomic_directory
from stream_trapti.design_sweep import AXES, DesignSweep
from stream_trapti.provenance import file_identity
from stream_trapti.trace import CLASSES

MIB = 2**20

COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("point", pa.int64()),
    ("model", pa.string()),
    ("hardware", pa.string()),
    ("sram_mib", pa.float64()),
    ("prefill", pa.int64()),
    ("decode_steps", pa.int64()),
    ("decode_from", pa.int64()),
    ("kv_residency", pa.string()),
    ("kv_budget", pa.float64()),
    ("layers", pa.int64()),
    ("precision_bits", pa.int64()),
    ("array", pa.string()),
    ("array_count", pa.int64()),
    ("dram_gbps", pa.float64()),
    ("fusion", pa.string()),
    ("solves", pa.int64()),
    ("skipped", pa.string()),
    ("memory", pa.string()),
    ("cycles", pa.int64()),
    ("stream_energy_pj", pa.float64()),
    ("dram_bytes", pa.int64()),
    ("dram_kv_bytes", pa.int64()),
    ("peak_needed_bytes", pa.int64()),
    ("peak_reserved_bytes", pa.int64()),
    *((f"peak_needed_{c}_bytes", pa.int64()) for c in CLASSES),
    ("stream_sram_pj", pa.float64()),
    ("best_config", pa.string()),
    ("best_total_pj", pa.float64()),
    ("best_saving", pa.float64()),
    ("best_vs_stream", pa.float64()),
    ("total_energy_pj", pa.float64()),
)
"""The results table's columns and their types; absent values are nulls (Parquet) and empty fields (CSV)."""
SCHEMA = pa.schema(list(COLUMNS))
_NUMERIC_AXES = (
    "sram_mib",
    "prefill",
    "decode_steps",
    "decode_from",
    "kv_budget",
    "layers",
    "precision_bits",
    "array_count",
    "dram_gbps",
)


def table_row(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` as a row of the table: every column, in order, None where ``values`` has none."""
    if unknown := set(values) - set(SCHEMA.names):
        raise ValueError(f"not columns of the sweep table: {sorted(unknown)}")
    return {name: values.get(name) for name in SCHEMA.names}


def write_sweep_outputs(sweep: DesignSweep, rows: Sequence[dict[str, Any]], inputs: Sequence[Path]) -> Path:
    """Write the sweep's directory (replaced whole, once everything is written): the table, plots and report."""
    with atomic_directory(sweep.directory, inputs) as staging:
        (staging / "results.parquet").write_bytes(parquet_bytes(rows))
        (staging / "results.csv").write_text(csv_text(rows))
        plots = {axis: f"against_{axis}.png" for axis in swept_axes(rows)}
        captions = {axis: _plot_against(rows, axis, staging / name) for axis, name in plots.items()}
        (staging / "report.md").write_text(render_sweep_report(sweep, rows, plots, captions))
    return sweep.directory


def parquet_bytes(rows: Sequence[dict[str, Any]]) -> bytes:
    """The table as Parquet (pyarrow), with :data:`SCHEMA`'s types whatever the rows hold."""
    sink = pa.BufferOutputStream()
    pq.write_table(pa.Table.from_pylist(list(rows), schema=SCHEMA), sink)
    return sink.getvalue().to_pybytes()


def csv_text(rows: Sequence[dict[str, Any]]) -> str:
    """The table as CSV: a header of the column names, numbers as Python writes them, nulls empty."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(SCHEMA.names), lineterminator="\n")
    writer.writeheader()
    writer.writerows([{k: "" if v is None else v for k, v in row.items()} for row in rows])
    return text.getvalue()


def swept_axes(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The axes other than the model that take more than one value for some model."""
    models = dict.fromkeys(r["model"] for r in rows)
    return [
        axis
        for axis in AXES
        if axis != "model" and any(len({r[axis] for r in rows if r["model"] == m}) > 1 for m in models)
    ]


def render_sweep_report(
    sweep: DesignSweep, rows: Sequence[dict[str, Any]], plots: dict[str, str], captions: dict[str, str]
) -> str:
    """The sweep's ``report.md``: what ran, the table of every point, and per swept axis its plot."""
    axes = swept_axes(rows)
    ran = [r for r in rows if r["skipped"] is None]
    memory = next((r["memory"] for r in ran), "n/a")
    stage2 = file_identity(sweep.sram_sweep) if sweep.sram_sweep else "every default"
    lines = [
        f"# Design sweep `{sweep.sweep_id}`",
        "",
        f"{len(rows)} points, {len(rows) - len(ran)} skipped; swept: {', '.join(axes) or 'nothing but the model'}. "
        "Models full depth unless `layers` says otherwise, LM head over the last position, Stream's generic mapping "
        f"unless `fusion` says otherwise. Figures are of memory `{memory}`; the best SRAM is the cheapest "
        f"organisation of the Stage II sweep ({stage2}), its saving against the monolithic always-on SRAM of the "
        "same cells. Total energy is Stream's plus the static part (leakage, wake-ups, stalls) of the best SRAM. The "
        "whole table is `results.parquet` (and `results.csv`).",
        "",
        "| point | model | " + "".join(f"{a} | " for a in axes) + "cycles | peak needed (MiB) "
        "| peak reserved (MiB) | KV needed (MiB) | best SRAM | saving vs always-on | total energy (µJ) |",
        "|---:|---|" + "---|" * len(axes) + "---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        head = f"| {r['point']} | {r['model']} | " + "".join(f"{_shown(r[a])} | " for a in axes)
        if r["skipped"] is not None:
            lines.append(head + f"skipped: {r['skipped']} |" + " |" * 6)
            continue
        lines.append(
            head + f"{r['cycles']:,} | {r['peak_needed_bytes'] / MIB:.3f} | {r['peak_reserved_bytes'] / MIB:.3f} "
            f"| {r['peak_needed_kv_cache_bytes'] / MIB:.3f} | {r['best_config']} | {r['best_saving']:.1%} "
            f"| {r['total_energy_pj'] / 1e6:,.1f} |"
        )
    for axis in axes:
        lines += ["", f"## Against {axis}", "", f"![against {axis}]({plots[axis]})", "", captions[axis]]
    return "\n".join(lines) + "\n"


def _shown(value: Any) -> str:
    if value is None:
        return "default"
    return f"{value:g}" if isinstance(value, float) else str(value)


_PANELS: tuple[tuple[str, Callable[[dict[str, Any]], float]], ...] = (
    ("peak needed (MiB)", lambda r: r["peak_needed_bytes"] / MIB),
    ("cycles (10⁶)", lambda r: r["cycles"] / 1e6),
    ("best SRAM saving vs always-on (%)", lambda r: 100 * r["best_saving"]),
)


def _plot_against(rows: Sequence[dict[str, Any]], axis: str, path: Path) -> str:
    """Peak needed, cycles and best saving against ``axis``, one line per model: for each model, the points that
    vary ``axis`` over the most values with every other axis fixed (see :func:`_slice`). Returns the caption that
    says where the other axes were fixed."""
    figure = Figure(figsize=(14, 4))
    panels = figure.subplots(1, len(_PANELS))
    numeric = axis in _NUMERIC_AXES
    lines = {m: _slice(rows, axis, m) for m in dict.fromkeys(r["model"] for r in rows)}
    categories = list(dict.fromkeys(_shown(r[axis]) for points in lines.values() for r in points))
    for panel, (label, value) in zip(panels, _PANELS, strict=True):
        top = 0.0
        for model, points in lines.items():
            xs = [r[axis] if numeric else categories.index(_shown(r[axis])) for r in points]
            ys = [value(r) for r in points]
            panel.plot(xs, ys, marker="o", label=model)
            top = max([top, *ys])
        if numeric:
            values = sorted({r[axis] for points in lines.values() for r in points})
            if values and values[0] > 0:
                panel.set_xscale("log", base=2)
            panel.set_xticks(values, [_shown(v) for v in values])  # the swept values, as the table writes them
        else:
            panel.set_xticks(range(len(categories)), categories, rotation=15, fontsize=7)
        panel.set_ylim(0, 1.1 * top or 1)
        panel.set_xlabel(axis)
        panel.set_ylabel(label)
        panel.grid(alpha=0.3)
    panels[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    fixed = [
        f"{model}: " + (", ".join(f"{a}={_shown(points[0][a])}" for a in _others(rows, axis)) or "nothing else swept")
        for model, points in lines.items()
        if points
    ]
    return "The other axes, per model: " + ("; ".join(fixed) if fixed else "no point ran") + "."


def _others(rows: Sequence[dict[str, Any]], axis: str) -> list[str]:
    return [a for a in swept_axes(rows) if a != axis]


def _slice(rows: Sequence[dict[str, Any]], axis: str, model: str) -> list[dict[str, Any]]:
    """The points of ``model`` that ran, with every other swept axis at one value, along ``axis``: of the slices,
    the one that covers the most values of ``axis`` (the first in the sweep's order on a tie), sorted along it.
    Numeric axes leave out points where the axis has no value (the default)."""
    others = _others(rows, axis)
    slices: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        if r["model"] == model and r["skipped"] is None and (axis not in _NUMERIC_AXES or r[axis] is not None):
            slices.setdefault(tuple(r[a] for a in others), []).append(r)
    if not slices:
        return []
    best = max(slices.values(), key=lambda points: len({r[axis] for r in points}))
    return sorted(best, key=lambda r: r[axis]) if axis in _NUMERIC_AXES else best
