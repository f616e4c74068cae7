"""Fixed mappings: Stream accepts them, they cover every operator once on the right cores, and the committed ones are
exactly what scripts/make_mappings.py regenerates."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from stream.api import SolveOptions, evaluate_mapping
from stream.frontends import load_workload
from stream.workload.workload import ComputationNode

from stream_trapti.mappings import CONTRACTION_TYPES, build_mapping, dump_mapping, mapping_path_for, write_mapping
from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

ROOT = Path(__file__).resolve().parent.parent
DEFAULT = ROOT / "hardware" / "trapti_edge.yaml"
ARRAYS, VECTOR = {0, 1}, 2
# ONNX operators Stream folds into its tensors' access maps: they never become computation nodes (NOTES §3).
LAYOUT_ONLY = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze"}
# The two-layer GQA block takes ~35 s to solve (its K/V head repeats are FusionEdges: more groups), so it is slow.
TINY = [
    ("tiny-mha", "prefill", 64, 1),
    pytest.param(("tiny-gqa", "prefill", 64, 2), marks=pytest.mark.slow),
    ("tiny-gqa", "decode", 64, 1),
]


def _tiny(tmp_path: Path, model: str, phase: str, length: int, layers: int) -> Path:
    spec = WorkloadSpec(phase=phase, length=length, layers=layers)
    return write_workload(preset(model), spec, tmp_path / f"{model}_{phase}_{length}_{layers}.onnx")


@pytest.fixture(params=TINY, ids=lambda p: "-".join(map(str, p)))
def tiny_onnx(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return _tiny(tmp_path, *request.param)


def test_every_operator_is_mapped_once_on_its_core(tiny_onnx: Path) -> None:
    mapping = build_mapping(tiny_onnx, DEFAULT)
    nodes = {n.name: n for n in load_workload(str(tiny_onnx)).nodes if isinstance(n, ComputationNode)}
    names = [layer["name"] for layer in mapping["layers"]]
    assert sorted(names) == sorted(nodes)
    grouped = [name for group in mapping["fused_groups"] for name in group["layers"]]
    assert sorted(grouped) == sorted(nodes)

    onnx_nodes = onnx.load(str(tiny_onnx)).graph.node
    assert {n.op_type for n in onnx_nodes if n.name not in nodes} <= LAYOUT_ONLY
    for layer in mapping["layers"]:
        cores = set(layer["core_allocation"][0])
        if nodes[layer["name"]].type in CONTRACTION_TYPES:
            assert cores <= ARRAYS
            assert len(cores) == 1 or layer["inter_core_tiling"][0][0]["split"] == len(cores)
        else:
            assert cores == {VECTOR}
            assert layer["inter_core_tiling"] == []


def test_attention_core_is_one_group(tmp_path: Path) -> None:
    """Scores, softmax and context stay fused, so the score tiles never leave the chip."""
    mapping = build_mapping(_tiny(tmp_path, "tiny-mha", "prefill", 64, 1), DEFAULT)
    attention = ("layer0.attn.scores", "layer0.attn.softmax", "layer0.attn.context")
    assert any(set(attention) <= set(group["layers"]) for group in mapping["fused_groups"])


def test_stream_solves_the_fixed_mapping(tiny_onnx: Path, tmp_path: Path) -> None:
    mapping_yaml = write_mapping(tiny_onnx, DEFAULT, tmp_path / "mapping.yaml")
    estimate = evaluate_mapping(
        str(DEFAULT),
        str(tiny_onnx),
        str(tmp_path / "out"),
        mapping=str(mapping_yaml),
        options=SolveOptions(artifacts=False),
    )
    groups = len(build_mapping(tiny_onnx, DEFAULT)["fused_groups"])
    assert len(estimate.group_cycles) == groups
    assert estimate.cycles > 0


def test_build_is_deterministic(tmp_path: Path) -> None:
    onnx_path = _tiny(tmp_path, "tiny-gqa", "prefill", 64, 2)
    assert dump_mapping(build_mapping(onnx_path, DEFAULT)) == dump_mapping(build_mapping(onnx_path, DEFAULT))


# The committed mappings cover the one-layer blocks; whole models are solved by replicating a block (NOTES §2).
COMMITTED = sorted((ROOT / "inputs").glob("*_1layer.onnx"))


# Regenerating a long-prefill block runs Stream's capacity tiler for 5-30 s, so those are in the slow set.
REGENERATE = [
    pytest.param(p, marks=pytest.mark.slow) if "_prefill_L128_" not in p.name and "_prefill_" in p.name else p
    for p in COMMITTED
]


@pytest.mark.parametrize("onnx_path", REGENERATE, ids=lambda p: getattr(p, "stem", str(p)))
def test_committed_mapping_regenerates_byte_identical(onnx_path: Path) -> None:
    committed = mapping_path_for(onnx_path, ROOT / "mappings")
    assert committed.is_file(), f"{committed} missing: run scripts/make_mappings.py"
    assert dump_mapping(build_mapping(onnx_path, DEFAULT)) == committed.read_text()


def test_no_orphan_mappings() -> None:
    stems = {p.stem for p in COMMITTED}
    assert {p.stem for p in (ROOT / "mappings").glob("*.yaml")} <= stems


@pytest.mark.slow
@pytest.mark.parametrize("onnx_path", COMMITTED, ids=lambda p: p.stem)
def test_committed_mapping_solves(onnx_path: Path, tmp_path: Path) -> None:
    """Stream solves every committed full-size block mapping (about 2-30 s each)."""
    mapping_yaml = mapping_path_for(onnx_path, ROOT / "mappings")
    estimate = evaluate_mapping(
        str(DEFAULT),
        str(onnx_path),
        str(tmp_path / "out"),
        mapping=str(mapping_yaml),
        options=SolveOptions(artifacts=False),
    )
    assert estimate.cycles > 0
