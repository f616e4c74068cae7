"""The roofline of a run, per fused group: its cycles against what its compute, its on-chip memory ports and its
off-chip memory port allow, as a table (``summary.json``, ``roofline.csv``) and a plot (``roofline.png``).

A group cannot take fewer cycles than any of three bounds:

* **compute**: its nodes on the busiest core at full use of that core's PEs, ZigZag's ideal cycles per node times
  the iterations it runs in (MACs over 64 × 64 PEs on an array, element operations over the vector core's lanes);
* **SRAM port**: the bits the busiest on-chip memory port carries, the transfers' and the nodes' own operand and
  partial-sum traffic, over its rate;
* **DRAM**: the bits through the off-chip memory's port over its rate (one 128-bit port for reads and writes on
  ``hardware/trapti_edge.yaml``).

The port bits are those of Stream's ``memory_ports`` report, whose family makes each steady-state iteration long
enough for them: they bound Stream's own schedule. The largest bound is the one nearest Stream's cycles and names
what binds the group. A whole inference repeats one solved layer per step: the same group of every layer and every
decode step is one row (``decode_P*/layer*.``), its figures summed, so the table has a row per group of the solved
layer (and of the LM head) per phase, however long the run.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

from stream_trapti.atomic import atomic_write
from stream_trapti.summary import Bound, RooflineFigures, RooflineRow
from stream_trapti.trace import LAYER_PREFIX, OFFCHIP

if TYPE_CHECKING:
    from stream_trapti.tracker.group import GroupOccupancy

BOUNDS: tuple[Bound, ...] = ("compute", "sram_port", "dram")
"""The bounds, in the order the roofline lists them (a tie goes to the first)."""

BOUND_LABELS = {"compute": "compute", "sram_port": "SRAM port", "dram": "DRAM"}
BOUND_COLOURS = {"compute": "#4c72b0", "sram_port": "#dd8452", "dram": "#55a868"}

_DECODE_STEP = re.compile(r"^decode_P\d+/")
"""A decode step's prefix of a group's name (:attr:`stream_trapti.inference.Step.label`)."""

_SUMMED = ("macs", "compute_cycles", "zigzag_cycles", "sram_port_cycles", "dram_bytes", "dram_cycles", "stream_cycles")


def roofline_figures(groups: Sequence[GroupOccupancy]) -> RooflineFigures:
    """The roofline of ``groups`` run back to back: a row per group, the same group of every decoder layer and every
    decode step in one."""
    rows: dict[str, dict] = {}
    peak: dict[int, int] = {}
    for g in groups:
        row = rows.setdefault(
            _DECODE_STEP.sub("decode_P*/", LAYER_PREFIX.sub("layer*.", g.name)),
            {
                "count": 0,
                "nodes": len(g.name.rpartition("/")[2].split("+")),
                "cores": set(),
                **dict.fromkeys(_SUMMED, 0),
            },
        )
        work = g.core_work
        row["count"] += 1
        row["cores"].update(int(c) for c in work[:, 0])
        row["macs"] += int(work[:, 2].sum())
        row["compute_cycles"] += int(work[:, 3].max(initial=0))
        row["zigzag_cycles"] += int(work[:, 4].max(initial=0))
        row["sram_port_cycles"] += _port_cycles(g, offchip=False)
        row["dram_cycles"] += _port_cycles(g, offchip=True)
        row["dram_bytes"] += int(g.dram_bytes.sum())
        row["stream_cycles"] += g.cycles
        peak.update((int(c), int(u)) for c, u, macs in work[:, :3] if macs > 0)
    figures = [_row(name, row) for name, row in rows.items()]
    macs = sum(r.macs for r in figures)
    cycles = sum(r.stream_cycles for r in figures)
    units = sum(peak.values())
    return RooflineFigures(
        rows=tuple(figures),
        macs=macs,
        cycles=cycles,
        peak_macs_per_cycle=units,
        utilisation=macs / (cycles * units) if cycles and units else None,
        bound_cycles=sum(_bound_cycles(r) for r in figures),
        cycles_by_bound={b: sum(r.stream_cycles for r in figures if r.bound == b) for b in BOUNDS},
    )


def _port_cycles(group: GroupOccupancy, offchip: bool) -> int:
    """The cycles the busiest of the group's on-chip (or off-chip) memory ports needs for its bits."""
    return max(
        (-(-round(bits) // round(rate)) for _, m, rate, bits in group.ports if (m == OFFCHIP) == offchip and rate),
        default=0,
    )


def _row(name: str, row: dict) -> RooflineRow:
    bounds = {"compute": row["compute_cycles"], "sram_port": row["sram_port_cycles"], "dram": row["dram_cycles"]}
    bound = max(BOUNDS, key=lambda b: bounds[b])
    return RooflineRow(
        group=name,
        count=row["count"],
        nodes=row["nodes"],
        cores=tuple(sorted(row["cores"])),
        **{key: row[key] for key in _SUMMED},
        bound=bound,
        slack=row["stream_cycles"] / bounds[bound] if bounds[bound] else None,
    )


def _bound_cycles(row: RooflineRow) -> int:
    return max(row.compute_cycles, row.sram_port_cycles, row.dram_cycles)


def short_name(group: str, width: int = 48) -> str:
    """A fused group's name for a table or a plot: its first and last node when it has more than two."""
    step, _, nodes = group.rpartition("/")
    parts = nodes.split("+")
    name = parts[0] if len(parts) == 1 else f"{parts[0]} … {parts[-1]}" if len(parts) > 2 else " + ".join(parts)
    name = f"{step}/{name}" if step else name
    return name if len(name) <= width else "…" + name[-(width - 1) :]


def roofline_csv(figures: RooflineFigures) -> bytes:
    """The rows as CSV, one per group, in run order."""
    out = io.StringIO()
    columns = list(RooflineRow.model_fields)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in figures.rows:
        values = row.model_dump()
        values["cores"] = " ".join(map(str, row.cores))
        values["slack"] = f"{row.slack:.4f}" if row.slack is not None else ""
        writer.writerow([values[c] for c in columns])
    return out.getvalue().encode()


def plot_roofline(figures: RooflineFigures, path: str | Path) -> Path:
    """Per group, Stream's cycles as a bar coloured by the bound nearest them, with the three bounds and ZigZag's cycles
    of the busiest core as markers (log scale): the gap between a bar and its furthest-right bound is what no bound
    explains, and a ZigZag marker far right of the compute bound is time the core itself loses."""
    rows = figures.rows
    figure = Figure(figsize=(11, 1.2 + 0.28 * max(len(rows), 1)))
    axis = figure.subplots()
    y = np.arange(len(rows))[::-1]
    axis.barh(
        y,
        [r.stream_cycles for r in rows],
        color=[BOUND_COLOURS[r.bound] for r in rows],
        alpha=0.45,
        label="Stream's cycles (colour: nearest bound)",
    )
    for label, colour, marker, key in (
        *((f"{BOUND_LABELS[b]} bound", BOUND_COLOURS[b], m, f"{b}_cycles") for b, m in zip(BOUNDS, "|xo", strict=True)),
        ("ZigZag, busiest core", "grey", "d", "zigzag_cycles"),
    ):
        values = np.array([getattr(r, key) for r in rows], dtype=float)
        keep = values > 0
        axis.scatter(values[keep], y[keep], marker=marker, color=colour, s=30, zorder=3, label=label)
    axis.set_yticks(y, [f"{short_name(r.group)}{f' ×{r.count}' if r.count > 1 else ''}" for r in rows], fontsize=7)
    axis.set_xscale("log")
    axis.set_xlabel("cycles (summed over the repeats of a group)")
    utilisation = f", MAC utilisation {figures.utilisation:.1%}" if figures.utilisation is not None else ""
    axis.set_title(f"roofline per group: {figures.cycles:,} cycles for {figures.macs:,} MACs{utilisation}", fontsize=9)
    axis.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return Path(path)


def write_roofline(figures: RooflineFigures, out_dir: str | Path) -> list[Path]:
    """Write ``roofline.csv`` and ``roofline.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    return [
        atomic_write(out_dir / "roofline.csv", roofline_csv(figures)),
        plot_roofline(figures, out_dir / "roofline.png"),
    ]
