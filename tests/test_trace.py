"""The OccupancyTrace type: queries, formats and validation, on traces whose answers are worked out by hand."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from stream_trapti.errors import InputFileError
from stream_trapti.trace import MemoryInfo, OccupancyTrace


@pytest.fixture
def trace() -> OccupancyTrace:
    """One 1000-byte memory over 50 cycles. Reserved weights: 100 on [0,25), 300 on [25,40), 0 after.
    Needed activations: 50 on [0,10), 80 on [10,25), 200 on [25,40), 0 after."""
    occupancy = np.zeros((2, 1, 3, 4), dtype=np.int64)
    occupancy[0, 0, 0] = [100, 100, 300, 0]
    occupancy[1, 0, 1] = [50, 80, 200, 0]
    accesses = np.zeros((2, 2, 1, 5), dtype=np.int64)  # (source, read/write, memory, window)
    accesses[0, 0, 0] = [64, 0, 128, 0, 0]
    accesses[0, 1, 0] = [0, 32, 0, 0, 16]
    accesses[1, 0, 0] = [0, 0, 0, 256, 0]
    accesses[1, 1, 0] = [0, 0, 0, 0, 8]
    return OccupancyTrace(
        cycles=50,
        memories=(MemoryInfo("sram@core0", (0, 1), 1000, 128, 128),),
        times=np.array([0, 10, 25, 40]),
        occupancy=occupancy,
        window=10,
        accesses=accesses,
        metadata={"model": "hand-made"},
    )


def test_value_peak_and_time_above(trace: OccupancyTrace) -> None:
    assert trace.value_at(0, 24) == 80
    assert trace.value_at("sram@core0", 25, "reserved") == 300
    assert trace.value_at(0, 49, "reserved") == 0
    assert trace.peak(0, "reserved") == (300, 25)
    assert trace.peak(0, "needed") == (200, 25)
    assert trace.peak(0, "needed", "weight") == (0, 0)
    assert trace.time_above(0, 60) == 30  # 80 on [10,25) and 200 on [25,40)
    assert trace.time_above(0, 100, "reserved") == 15


def test_histogram_is_weighted_by_duration(trace: OccupancyTrace) -> None:
    counts, edges = trace.histogram(0, bins=4)
    np.testing.assert_array_equal(edges, [0, 250, 500, 750, 1000])
    assert counts.tolist() == [50, 0, 0, 0]
    counts, _ = trace.histogram(0, bins=[0, 60, 150, 1000])
    assert counts.tolist() == [10 + 10, 15, 15]  # 50 and 0; 80; 200


def test_resample_max_and_mean(trace: OccupancyTrace) -> None:
    assert trace.resample(10, 0).tolist() == [50, 80, 200, 200, 0]
    assert trace.resample(10, 0, how="mean").tolist() == [50, 80, 140, 200, 0]
    assert trace.resample(50, 0, "reserved").tolist() == [300]
    with pytest.raises(ValueError, match="'max' or 'mean'"):
        trace.resample(10, 0, how="median")


def test_access_totals(trace: OccupancyTrace) -> None:
    assert trace.access_totals("transfer").tolist() == [[192, 48]]
    assert trace.access_totals("compute").tolist() == [[256, 8]]
    assert trace.access_totals().tolist() == [[192 + 256, 48 + 8]]
    with pytest.raises(ValueError, match="unknown access source"):
        trace.access_totals("dma")


def test_save_load_is_exact_and_reproducible(trace: OccupancyTrace, tmp_path: Path) -> None:
    first = trace.save(tmp_path / "a.npz")
    second = trace.save(tmp_path / "b.npz")
    assert first.read_bytes() == second.read_bytes()
    assert OccupancyTrace.load(first) == trace


def test_file_is_readable_without_this_package(trace: OccupancyTrace, tmp_path: Path) -> None:
    path = trace.save(tmp_path / "t.npz")
    arrays = np.load(path)
    np.testing.assert_array_equal(arrays["times"], [0, 10, 25, 40])
    meta = json.loads(zipfile.ZipFile(path).read("meta.json"))
    assert meta["cycles"] == 50 and meta["classes"] == ["weight", "activation", "kv_cache"]


def test_csv_has_one_row_per_change_point(trace: OccupancyTrace, tmp_path: Path) -> None:
    lines = trace.to_csv(tmp_path / "t.csv").read_text().splitlines()
    assert lines[0].startswith("cycle,sram@core0.reserved.weight,")
    assert len(lines) == 1 + 4
    assert lines[3].split(",")[:2] == ["25", "300"]


def test_load_rejects_other_files(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.npz"
    bogus.write_text("not a zip")
    with pytest.raises(InputFileError, match="bogus.npz: not a stream-trapti occupancy trace"):
        OccupancyTrace.load(bogus)


def test_shape_validation(trace: OccupancyTrace) -> None:
    with pytest.raises(ValueError, match="times must start at 0"):
        OccupancyTrace(50, trace.memories, np.array([1, 10]), trace.occupancy[..., :2], 10, trace.accesses)
    with pytest.raises(ValueError, match="occupancy has shape"):
        OccupancyTrace(50, trace.memories, trace.times, trace.occupancy[..., :3], 10, trace.accesses)
    with pytest.raises(ValueError, match="accesses has shape"):
        OccupancyTrace(50, trace.memories, trace.times, trace.occupancy, 10, trace.accesses.sum(axis=0))
    with pytest.raises(ValueError, match="unknown view"):
        trace.series(0, "live")  # type: ignore[arg-type]
    with pytest.raises(KeyError, match="no memory named"):
        trace.series("dram")
