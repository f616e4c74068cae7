"""The roofline per group, on a real Stream solve of a tiny decoder: its MACs are the model's, its bounds are ones
Stream's schedule respects, and the table, CSV and plot say which bound every group is nearest."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

import pytest

from stream_trapti.api import TraceOptions
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.reports.report_md import _roofline_section
from stream_trapti.reports.roofline import BOUNDS, roofline_csv, roofline_figures, short_name, write_roofline
from stream_trapti.summary import RooflineFigures
from stream_trapti.workloads.analytics import mac_count
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

from conftest import DEFAULT_HARDWARE

ARRAY_PES = 64 * 64
"""PEs of one systolic array of hardware/trapti_edge.yaml (cores 0 and 1); the vector core (2) runs no MACs."""
DRAM_BYTES_PER_CYCLE = 128 // 8
"""hardware/cores/trapti_dram.yaml: one 128-bit port carries the DRAM's reads and writes."""


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory):
    """tiny-gqa, two decoder layers, prefill of 16 tokens, LM head over the last position: one solved layer."""
    work = tmp_path_factory.mktemp("roofline")
    return trace_inference(
        DEFAULT_HARDWARE, "tiny-gqa", Phases(16), layers=2, options=TraceOptions(progress=False), work_dir=work
    )


@pytest.fixture(scope="module")
def roofline(traced) -> RooflineFigures:
    return roofline_figures(traced.groups)


def test_macs_are_the_models_matrix_products(roofline: RooflineFigures) -> None:
    config = preset("tiny-gqa")
    spec = WorkloadSpec("prefill", 16, 2, 8, lm_head="last")
    assert roofline.macs == mac_count(config, spec)
    assert roofline.peak_macs_per_cycle == 2 * ARRAY_PES
    assert roofline.utilisation == pytest.approx(roofline.macs / (roofline.cycles * 2 * ARRAY_PES))


def test_rows_add_up_to_the_run_and_fold_the_layers(traced, roofline: RooflineFigures) -> None:
    assert roofline.cycles == traced.trace.cycles == sum(r.stream_cycles for r in roofline.rows)
    assert sum(r.count for r in roofline.rows) == len(traced.groups)
    layer_rows = [r for r in roofline.rows if "/layer*." in r.group]
    assert layer_rows and all(r.count == 2 for r in layer_rows)
    assert all(r.count == 1 for r in roofline.rows if r not in layer_rows)
    assert sum(r.dram_bytes for r in roofline.rows) == traced.stream.dram_total_bytes
    assert sum(roofline.cycles_by_bound.values()) == roofline.cycles


def test_stream_never_beats_a_bound_and_the_nearest_is_the_largest(roofline: RooflineFigures) -> None:
    for r in roofline.rows:
        bounds = {"compute": r.compute_cycles, "sram_port": r.sram_port_cycles, "dram": r.dram_cycles}
        assert r.stream_cycles >= max(bounds.values()), r.group
        assert bounds[r.bound] == max(bounds.values())
        assert r.slack == pytest.approx(r.stream_cycles / bounds[r.bound])
        # ZigZag's cycles for a core's nodes never beat that core's PEs.
        assert r.zigzag_cycles >= r.compute_cycles
    assert roofline.bound_cycles == sum(max(r.compute_cycles, r.sram_port_cycles, r.dram_cycles) for r in roofline.rows)


def test_compute_bound_of_a_projection_is_its_macs_over_both_arrays(roofline: RooflineFigures) -> None:
    # Projections are split evenly over the two arrays, and tiny-gqa's sizes divide the 4096 PEs of each.
    projections = [r for r in roofline.rows if r.cores == (0, 1)]
    assert projections
    for r in projections:
        assert r.compute_cycles == r.macs // (2 * ARRAY_PES), r.group


def test_dram_bound_is_the_bytes_over_one_port_for_reads_and_writes(roofline: RooflineFigures) -> None:
    # Stream's port bits and the tracker's DRAM bytes (memory_accesses, whole 128-bit words per transfer firing)
    # count the same traffic; rounding to words makes the tracker's at most a few percent larger.
    dram_cycles = sum(r.dram_cycles for r in roofline.rows)
    dram_bytes = sum(r.dram_bytes for r in roofline.rows)
    assert dram_bytes / DRAM_BYTES_PER_CYCLE == pytest.approx(dram_cycles, rel=0.02)


def test_table_csv_and_plot_name_every_groups_bound(roofline: RooflineFigures, tmp_path: Path) -> None:
    paths = write_roofline(roofline, tmp_path)
    assert [p.name for p in paths] == ["roofline.csv", "roofline.png"]
    assert paths[1].stat().st_size > 0
    rows = list(csv.DictReader(io.StringIO(roofline_csv(roofline).decode())))
    assert [r["group"] for r in rows] == [r.group for r in roofline.rows]
    assert all(r["bound"] in BOUNDS for r in rows)
    table = [line for line in _roofline_section("w", roofline) if line.startswith("| `")]
    assert len(table) == len(roofline.rows)
    labels = {"compute": "compute", "sram_port": "SRAM port", "dram": "DRAM"}
    for line, row in zip(table, roofline.rows, strict=True):
        assert f"`{short_name(row.group)}`" in line and f"| {labels[row.bound]} |" in line


def test_short_name_keeps_the_step_and_the_ends_of_a_fused_group() -> None:
    assert short_name("prefill_L16/layer*.a+layer*.b+layer*.c") == "prefill_L16/layer*.a … layer*.c"
    assert short_name("prefill_L16/layer*.a+layer*.b") == "prefill_L16/layer*.a + layer*.b"
    assert short_name("lm_head") == "lm_head"
    assert short_name("x" * 60, width=10) == "…" + "x" * 9


def test_decode_steps_fold_into_one_row_per_group(traced) -> None:
    # Two decode steps made from the solved prefill's groups: their rows fold as the layers' do, figures summed.
    steps = [replace(g, name=g.name.replace("prefill_L16/", f"decode_P{p}/")) for p in (16, 17) for g in traced.groups]
    once, twice = roofline_figures(traced.groups), roofline_figures(steps)
    assert [r.group.replace("prefill_L16/", "decode_P*/") for r in once.rows] == [r.group for r in twice.rows]
    for a, b in zip(once.rows, twice.rows, strict=True):
        assert (b.count, b.macs, b.stream_cycles, b.dram_cycles) == (
            2 * a.count,
            2 * a.macs,
            2 * a.stream_cycles,
            2 * a.dram_cycles,
        )
        assert b.bound == a.bound and b.slack == pytest.approx(a.slack)
