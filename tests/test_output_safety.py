"""No command deletes or replaces anything it did not create: every refused output leaves a canary file in place and
exits 2 with one line, before any solve or CACTI run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from stream_trapti.atomic import OUTPUT_MARKER, atomic_directory, check_output_directory
from stream_trapti.cli import main
from stream_trapti.errors import OutputError
from stream_trapti.trace import MemoryInfo, OccupancyTrace

ROOT = Path(__file__).resolve().parent.parent
HARDWARE = ROOT / "hardware" / "trapti_edge.yaml"
CANARY = "canary.txt"


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The working directory of the run, with a canary file and a saved trace in ``data/``."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / CANARY).write_text("mine")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / CANARY).write_text("mine too")
    OccupancyTrace(
        cycles=10,
        memories=(MemoryInfo("sram", (0,), 4096, 128, 128),),
        times=np.array([0, 5]),
        occupancy=np.zeros((2, 1, 3, 2), dtype=np.int64),
        window=10,
        accesses=np.zeros((2, 2, 1, 1), dtype=np.int64),  # (sources, read/write, memories, windows)
    ).save(tmp_path / "data" / "trace.npz")
    return tmp_path


def _canaries_survive(root: Path) -> None:
    assert (root / CANARY).read_text() == "mine"
    assert (root / "data" / CANARY).read_text() == "mine too"
    assert (root / "data" / "trace.npz").is_file()


def _refused(argv: list[str], capsys: pytest.CaptureFixture, expected: str) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert expected in err, err


@pytest.mark.parametrize(
    ("out", "expected"),
    [
        (".", "is the working directory or one of its parents"),
        ("..", "is the working directory or one of its parents"),
        ("data", "holds data/trace.npz, an input of this run"),
    ],
)
def test_explore_refuses_outputs_it_would_destroy(
    workdir: Path, capsys: pytest.CaptureFixture, out: str, expected: str
) -> None:
    _refused(["explore", "--trace", "data/trace.npz", "--out", out], capsys, expected)
    _canaries_survive(workdir)


def test_trace_refuses_the_working_directory_before_solving(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["trace", "--hardware", str(HARDWARE), "--model", "tiny-gqa", "--layers", "1", "--prefill", "16"]
    _refused([*argv, "--out", "."], capsys, "is the working directory")
    _refused([*argv, "--out", "data"], capsys, "is not empty and was not written by stream-trapti")
    _canaries_survive(workdir)
    assert sorted(p.name for p in workdir.iterdir()) == [CANARY, "data"]


def test_an_unwritable_output_is_one_line_before_solving(workdir: Path, capsys: pytest.CaptureFixture) -> None:
    # /sys refuses new directories even to root, where a chmod'ed directory would not.
    argv = ["trace", "--hardware", str(HARDWARE), "--model", "tiny-gqa", "--layers", "1", "--prefill", "16"]
    _refused([*argv, "--out", "/sys/stream-trapti-out"], capsys, "cannot write output directory /sys/stream-trapti-out")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        (lambda here: {"experiment_id": ".."}, "experiment_id"),
        (lambda here: {"experiment_id": "."}, "experiment_id"),
        (lambda here: {"experiment_id": "a/b"}, "experiment_id"),
        (lambda here: {"experiment_id": "data", "output_dir": "."}, "not empty and was not written by stream-trapti"),
        (lambda here: {"experiment_id": here.name, "output_dir": str(here.parent)}, "is the working directory"),
        (lambda here: {"experiment_id": here.parent.name, "output_dir": str(here.parent.parent)}, "of its parents"),
        (lambda here: {"experiment_id": "hardware", "output_dir": str(ROOT)}, "an input of this run"),
    ],
)
def test_run_refuses_experiment_directories_it_would_destroy(
    workdir: Path, capsys: pytest.CaptureFixture, changes, expected: str
) -> None:
    experiment = {
        "experiment_id": "x",
        "hardware": str(HARDWARE),
        "models": ["tiny-gqa"],
        "prefill": 16,
        "layers": 1,
        "output_dir": "outputs",
        **changes(workdir),
    }
    (workdir / "exp.yaml").write_text(yaml.safe_dump(experiment))
    _refused(["run", "exp.yaml"], capsys, expected)
    _canaries_survive(workdir)
    assert HARDWARE.is_file()
    assert sorted(p.name for p in workdir.iterdir()) == [CANARY, "data", "exp.yaml"]


def test_a_marked_directory_is_replaced_whole_and_an_unmarked_one_never(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out) as staging:
        (staging / "a.txt").write_text("first")
    assert (out / OUTPUT_MARKER).is_file()
    with atomic_directory(out) as staging:
        (staging / "b.txt").write_text("second")
    assert sorted(p.name for p in out.iterdir()) == [OUTPUT_MARKER, "b.txt"]
    (out / OUTPUT_MARKER).unlink()
    with pytest.raises(OutputError, match="not written by stream-trapti"), atomic_directory(out):
        pass
    assert (out / "b.txt").read_text() == "second"
    # An empty directory (made by the user for us) is fine; nothing is left beside the output.
    (tmp_path / "empty").mkdir()
    with atomic_directory(tmp_path / "empty") as staging:
        (staging / "c.txt").write_text("third")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "out"]


def test_a_failed_run_leaves_the_previous_output_and_no_staging(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_directory(out) as staging:
        (staging / "a.txt").write_text("first")
    with pytest.raises(RuntimeError, match="halfway"), atomic_directory(out) as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("halfway")
    assert (out / "a.txt").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_file_in_the_way_is_refused(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OutputError, match="exists and is not a directory"):
        check_output_directory(tmp_path / "out")
