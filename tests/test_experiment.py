"""The whole TRAPTI flow (Stage I and II, report) on the tiny presets: every output exists, parses and agrees."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from stream_trapti.atomic import OUTPUT_MARKER
from stream_trapti.cli import main
from stream_trapti.errors import ConfigError, InputFileError
from stream_trapti.experiment import load_experiment, parse_experiment, run_experiment
from stream_trapti.reports.console import print_summary
from stream_trapti.summary import SCHEMA_VERSION, ExperimentSummary
from stream_trapti.trace import OccupancyTrace

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def experiment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ExperimentSummary]:
    """The tiny experiment's directory and the summary its run returned."""
    root = tmp_path_factory.mktemp("experiment")
    sweep = root / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"banks": [1, 4, 16], "timeouts_cycles": [100], "technology_nm": 45}))
    spec = {
        "experiment_id": "tiny",
        "hardware": str(ROOT / "hardware" / "trapti_edge.yaml"),
        "models": ["tiny-mha", "tiny-gqa"],
        "prefill": 16,
        "decode_steps": 1,
        "layers": 2,
        "sweep": str(sweep),
        "output_dir": str(root / "outputs"),
    }
    (root / "tiny.yaml").write_text(yaml.safe_dump(spec))
    summary = run_experiment(load_experiment(root / "tiny.yaml"))
    return root / "outputs" / "tiny", summary


@pytest.fixture(scope="module")
def experiment_dir(experiment: tuple[Path, ExperimentSummary]) -> Path:
    return experiment[0]


def test_every_output_exists_and_parses(experiment_dir: Path) -> None:
    assert sorted(p.name for p in experiment_dir.iterdir()) == [
        OUTPUT_MARKER,
        "report.md",
        "summary.json",
        "tiny-gqa",
        "tiny-mha",
    ]
    for model in ("tiny-mha", "tiny-gqa"):
        trace_dir, sram_dir = experiment_dir / model / "trace", experiment_dir / model / "sram"
        OccupancyTrace.load(trace_dir / "trace.npz")
        json.loads((trace_dir / "trace.perfetto.json").read_text())
        json.loads((sram_dir / "exploration.json").read_text())
        assert (trace_dir / "trace.csv").read_text().startswith("cycle,")
        assert (sram_dir / "configs.csv").read_text().startswith("capacity_bytes,")
        for png in (trace_dir / "occupancy.png", sram_dir / "bank_heatmap.png", sram_dir / "pareto.png"):
            assert Image.open(png).size[0] > 0
    report = (experiment_dir / "report.md").read_text()
    for image in re.findall(r"!\[[^]]*\]\(([^)]+)\)", report):
        assert (experiment_dir / image).is_file(), image


def test_summary_figures_come_from_the_trace_and_the_exploration(experiment_dir: Path) -> None:
    summary = ExperimentSummary.load(experiment_dir / "summary.json")
    assert list(summary.workloads) == ["tiny-mha", "tiny-gqa"]
    for model, figures in summary.workloads.items():
        trace = OccupancyTrace.load(experiment_dir / model / "trace" / "trace.npz")
        m = trace.memory_index(figures.sram.memory)
        memory = figures.memory
        assert memory.name == trace.memories[m].name == "sram@core0"
        assert figures.trace.cycles == trace.cycles
        assert memory.peak_needed_bytes == trace.peak(m, "needed")[0]
        assert memory.peak_reserved_bytes == trace.peak(m, "reserved")[0]
        assert trace.metadata["steps"] == "prefill_L16,decode_P16"
        exploration = json.loads((experiment_dir / model / "sram" / "exploration.json").read_text())
        best = exploration["best"]["energy"]
        assert figures.sram.best_energy.total_pj == best["total_pj"]
        assert figures.sram.stream_estimate_pj == exploration["stream_estimate_pj"] > 0
        assert figures.sram.configurations == len(exploration["configs"]) == 3 * 4  # 3 bank counts × 4 policy rows
    assert "tiny-mha / tiny-gqa: peak needed" in (experiment_dir / "report.md").read_text()


def test_summary_json_round_trips(experiment: tuple[Path, ExperimentSummary]) -> None:
    directory, written = experiment
    text = (directory / "summary.json").read_text()
    assert json.loads(text)["schema_version"] == SCHEMA_VERSION
    loaded = ExperimentSummary.load(directory / "summary.json")
    assert loaded == written
    assert loaded.to_json() == text


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda s: s | {"schema_version": SCHEMA_VERSION + 1},
            f"schema version {SCHEMA_VERSION + 1}, expected {SCHEMA_VERSION}",
        ),
        (
            lambda s: {k: v for k, v in s.items() if k != "schema_version"},
            f"schema version None, expected {SCHEMA_VERSION}",
        ),
        (lambda s: s | {"experiment": {}}, r"\(experiment.experiment_id: Field required\)"),
        (lambda s: s | {"workloads": {"x": {"trace": 3}}}, r"\(workloads.x.trace: Input should be"),
    ],
)
def test_a_summary_of_another_version_or_shape_is_one_line_naming_it(
    experiment_dir: Path, tmp_path: Path, edit, message: str
) -> None:
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(edit(json.loads((experiment_dir / "summary.json").read_text()))))
    with pytest.raises(InputFileError, match=message) as error:
        ExperimentSummary.load(path)
    assert str(error.value).startswith(f"{path}: not the summary of a stream-trapti experiment")
    assert "\n" not in str(error.value)


def test_console_prints_the_swept_memory(
    experiment: tuple[Path, ExperimentSummary], capsys: pytest.CaptureFixture
) -> None:
    print_summary(experiment[1])
    out = capsys.readouterr().out
    assert "tiny-mha: " in out and "  sram@core0: peak reserved" in out and "best SRAM: " in out
    assert "tiny-mha / tiny-gqa: peak needed" in out


def test_report_command_rewrites_the_same_report(experiment_dir: Path) -> None:
    before = (experiment_dir / "report.md").read_text()
    (experiment_dir / "report.md").unlink()
    assert main(["report", str(experiment_dir)]) == 0
    assert (experiment_dir / "report.md").read_text() == before


def test_the_run_command_rewrites_the_same_directory_byte_for_byte(experiment_dir: Path) -> None:
    # The fixture ran the experiment through the API; the command line on the same YAML (solves and CACTI cached)
    # replaces the marked directory whole and gives the same bytes.
    before = {p.relative_to(experiment_dir): p.read_bytes() for p in experiment_dir.rglob("*.json")}
    assert main(["run", str(experiment_dir.parent.parent / "tiny.yaml")]) == 0
    after = {p.relative_to(experiment_dir): p.read_bytes() for p in experiment_dir.rglob("*.json")}
    assert after == before and len(before) >= 7


def test_default_experiment_is_valid() -> None:
    experiment = load_experiment(ROOT / "inputs" / "experiments" / "default.yaml")
    assert experiment.models == ("gpt2-xl", "deepseek-r1-distill-qwen-1.5b")


PRESETS = {"experiment_id": "x", "hardware": "h.yaml", "models": ["tiny-gqa"]}
ONNX = {"experiment_id": "x", "hardware": "h.yaml", "onnx": "block.onnx"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (PRESETS | {"prefil": 3}, r"exp.yaml: unknown key\(s\) \['prefil'\]; allowed keys are"),
        ({"hardware": "h.yaml", "models": ["tiny-gqa"]}, "exp.yaml: key 'experiment_id' is required"),
        ({"experiment_id": "x", "hardware": "h.yaml"}, "give exactly one of 'models' or 'onnx'.*got neither"),
        (PRESETS | {"onnx": "block.onnx"}, "give exactly one of 'models' or 'onnx'.*got both"),
        (PRESETS | {"prefill": -1}, "key 'prefill': expected a value greater than or equal to 1, got -1"),
        (PRESETS | {"prefill": 0}, "key 'prefill': expected a value greater than or equal to 1, got 0"),
        (PRESETS | {"decode_steps": "2"}, "key 'decode_steps': expected a valid integer, got '2'"),
        (PRESETS | {"layers": True}, "key 'layers': expected a valid integer, got True"),
        (PRESETS | {"layers": 3}, "key 'layers': tiny-gqa has 2 decoder layers, got 3"),
        (PRESETS | {"prefill": 2048, "decode_steps": 1}, "'decode_steps': tiny-gqa has 2048 positions"),
        (PRESETS | {"precision_bits": 12}, "key 'precision_bits': expected 8, 16 or 32, got 12"),
        (PRESETS | {"models": ["tiny-gqa", "tiny-gqa"]}, "key 'models': expected each entry once"),
        (PRESETS | {"models": "tiny-gqa"}, "key 'models': expected a list, got 'tiny-gqa'"),
        (PRESETS | {"models": ["gpt-5"]}, r"key 'models\[0\]': expected a model preset, one of \['gpt2-xl'"),
        (PRESETS | {"mapping": "m.yaml"}, "key 'mapping': applies to an 'onnx' workload only"),
        (ONNX | {"prefill": 16}, "key 'prefill': applies to model presets only"),
        (ONNX | {"decode_steps": 0}, "key 'decode_steps': applies to model presets only"),
        (ONNX | {"layers": None}, "key 'layers': applies to model presets only"),
        (ONNX | {"precision_bits": 8}, "key 'precision_bits': applies to model presets only"),
        (PRESETS | {"experiment_id": "."}, "key 'experiment_id': expected a plain name"),
        (PRESETS | {"experiment_id": "a/b"}, "key 'experiment_id': expected a plain name"),
        (PRESETS | {"experiment_id": 7}, "key 'experiment_id': expected a valid string, got 7"),
        (PRESETS | {"sweep": 3}, "key 'sweep': expected a path"),
        (["experiment_id"], "exp.yaml: expected a mapping of keys, got a list"),
    ],
)
def test_bad_experiments_are_rejected(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        parse_experiment(data, "exp.yaml")
    assert "\n" not in str(error.value)


def test_only_the_keys_that_apply_are_set() -> None:
    onnx = parse_experiment(ONNX | {"mapping": "m.yaml", "sweep": "s.yaml"})
    assert (onnx.onnx, onnx.mapping, onnx.models) == (Path("block.onnx"), Path("m.yaml"), ())
    presets = parse_experiment(PRESETS | {"prefill": 16, "decode_steps": 1, "layers": 2, "precision_bits": 16})
    assert (presets.prefill, presets.decode_steps, presets.layers, presets.precision_bits) == (16, 1, 2, 16)
    assert presets.directory == Path("outputs") / "x"


def test_main_script_reports_a_bad_experiment_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("experiment_id: x\nhardware: hardware/trapti_edge.yaml\nmodels: [gpt2-xl]\nprefil: 3\n")
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "main_trapti.py"), str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert run.returncode == 2
    assert run.stderr.startswith(f"main_trapti: error: {bad}: unknown key(s) ['prefil']")
    assert run.stderr.count("\n") == 1
