"""Bad experiment and sweep files fail at load time, or in the pre-flight before any Stream solve, with one line that
names the file and the key."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import yaml

from stream_trapti import experiment as experiment_module
from stream_trapti.errors import ConfigError
from stream_trapti.experiment import check_experiment, load_experiment, parse_experiment, run_experiment
from stream_trapti.sram.exploration import explore_trace
from stream_trapti.sram.sweep_config import MAX_CAPACITY_BYTES, check_sweep_memory, load_sweep_spec, parse_sweep_spec

from conftest import make_trace

ROOT = Path(__file__).resolve().parent.parent
HARDWARE = str(ROOT / "hardware" / "trapti_edge.yaml")


def write_yaml(path: Path, data: object) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def assert_one_line(error: pytest.ExceptionInfo[ConfigError], *parts: str) -> None:
    message = str(error.value)
    assert "\n" not in message
    for part in parts:
        assert part in message, (part, message)


@pytest.mark.parametrize(
    ("keys", "key"),
    [
        ({"output_dir": ["a", "b"]}, "key 'output_dir': expected a path"),
        ({"hardware": {"a": 1}}, "key 'hardware': expected a path"),
        ({"models": ["gpt-5"]}, "key 'models[0]': expected a model preset, one of ['gpt2-xl'"),
        ({"models": []}, "give exactly one of 'models' or 'onnx'"),
        ({"experiment_id": ".."}, "key 'experiment_id': expected a plain name"),
        ({"experiment_id": "../elsewhere"}, "key 'experiment_id': expected a plain name"),
        ({"precision_bits": 4}, "key 'precision_bits': expected 8, 16 or 32, got 4"),
        ({"kv_residency": "sometimes"}, "key 'kv_residency': expected 'streamed', 'resident' or 'fit'"),
        ({"kv_budget": 0.3}, "key 'kv_budget': applies to kv_residency: fit only"),
        ({"kv_residency": "fit", "kv_budget": 1.5}, "key 'kv_budget': "),
        ({"fusion": "everything"}, "key 'fusion': expected 'committed', 'operator', 'attention' or 'layer'"),
        ({"sram_capacities_mib": [0]}, "key 'sram_capacities_mib[0]': "),
        ({"sram_capacities_mib": [4, 4]}, "key 'sram_capacities_mib': "),
    ],
)
def test_bad_experiment_files_name_the_file_and_key(tmp_path: Path, keys: dict, key: str) -> None:
    path = write_yaml(
        tmp_path / "bad.yaml", {"experiment_id": "x", "hardware": HARDWARE, "models": ["tiny-gqa"]} | keys
    )
    with pytest.raises(ConfigError) as error:
        load_experiment(path)
    assert_one_line(error, f"{path}: ", key)


def test_a_mapping_is_not_a_fused_schedule(tmp_path: Path) -> None:
    keys = {"experiment_id": "x", "hardware": HARDWARE, "onnx": "a.onnx", "mapping": "m.yaml", "fusion": "layer"}
    path = write_yaml(tmp_path / "bad.yaml", keys)
    with pytest.raises(ConfigError) as error:
        load_experiment(path)
    assert_one_line(error, f"{path}: ", "key 'mapping': is the committed schedule; fusion 'layer' generates its own")


@pytest.mark.parametrize(
    ("keys", "key"),
    [
        ({"technology_nm": 28}, "key 'technology_nm': expected 22, 32, 45, 65 or 90, got 28"),
        ({"temperature_k": 365}, "key 'temperature_k': expected 300, 310"),
        ({"flavours": ["fast"]}, "key 'flavours[0]': expected 'hp', 'lstp', 'lop', 'hp/hp'"),
        ({"capacities_kib": [1_000_000_000_000]}, "key 'capacities_kib[0]': expected a capacity CACTI 7 can evaluate"),
        ({"capacities_bytes": [MAX_CAPACITY_BYTES + 1]}, "key 'capacities_bytes[0]'"),
        ({"memory": -1}, "key 'memory': expected a memory index"),
        ({"port_bits": 12}, "key 'port_bits': expected a multiple of 8 bits"),
    ],
)
def test_bad_sweep_files_name_the_file_and_key(tmp_path: Path, keys: dict, key: str) -> None:
    path = write_yaml(tmp_path / "sweep.yaml", keys)
    with pytest.raises(ConfigError) as error:
        load_sweep_spec(path)
    assert_one_line(error, f"{path}: ", key)


def test_lstp_cells_with_hp_periphery_are_a_flavour() -> None:
    assert parse_sweep_spec({"flavours": ["lstp/hp", "lop"]}).flavours == ("lstp/hp", "lop")


@pytest.mark.parametrize(
    ("sweep", "key"),
    [
        ({"memory": 7}, "key 'memory': expected an index below 1 or one of the on-chip memories ['sram@core0'], got 7"),
        ({"memory": "sram"}, "key 'memory'"),
        ({"capacities_bytes": [1000]}, "key 'capacities_kib' (or 'capacities_bytes')"),
        ({"capacities_kib": [64], "banks": [1, 64]}, "key 'banks': a 65536-byte SRAM does not split into 64"),
    ],
)
def test_preflight_checks_the_sweep_against_the_hardware(tmp_path: Path, sweep: dict, key: str) -> None:
    sweep_path = write_yaml(tmp_path / "sweep.yaml", sweep)
    experiment = parse_experiment(
        {"experiment_id": "x", "hardware": HARDWARE, "models": ["tiny-gqa"], "sweep": str(sweep_path)}
    )
    with pytest.raises(ConfigError) as error:
        check_experiment(experiment)
    assert_one_line(error, f"{sweep_path}: ", key)


def test_preflight_runs_before_any_solve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_solves(*args: object) -> None:
        raise AssertionError("Stage I started before the pre-flight checks")

    monkeypatch.setattr(experiment_module, "_traces", no_solves)
    sweep = write_yaml(tmp_path / "sweep.yaml", {"memory": "dram"})
    experiment = parse_experiment(
        {
            "experiment_id": "x",
            "hardware": HARDWARE,
            "models": ["tiny-gqa"],
            "sweep": str(sweep),
            "output_dir": str(tmp_path / "out"),
        }
    )
    with pytest.raises(ConfigError, match="key 'memory'"):
        run_experiment(experiment)
    assert not (tmp_path / "out").exists()


def test_default_sweep_fits_the_default_hardware() -> None:
    experiment = load_experiment(ROOT / "inputs" / "experiments" / "default.yaml")
    assert check_experiment(experiment) == load_sweep_spec(ROOT / "inputs" / "sweep_default.yaml")


def test_explore_checks_the_sweep_memory_before_any_cacti_run(tmp_path: Path) -> None:
    trace = make_trace([0, 10], [0, 4096], 20, 1 << 16)
    trace.save(tmp_path / "trace.npz")
    sweep = write_yaml(tmp_path / "sweep.yaml", {"memory": 3})
    with pytest.raises(ConfigError) as error:
        explore_trace(tmp_path / "trace.npz", sweep, tmp_path / "out")
    assert_one_line(error, f"{sweep}: key 'memory': expected an index below 1 or one of the on-chip memories ['sram']")
    assert check_sweep_memory(parse_sweep_spec({"memory": "sram"}), trace.memories, "s.yaml") == trace.memories[0]


def test_main_script_passes_only_the_keys_that_apply() -> None:
    spec = importlib.util.spec_from_file_location("main_trapti", ROOT / "scripts" / "main_trapti.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert parse_experiment(script.inputs()).models == tuple(script.models)
    script.onnx = "inputs/gpt2-xl_prefill_L128_1layer.onnx"
    assert set(script.inputs()) == {"experiment_id", "hardware", "onnx", "sweep"}
    assert parse_experiment(script.inputs()).onnx == Path(script.onnx)
