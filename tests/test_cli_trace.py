"""`stream-trapti trace` end to end on a small real solve: every output exists, parses and agrees with the trace."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import stream_trapti.tracker.solve as solve_module
from stream_trapti.api import TraceOptions, trace_workload
from stream_trapti.atomic import OUTPUT_MARKER
from stream_trapti.cli import main
from stream_trapti.trace import OccupancyTrace

from conftest import FUSEMAX


def test_trace_command_writes_every_output(mha_onnx: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["trace", "--hardware", str(FUSEMAX), "--onnx", str(mha_onnx), "--out", str(out), "--no-cache"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        OUTPUT_MARKER,
        "occupancy.png",
        "roofline.csv",
        "roofline.png",
        "summary.json",
        "trace.csv",
        "trace.npz",
        "trace.perfetto.json",
    ]
    trace = OccupancyTrace.load(out / "trace.npz")
    summary = json.loads((out / "summary.json").read_text())
    memory = summary["memories"][0]
    assert summary["cycles"] == summary["stream_cycles"] == trace.cycles
    assert memory["peak_needed_bytes"] == trace.peak(0, "needed")[0]
    assert memory["peak_reserved_bytes"] == trace.peak(0, "reserved")[0]
    assert memory["bytes_read"] == int(trace.access_totals()[0, 0])
    sources = memory["accesses"]
    assert set(sources) == {"transfer", "compute"}
    assert sources["transfer"]["bytes_read"] + sources["compute"]["bytes_read"] == memory["bytes_read"]
    assert sources["compute"]["writes"] == -(
        -sources["compute"]["bytes_written"] * 8 // trace.memories[0].write_port_bits
    )
    assert set(memory["stream_sram_energy_pj"]) == {"transfer", "compute"}
    perfetto = json.loads((out / "trace.perfetto.json").read_text())
    counters = [e for e in perfetto["traceEvents"] if e["ph"] == "C"]
    slices = [e for e in perfetto["traceEvents"] if e["ph"] == "X"]
    assert len(slices) == len(trace.groups)
    assert max(sum(e["args"].values()) for e in counters if "needed" in e["name"]) == trace.peak(0, "needed")[0]
    assert Image.open(out / "occupancy.png").size[0] > 0
    assert f"cycles: {trace.cycles:,}" in capsys.readouterr().out


def test_trace_command_reports_errors_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(
        ["trace", "--hardware", str(tmp_path / "none.yaml"), "--onnx", "x.onnx", "--out", str(tmp_path / "o")]
    )
    assert status == 2
    assert "hardware YAML" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_second_identical_trace_is_served_from_the_cache(
    mha_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    options = TraceOptions(cache_dir=tmp_path / "cache")
    first = trace_workload(FUSEMAX, mha_onnx, tmp_path / "s1", options=options)
    assert len(list((tmp_path / "cache" / "groups").iterdir())) == 1

    def no_solve(*args, **kwargs):
        raise AssertionError("the cached solve was solved again")

    monkeypatch.setattr(solve_module, "evaluate_mapping", no_solve)
    second = trace_workload(FUSEMAX, mha_onnx, tmp_path / "s2", options=options)
    assert second.trace == first.trace
    assert second.stream == first.stream
    np.testing.assert_array_equal(second.trace.occupancy, first.trace.occupancy)


def test_the_spelling_of_an_input_path_does_not_change_the_outputs(
    mha_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    spellings = {
        "absolute": (FUSEMAX, mha_onnx),
        "relative": (Path(os.path.relpath(FUSEMAX)), Path(os.path.relpath(mha_onnx))),
    }
    for name, (hardware, onnx) in spellings.items():
        assert main(["trace", "--hardware", str(hardware), "--onnx", str(onnx), "--out", name]) == 0
    for output in ("trace.npz", "summary.json", "trace.csv", "trace.perfetto.json"):
        assert (tmp_path / "absolute" / output).read_bytes() == (tmp_path / "relative" / output).read_bytes(), output
    metadata = OccupancyTrace.load(tmp_path / "absolute" / "trace.npz").metadata
    assert metadata["hardware"].startswith("fusemax.yaml (sha256 ")
    assert metadata["workload"].startswith("mha.onnx (sha256 ")
