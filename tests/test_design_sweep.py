"""Design sweeps (``stream-trapti sweep``): the YAML's points and errors, and a small sweep of the tiny MHA model run
serially, interrupted and resumed, then on Dask (a 2-worker LocalCluster, one of whose workers is killed mid-sweep,
and a scheduler and worker started as separate processes): every run writes the same bytes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from stream_trapti import dispatch
from stream_trapti.api import TraceOptions
from stream_trapti.cli import main
from stream_trapti.design_sweep import (
    DEFAULT_TEMPLATE,
    Point,
    load_design_sweep,
    parse_design_sweep,
    template_overrides,
)
from stream_trapti.dispatch import Cluster
from stream_trapti.errors import ConfigError
from stream_trapti.hardware_generator import load_template
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.reports.sweep_outputs import SCHEMA
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.study import measured_figures
from stream_trapti.sweep_run import dry_run, run_sweep

ROOT = Path(__file__).resolve().parent.parent
HARDWARE = ROOT / "hardware" / "trapti_edge.yaml"
OUTPUTS = ("results.parquet", "results.csv", "report.md", "against_prefill.png", "against_kv_residency.png")
STAGE2 = {"memory": "sram@core0", "banks": [1, 4], "timeouts_cycles": [100], "technology_nm": 45, "flavours": ["lstp"]}


def _sweep_yaml(directory: Path, output_dir: Path) -> Path:
    """Four tiny-MHA points of one solve each (two prefills, a decode streamed and resident; a point given twice is
    one) and one skipped."""
    (directory / "stage2.yaml").write_text(yaml.safe_dump(STAGE2))
    sweep = {
        "sweep_id": "tiny",
        "hardware": str(HARDWARE),
        "sram_sweep": str(directory / "stage2.yaml"),
        "output_dir": str(output_dir),
        "grids": [
            {"model": ["tiny-mha"], "prefill": [8, 16]},
            {"model": ["tiny-mha"], "decode_steps": [1], "decode_from": [16], "kv_residency": ["streamed", "resident"]},
        ],
        "points": [{"model": "tiny-mha", "prefill": 8}, {"model": "tiny-mha", "prefill": 4000}],
    }
    path = directory / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    return path


def _outputs(directory: Path) -> dict[str, bytes]:
    return {name: (directory / name).read_bytes() for name in OUTPUTS}


# --- the YAML -----------------------------------------------------------------------------------------------------


def test_grids_then_points_in_order_each_once() -> None:
    sweep = parse_design_sweep(
        {
            "sweep_id": "s",
            "hardware": "hw.yaml",
            "grids": [{"model": ["tiny-mha", "tiny-gqa"], "prefill": [8, 16], "kv_residency": ["streamed", "fit"]}],
            "points": [
                {"model": "tiny-gqa", "prefill": 8},
                {
                    "model": "tiny-mha",
                    "prefill": 0,
                    "decode_steps": 2,
                    "decode_from": 4,
                    "sram_mib": 2,
                    "kv_budget": 0.25,
                },
            ],
        }
    )
    points = sweep.expand()
    # 2 × 2 × 2 from the grid (model outermost, kv_residency innermost); the first explicit point repeats one of them.
    assert len(points) == 8 + 1
    assert [(p.model, p.prefill, p.kv_residency) for p in points[:3]] == [
        ("tiny-mha", 8, "streamed"),
        ("tiny-mha", 8, "fit"),
        ("tiny-mha", 16, "streamed"),
    ]
    # kv_budget is fit's: the default where fit runs, dropped elsewhere (so it does not tell points apart).
    assert points[1].kv_budget == 0.5 and points[0].kv_budget is None
    assert points[-1] == Point("tiny-mha", Path("hw.yaml"), 2.0, 0, 2, 4, "streamed", None)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"grids": [{"model": ["gpt-5"]}]}, "key 'grids[0].model[0]': expected a model preset"),
        ({"grids": [{"model": ["tiny-mha"], "prefill": 8}]}, "key 'grids[0].prefill': expected a list, got 8"),
        ({"points": [{"model": "tiny-mha", "prefil": 8}]}, "unknown key(s) ['points[0].prefil']"),
        ({"points": [{"model": "tiny-mha"}]}, "points[0]: prefill 0 and decode_steps 0 make an empty inference"),
        ({"points": [{"model": "tiny-mha", "decode_steps": 1}]}, "points[0]: decode steps without a prefill need"),
        ({"grids": [{"prefill": [8]}]}, "grids[0]: key 'model' is required"),
        ({}, "give at least one grid or point"),
        (
            {"grids": [{"model": ["tiny-mha"], "prefill": [8], "array": ["64"]}]},
            "key 'grids[0].array[0]': expected the rows x columns of a systolic array, such as '64x64', got '64'",
        ),
        (
            {"points": [{"model": "tiny-mha", "prefill": 8, "array": "32x32", "hardware": "x.yaml"}]},
            "points[0]: key 'hardware' names an accelerator file, but ['array'] generate one from the template",
        ),
        (
            {"grids": [{"model": ["tiny-mha"], "prefill": [8], "dram_gbps": [16, 20.5]}]},
            "grids[0]: key 'dram_gbps': 20.5 GB/s at the template's 1 GHz is 20.5 bytes per cycle; the DRAM port",
        ),
        ({"grids": [{"model": ["tiny-mha"], "prefill": [8], "fusion": ["block"]}]}, "key 'grids[0].fusion[0]'"),
    ],
)
def test_a_bad_sweep_is_one_line_naming_the_file_and_key(tmp_path: Path, data: dict, expected: str) -> None:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({"sweep_id": "s", "hardware": str(HARDWARE), **data}))
    with pytest.raises(ConfigError) as raised:
        load_design_sweep(path)
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and expected in message and "\n" not in message


def test_a_sweep_without_hardware_needs_generated_points(tmp_path: Path) -> None:
    """The top-level 'hardware' is the default of the file points only: a sweep of generated points may leave it out,
    and its array and DRAM axes set the template's keys exactly (GB/s × 8 / GHz bits per cycle)."""
    data = {"sweep_id": "s", "grids": [{"model": ["tiny-mha"], "prefill": [8], "array": ["32x16"]}]}
    sweep = parse_design_sweep({**data, "points": [{"model": "tiny-mha", "prefill": 8, "dram_gbps": 48}]})
    first, second = sweep.expand()
    assert first.hardware == second.hardware == DEFAULT_TEMPLATE and first.generated and second.generated
    template = load_template(DEFAULT_TEMPLATE)
    assert template_overrides(first, template) == {"arrays": {"rows": 32, "columns": 16}}
    assert template_overrides(second, template) == {"dram": {"port_bits": 384, "link_bits": 384}}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**data, "points": [{"model": "tiny-mha", "prefill": 8}]}))
    with pytest.raises(
        ConfigError, match=r"sweep.yaml: points\[0\]: no accelerator: give the top-level key 'hardware'"
    ):
        load_design_sweep(path)


def test_the_scheduler_is_checked_and_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="--scheduler: expected none, local or a Dask scheduler address"):
        Cluster("localhost:8786")
    with pytest.raises(ConfigError, match="--workers sizes the local cluster only"):
        Cluster("none", workers=2)
    monkeypatch.setenv(dispatch.SCHEDULER_ENV, "tcp://10.0.0.1:8786")
    assert Cluster.from_environment(None).scheduler == "tcp://10.0.0.1:8786"
    assert Cluster.from_environment("none").scheduler == "none"
    monkeypatch.delenv(dispatch.SCHEDULER_ENV)
    assert Cluster.from_environment(None) == Cluster("local")


def test_the_default_sweep_is_valid() -> None:
    sweep = load_design_sweep(ROOT / "inputs" / "design_sweep_default.yaml")
    points = sweep.expand()
    assert {p.model for p in points} == {"gpt2-xl", "deepseek-r1-distill-qwen-1.5b"}
    assert len(points) == len(set(points)) == 22


# --- a tiny sweep, run --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def serial(tmp_path_factory: pytest.TempPathFactory, cacti) -> Iterator[tuple[Path, dict[str, bytes]]]:
    """The tiny sweep run serially, interrupted after its first solve and resumed: its YAML and output bytes."""
    root = tmp_path_factory.mktemp("serial")
    path = _sweep_yaml(root, root / "out")
    sweep = load_design_sweep(path)
    options = TraceOptions(cache_dir=root / "solves")
    assert dry_run(sweep, options, progress=False).splitlines()[-1] == (
        "5 points (0 done, 1 skipped); 4 distinct solves, 0 cached, 4 to run"
    )
    real = dispatch.run_task
    calls = []

    def interrupted(task):
        calls.append(task.key)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(task)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dispatch, "run_task", interrupted)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep, Cluster("none"), options, progress=False)
    assert not sweep.directory.exists()
    # The first solve and the point it completed are kept: the rerun does the rest.
    assert dry_run(sweep, options, progress=False).splitlines()[-1] == (
        "5 points (1 done, 1 skipped); 4 distinct solves, 1 cached, 3 to run"
    )
    result = run_sweep(sweep, Cluster("none"), options, progress=False)
    assert (result.stats.cached_points, result.stats.cached_solves, len(result.stats.solve_seconds)) == (1, 1, 3)
    yield path, _outputs(sweep.directory)


def test_a_serial_sweep_writes_a_row_per_point_with_the_figures_of_its_trace(serial, tmp_path: Path) -> None:
    path, outputs = serial
    table = pq.read_table(Path(load_design_sweep(path).directory) / "results.parquet")
    assert table.schema == SCHEMA
    rows = table.to_pylist()
    assert [r["point"] for r in rows] == list(range(5))
    assert [(r["prefill"], r["decode_from"], r["kv_residency"]) for r in rows] == [
        (8, None, "streamed"),
        (16, None, "streamed"),
        (0, 16, "streamed"),
        (0, 16, "resident"),
        (4000, None, "streamed"),
    ]
    assert rows[4]["skipped"].startswith("WorkloadSpec.length: prefill attends to 4000 positions")
    assert rows[4]["cycles"] is None and rows[4]["solves"] == 0
    assert all(r["skipped"] is None and r["solves"] == 1 and r["layers"] == 2 for r in rows[:4])
    # A row holds what the same inference traced on its own gives.
    spec = SweepSpec(**STAGE2)
    alone = trace_inference(
        HARDWARE,
        "tiny-mha",
        Phases(0, 1, decode_from=16),
        kv_residency="resident",
        options=TraceOptions(cache_dir=tmp_path, progress=False),
    )
    figures = measured_figures(alone, spec)
    by_class = figures.pop("peak_needed_by_class")
    for key, value in figures.items():
        assert rows[3][key] == value, key
    assert rows[3]["peak_needed_kv_cache_bytes"] == by_class["kv_cache"]
    assert rows[3]["dram_kv_bytes"] == 0 < rows[2]["dram_kv_bytes"]
    assert rows[3]["dram_bytes"] == rows[2]["dram_bytes"] - rows[2]["dram_kv_bytes"]
    csv_lines = outputs["results.csv"].decode().splitlines()
    assert csv_lines[0].split(",") == SCHEMA.names and len(csv_lines) == 1 + 5
    report = outputs["report.md"].decode()
    assert f"| 3 | tiny-mha | 0 | 1 | 16 | resident | {rows[3]['cycles']:,} |" in report
    assert "| 4 | tiny-mha | 4000 | 0 | default | streamed | skipped: WorkloadSpec.length" in report


def test_a_rerun_solves_nothing_and_writes_the_same_bytes(serial, tmp_path: Path) -> None:
    path, outputs = serial
    sweep = load_design_sweep(path)
    options = TraceOptions(cache_dir=Path(path).parent / "solves")
    result = run_sweep(sweep, Cluster("none"), options, progress=False)
    assert (result.stats.cached_points, result.stats.solve_seconds) == (4, {})
    assert _outputs(sweep.directory) == outputs


@pytest.mark.slow
def test_two_local_workers_one_killed_mid_sweep_give_the_serial_bytes(serial, tmp_path: Path) -> None:
    from distributed import Client, LocalCluster

    path, outputs = serial
    sweep = load_design_sweep(path).model_copy(update={"output_dir": tmp_path / "out"})
    killed = []
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:

        def kill_a_busy_worker() -> None:
            with Client(cluster.scheduler_address) as client:
                deadline = time.monotonic() + 120
                while time.monotonic() < deadline:
                    busy = [worker for worker, tasks in client.processing().items() if tasks]
                    if busy:
                        pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                        return
                    time.sleep(0.05)

        killer = threading.Thread(target=kill_a_busy_worker)
        killer.start()
        result = run_sweep(sweep, Cluster(cluster.scheduler_address), TraceOptions(cache_dir=tmp_path), False)
        killer.join()
    assert killed and len(result.stats.solve_seconds) == 4
    assert _outputs(sweep.directory) == outputs


@pytest.mark.slow
def test_a_separately_started_scheduler_and_worker_give_the_serial_bytes(serial, tmp_path: Path) -> None:
    path, outputs = serial
    address_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "dask"]
    common = ["--no-dashboard", "--scheduler-file", str(address_file)]
    started = [subprocess.Popen([*dask, "scheduler", "--port", "0", *common])]
    try:
        started.append(subprocess.Popen([*dask, "worker", "--nworkers", "1", "--nthreads", "1", *common]))
        deadline = time.monotonic() + 60
        while not address_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(address_file.read_text())["address"]
        sweep = load_design_sweep(path).model_copy(update={"output_dir": tmp_path / "out"})
        result = run_sweep(sweep, Cluster.from_environment(address), TraceOptions(cache_dir=tmp_path), False)
    finally:
        for process in reversed(started):
            process.terminate()
            process.wait(timeout=30)
    assert len(result.stats.solve_seconds) == 4
    assert _outputs(sweep.directory) == outputs


def test_the_command_line_dry_run_lists_the_points(serial, capsys: pytest.CaptureFixture) -> None:
    path, _ = serial
    assert main(["sweep", str(path), "--scheduler", "none", "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "   0  tiny-mha trapti_edge.yaml prefill=8: 0 of 1 solves cached"
    assert out[-1] == "5 points (0 done, 1 skipped); 4 distinct solves, 0 cached, 4 to run"


# --- the array, DRAM and fusion axes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory, cacti) -> tuple[Path, TraceOptions, list[dict]]:
    """One decode step of the tiny MHA model on accelerators generated from the template: 32x32 and 64x64 arrays
    × 8 and 32 GB/s of DRAM, and the template's own arrays and 16 GB/s with the layer fused; run serially."""
    root = tmp_path_factory.mktemp("generated")
    (root / "stage2.yaml").write_text(yaml.safe_dump(STAGE2))
    decode = {"model": "tiny-mha", "decode_steps": 1, "decode_from": 16}
    data = {
        "sweep_id": "axes",
        "sram_sweep": str(root / "stage2.yaml"),
        "output_dir": str(root / "out"),
        "grids": [{**{k: [v] for k, v in decode.items()}, "array": ["32x32", "64x64"], "dram_gbps": [8, 32]}],
        "points": [{**decode, "dram_gbps": 16, "fusion": "layer"}],
    }
    sweep = parse_design_sweep(data)
    options = TraceOptions(cache_dir=root / "solves", progress=False)
    step = "tiny-mha template trapti_edge.yaml decode_steps=1 decode_from=16"
    assert dry_run(sweep, options, progress=False).splitlines() == [
        f"   0  {step} array=32x32 dram_gbps=8: 0 of 1 solves cached",
        f"   1  {step} array=32x32 dram_gbps=32: 0 of 1 solves cached",
        f"   2  {step} array=64x64 dram_gbps=8: 0 of 1 solves cached",
        f"   3  {step} array=64x64 dram_gbps=32: 0 of 1 solves cached",
        f"   4  {step} dram_gbps=16 fusion=layer: 0 of 1 solves cached",
        "5 points (0 done, 0 skipped); 5 distinct solves, 0 cached, 5 to run",
    ]
    result = run_sweep(sweep, Cluster("none"), options, progress=False)
    return sweep.directory, options, list(result.rows)


@pytest.mark.slow
def test_a_wider_dram_never_slows_a_decode_step_and_the_rows_say_what_ran(generated) -> None:
    directory, _, rows = generated
    assert [(r["array"], r["array_count"], r["dram_gbps"], r["fusion"]) for r in rows] == [
        ("32x32", 2, 8.0, "committed"),
        ("32x32", 2, 32.0, "committed"),
        ("64x64", 2, 8.0, "committed"),
        ("64x64", 2, 32.0, "committed"),
        ("64x64", 2, 16.0, "layer"),  # the template's arrays and bandwidth, resolved
    ]
    assert all(r["skipped"] is None and r["hardware"].startswith("template trapti_edge.yaml (sha256 ") for r in rows)
    # One decode step streams its weights and cache from DRAM: four times the bandwidth takes fewer cycles, and no
    # point moves more than its port's width (dram_gbps bytes per cycle at 1 GHz) over the DRAM in a cycle.
    for narrow, wide in ((rows[0], rows[1]), (rows[2], rows[3])):
        assert wide["cycles"] < narrow["cycles"]
    assert all(r["cycles"] >= r["dram_bytes"] / r["dram_gbps"] for r in rows)
    names = {path.name for path in directory.iterdir()}
    assert {"against_array.png", "against_dram_gbps.png", "against_fusion.png"} <= names
    report = (directory / "report.md").read_text()
    assert f"| 1 | tiny-mha | 32x32 | 32 | committed | {rows[1]['cycles']:,} |" in report


@pytest.mark.slow
def test_a_fusion_point_is_the_inference_traced_with_that_fusion(generated) -> None:
    """The layer-fused point on the template's own arrays and bandwidth is what trace_inference(fusion='layer') gives
    on the committed hardware (generated from the same template): the scope reached the solve, through the task a
    worker runs, and its key (a committed-schedule solve would have other cycles)."""
    _, options, rows = generated
    alone = trace_inference(HARDWARE, "tiny-mha", Phases(0, 1, decode_from=16), fusion="layer", options=options)
    figures = measured_figures(alone, SweepSpec(**STAGE2))
    figures.pop("peak_needed_by_class")
    for key, value in figures.items():
        assert rows[4][key] == value, key
    committed = trace_inference(HARDWARE, "tiny-mha", Phases(0, 1, decode_from=16), options=options)
    assert committed.stream.cycles != rows[4]["cycles"]
