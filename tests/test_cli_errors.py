"""Bad input is one line on stderr naming the file and what was expected, with exit 2; Ctrl-C is one line and exit
130. None of these cases reaches a Stream solve, so they are quick."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from stream_trapti.cli import main

ROOT = Path(__file__).resolve().parent.parent
HARDWARE = ROOT / "hardware" / "trapti_edge.yaml"
ONNX = ROOT / "inputs" / "gpt2-xl_decode_P128_1layer.onnx"
MAPPING = ROOT / "mappings" / "gpt2-xl_decode_P128_1layer.yaml"
OTHER_MAPPING = ROOT / "mappings" / "deepseek-r1-distill-qwen-1.5b_decode_P128_1layer.yaml"


def _one_line_error(argv: list[str], capsys: pytest.CaptureFixture, *expected: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, err
    return err


def _trace(tmp_path: Path, hardware: Path = HARDWARE, onnx_path: Path = ONNX, *extra: str) -> list[str]:
    return ["trace", "--hardware", str(hardware), "--onnx", str(onnx_path), "--out", str(tmp_path / "o"), *extra]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "the file is empty"),
        ("name: [x\n", "cannot read it"),
        ("- a\n", "expected a mapping of keys, got a list"),
        ("name: x\ncores: {0: nope.yaml}\noffchip_core_id: 0\n", "Core with filename `nope.yaml` not found"),
    ],
)
def test_a_bad_hardware_yaml_is_named(tmp_path: Path, capsys: pytest.CaptureFixture, text: str, expected: str) -> None:
    hardware = tmp_path / "hw.yaml"
    hardware.write_text(text)
    _one_line_error(_trace(tmp_path, hardware), capsys, f"hardware YAML {hardware}", expected)
    assert not (tmp_path / "o").exists()


def test_a_zero_byte_onnx_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    _one_line_error(_trace(tmp_path, onnx_path=empty), capsys, f"workload ONNX {empty}", "no nodes")


def test_a_dynamic_dimension_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["seq", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["seq", 64])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu")], "g", [x], [y])
    path = tmp_path / "dynamic.onnx"
    onnx.save(helper.make_model(graph), path)
    _one_line_error(_trace(tmp_path, onnx_path=path), capsys, "tensor 'x' has dynamic dimension 'seq' at axis 0")


def test_a_mapping_for_another_workload_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = _trace(tmp_path, HARDWARE, ONNX, "--mapping", str(OTHER_MAPPING))
    _one_line_error(argv, capsys, f"mapping YAML {OTHER_MAPPING}", "is not a node of", "another workload")


def test_a_mapping_is_not_a_fused_schedule(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    argv = _trace(tmp_path, HARDWARE, ONNX, "--mapping", str(MAPPING), "--fusion", "layer")
    _one_line_error(argv, capsys, "a mapping YAML is the committed schedule; fusion 'layer' generates its own")


def test_a_malformed_mapping_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    mapping = tmp_path / "m.yaml"
    mapping.write_text("layers: [\n")
    _one_line_error(_trace(tmp_path, HARDWARE, ONNX, "--mapping", str(mapping)), capsys, f"mapping YAML {mapping}")


def test_options_that_do_not_apply_to_an_onnx_workload_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _one_line_error(_trace(tmp_path, HARDWARE, ONNX, "--prefill", "777"), capsys, "--prefill", "traced as given")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--model", "gpt3", "--prefill", "16"], "unknown model preset 'gpt3'"),
        (["--model", "tiny-gqa", "--prefill", "16", "--layers", "3"], "layers must be from 1 to tiny-gqa's depth 2"),
        (["--model", "gpt2-xl", "--prefill", "2048"], "max_positions=1024"),
        (["--model", "tiny-gqa"], "Phases is empty"),
    ],
)
def test_bad_model_options_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, argv: list[str], expected: str
) -> None:
    _one_line_error(["trace", "--hardware", str(HARDWARE), *argv, "--out", str(tmp_path / "o")], capsys, expected)


def test_report_on_a_truncated_summary_names_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "summary.json").write_text('{"experiment": {"experiment_id"')
    _one_line_error(["report", str(tmp_path)], capsys, f"{tmp_path / 'summary.json'}: not the summary")


def test_a_truncated_trace_is_named(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "trace.npz").write_bytes(b"PK\x03\x04 truncated")
    argv = ["explore", "--trace", str(tmp_path / "trace.npz"), "--out", str(tmp_path / "o")]
    _one_line_error(argv, capsys, f"trace {tmp_path / 'trace.npz'}: not a stream-trapti occupancy trace")


def test_ctrl_c_during_a_solve_is_one_line_and_exit_130(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    argv = ["trace", "--hardware", str(HARDWARE), "--model", "tiny-gqa", "--layers", "1", "--prefill", "16"]
    run = subprocess.Popen(
        [sys.executable, "-m", "stream_trapti.cli", *argv, "--out", str(tmp_path / "o")],
        env={**os.environ, "STREAM_TRAPTI_CACHE": str(cache)},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    # The scratch directory of the inference appears when the first solve starts; a cold tiny solve takes seconds.
    deadline = time.monotonic() + 60
    while not any((cache / "tmp").glob(".inference.*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=60)
    assert run.returncode == 130, err
    assert err.rstrip().splitlines()[-1] == "stream-trapti trace: interrupted"
    assert "Traceback" not in err
    assert not (tmp_path / "o").exists()
    assert list((cache / "tmp").iterdir()) == []


def test_first_fit_on_a_trace_file_names_the_sweep_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("allocator: first_fit\n")
    argv = ["explore", "--trace", str(tmp_path / "t.npz"), "--sweep", str(sweep), "--out", str(tmp_path / "o")]
    _one_line_error(argv, capsys, f"{sweep}: key 'allocator': 'first_fit' needs the tracker's per-tensor allocations")
