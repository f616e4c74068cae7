"""The cache-like layer peak (stream_trapti.workloads.layer_peak) against hand derivations from the tensor sizes of
the tiny presets, and scripts/main_paper_ratio.py end to end. Shape-only graphs: no Stream solve."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from pathlib import Path

import onnx
import pytest

from stream_trapti.workloads.analytics import tensor_shapes
from stream_trapti.workloads.builder import build_model
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.layer_peak import LAYOUT_OPS, layer_peak
from stream_trapti.workloads.spec import WorkloadSpec

ROOT = Path(__file__).resolve().parent.parent


def prefill(model: str, length: int, precision_bits: int = 8, **changes: object) -> onnx.ModelProto:
    config = dataclasses.replace(preset(model), **changes)
    return build_model(config, WorkloadSpec("prefill", length, 1, precision_bits=precision_bits))


def test_weights_set_the_peak_of_a_short_prompt():
    # tiny-mha, S = 8: the largest tensors are the MLP weights (64×256 each); while up_proj runs the cache holds its
    # weight, its input (the norm's output), its output and the residual stream the MLP's end adds back.
    s, hidden, inter = 8, 64, 256
    peak = layer_peak(prefill("tiny-mha", s))
    assert peak.peak_node == "layer0.mlp.up_proj"
    assert peak.peak_bytes == hidden * inter + s * (hidden + inter + hidden)
    assert peak.live_at("layer0.mlp.up_proj") == {
        "layer0.mlp.up_proj.weight": hidden * inter,
        "layer0.mlp_norm.out": s * hidden,
        "layer0.mlp.up_proj.out": s * inter,
        "layer0.attn_residual.out": s * hidden,
    }


def test_scores_set_the_peak_of_a_long_prompt_and_views_count_once():
    # tiny-mha, S = 256: while the scale runs, the scores and the scaled scores (4 heads × S × S each) are resident
    # with the layer's input (read again by the residual Add), V (read by the context MatMul, through two views)
    # and the one-element scale. K and Q were last read by the scores MatMul.
    s, heads, hidden = 256, 4, 64
    peak = layer_peak(prefill("tiny-mha", s))
    assert peak.peak_node == "layer0.attn.scale"
    assert peak.peak_bytes == 2 * heads * s * s + s * hidden + s * hidden + 1
    assert set(peak.live_at("layer0.attn.scale")) == {
        "layer0.attn.scores.out",
        "layer0.attn.scale.out",
        "hidden_states",
        "layer0.attn.v_cache",
        "const.attn_scale",
    }


def test_views_and_index_arguments_are_not_counted():
    model = prefill("tiny-gqa", 16)
    views = {node.output[0] for node in model.graph.node if node.op_type in LAYOUT_OPS}
    indices = {i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT64}
    counted = set(layer_peak(model).lifetimes)
    assert views and indices
    assert not counted & (views | indices)


@pytest.mark.parametrize("precision_bits", [8, 16])
def test_the_element_width_scales_every_tensor(precision_bits: int):
    narrow, wide = layer_peak(prefill("tiny-gqa", 32)), layer_peak(prefill("tiny-gqa", 32, precision_bits))
    width = precision_bits // 8
    assert wide.live_bytes == tuple(width * b for b in narrow.live_bytes)


def test_the_builder_keeps_one_score_matrix_per_query_head_under_gqa():
    # Broadcasting K/V over the query group still scores every query head: [groups, kv_heads, S, S].
    s, config = 16, preset("tiny-gqa")
    inferred = onnx.shape_inference.infer_shapes(prefill("tiny-gqa", s), strict_mode=True)
    assert tensor_shapes(inferred)["layer0.attn.scores.out"] == (config.groups, config.kv_heads, s, s)


@pytest.mark.parametrize("precision_bits", [8, 16])
def test_one_score_tensor_removes_heads_minus_one_matrices_from_each_resident_score_tensor(precision_bits: int):
    s, heads, width = 64, preset("tiny-gqa").heads, precision_bits // 8
    model = prefill("tiny-gqa", s, precision_bits)
    exact, shared = layer_peak(model), layer_peak(model, one_score_tensor=True)
    saved = {node: e - o for node, e, o in zip(exact.nodes, exact.live_bytes, shared.live_bytes, strict=True)}
    matrix = (heads - 1) * s * s * width
    # Score tensors resident at each node: the scores; scores and scaled; scaled and probabilities; probabilities.
    resident = {"layer0.attn.scores": 1, "layer0.attn.scale": 2, "layer0.attn.softmax": 2, "layer0.attn.context": 1}
    assert saved == {node: resident.get(node, 0) * matrix for node in exact.nodes}


def test_a_two_matrix_ffn_drops_the_resident_gate_activation():
    # tiny-gqa, S = 8, weights dominate: SwiGLU's up_proj runs while the gate's activation (S × intermediate) waits
    # for the product; the two-matrix FFN's up_proj holds the same but that activation.
    s, hidden, inter = 8, 64, 176
    swiglu, two = layer_peak(prefill("tiny-gqa", s)), layer_peak(prefill("tiny-gqa", s, mlp="gelu"))
    assert swiglu.peak_node == two.peak_node == "layer0.mlp.up_proj"
    assert two.peak_bytes == hidden * inter + s * (hidden + inter + hidden)
    assert swiglu.peak_bytes - two.peak_bytes == s * inter


def test_paper_ratio_script_writes_the_table_it_prints(tmp_path: Path):
    out = tmp_path / "ratio" / "paper_ratio.md"
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/main_paper_ratio.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    text = out.read_text()
    assert text in run.stdout
    rows = [line.split(" | ") for line in text.splitlines() if re.match(r"\| (exact|\()", line)]
    # (a) and (b) on and off at three equal lengths, and at (c)'s lengths.
    assert len(rows) == 16
    labels = [row[0].removeprefix("| ") for row in rows]
    assert labels[:4] == ["exact", "(a)", "(b)", "(a) + (b)"]
    assert labels[-1] == "(a) + (b) + (c)"
    for row in rows:
        mha, gqa, ratio = float(row[3]), float(row[5]), float(row[7].strip("*| "))
        assert ratio == pytest.approx(mha / gqa, abs=0.01)
    assert set(tmp_path.rglob("*")) == {out.parent, out}


def test_paper_ratio_script_refuses_a_directory_in_one_line(tmp_path: Path):
    canary = tmp_path / "canary.txt"
    canary.write_text("keep")
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts/main_paper_ratio.py"), "--out", "."],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "is a directory" in run.stderr and "Traceback" not in run.stderr
    assert canary.read_text() == "keep" and sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt"]
