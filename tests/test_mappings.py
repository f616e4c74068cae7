"""Fixed mappings: Stream accepts them, they cover every operator once on the right cores, and the committed ones are
exactly what scripts/make_mappings.py regenerates."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnx
import pytest
from stream.api import SolveOptions, evaluate_mapping
from stream.frontends import load_workload
from stream.parser.onnx.layout import LAYOUT_OPS
from stream.workload.workload import ComputationNode

from stream_trapti.mappings import CONTRACTION_TYPES, build_mapping, dump_mapping, mapping_path_for

from conftest import DEFAULT_HARDWARE as DEFAULT

ROOT = Path(__file__).resolve().parent.parent
ARRAYS, VECTOR = {0, 1}, 2
Block = tuple[str, str, int, int]
"""A tiny workload: (preset, phase, length, layers), the arguments of the tiny_block and tiny_mapping fixtures."""
# The two-layer GQA block takes ~35 s to solve, so it is slow.
TINY = [
    ("tiny-mha", "prefill", 64, 1),
    pytest.param(("tiny-gqa", "prefill", 64, 2), marks=pytest.mark.slow),
    ("tiny-gqa", "decode", 64, 1),
]


@pytest.fixture(params=TINY, ids=lambda p: "-".join(map(str, p)))
def tiny(request: pytest.FixtureRequest) -> Block:
    return request.param


def test_every_operator_is_mapped_once_on_its_core(
    tiny: Block, tiny_block: Callable[..., Path], tiny_mapping: Callable[..., dict[str, Any]]
) -> None:
    tiny_onnx, mapping = tiny_block(*tiny), tiny_mapping(*tiny)
    nodes = {n.name: n for n in load_workload(str(tiny_onnx)).nodes if isinstance(n, ComputationNode)}
    names = [layer["name"] for layer in mapping["layers"]]
    assert sorted(names) == sorted(nodes)
    grouped = [name for group in mapping["fused_groups"] for name in group["layers"]]
    assert sorted(grouped) == sorted(nodes)

    # The ONNX nodes that are not computation nodes are layout operators, which Stream folds into the access maps of
    # their readers (stream/parser/onnx/layout.py).
    onnx_nodes = onnx.load(str(tiny_onnx)).graph.node
    assert {n.op_type for n in onnx_nodes if n.name not in nodes} <= LAYOUT_OPS
    for layer in mapping["layers"]:
        cores = set(layer["core_allocation"][0])
        if nodes[layer["name"]].type in CONTRACTION_TYPES:
            assert cores <= ARRAYS
            assert len(cores) == 1 or layer["inter_core_tiling"][0][0]["split"] == len(cores)
        else:
            assert cores == {VECTOR}
            assert layer["inter_core_tiling"] == []


def test_attention_core_is_one_group(tiny_mapping: Callable[..., dict[str, Any]]) -> None:
    """Scores, softmax and context stay fused, so the score tiles never leave the chip."""
    mapping = tiny_mapping("tiny-mha", "prefill", 64, 1)
    attention = ("layer0.attn.scores", "layer0.attn.softmax", "layer0.attn.context")
    assert any(set(attention) <= set(group["layers"]) for group in mapping["fused_groups"])


# Cycles of the tiny blocks with their fixed mappings on the default hardware: regression values from a run of
# Stream 2.1.1 (evaluate_mapping, SolveOptions(artifacts=False)). Every allocation solve ends far inside Stream's
# 300 s limit (after which it would take its best incumbent), so the figures do not depend on the machine's speed.
TINY_FIXED_CYCLES = {
    ("tiny-mha", "prefill", 64, 1): 12_121,
    ("tiny-gqa", "prefill", 64, 2): 45_526,
    ("tiny-gqa", "decode", 64, 1): 4_973,
}


def test_stream_solves_the_fixed_mapping(
    tiny: Block,
    tiny_block: Callable[..., Path],
    tiny_mapping: Callable[..., dict[str, Any]],
    tmp_path: Path,
) -> None:
    mapping = tiny_mapping(*tiny)
    mapping_yaml = tmp_path / "mapping.yaml"
    mapping_yaml.write_text(dump_mapping(mapping))
    estimate = evaluate_mapping(
        str(DEFAULT),
        str(tiny_block(*tiny)),
        str(tmp_path / "out"),
        mapping=str(mapping_yaml),
        options=SolveOptions(artifacts=False),
    )
    assert len(estimate.group_cycles) == len(mapping["fused_groups"])
    assert estimate.cycles == TINY_FIXED_CYCLES[tiny]


def test_build_is_deterministic(tiny_block: Callable[..., Path], tiny_mapping: Callable[..., dict[str, Any]]) -> None:
    """A second build of the two-layer GQA block (the session's shared one is the first) gives the same YAML."""
    block = ("tiny-gqa", "prefill", 64, 2)
    assert dump_mapping(build_mapping(tiny_block(*block), DEFAULT)) == dump_mapping(tiny_mapping(*block))


# The committed mappings cover the one-layer blocks; whole models are solved by repeating a block's layer groups
# (stream_trapti.inference.repeat_layers).
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


# Cycles of the committed blocks with their committed mappings on the default hardware: regression values from a run
# of Stream 2.1.1, as TINY_FIXED_CYCLES (the README's "fixed mapping" column lists six of them).
COMMITTED_CYCLES = {
    "deepseek-r1-distill-qwen-1.5b_decode_P1024_1layer": 3_008_034,
    "deepseek-r1-distill-qwen-1.5b_decode_P128_1layer": 2_965_404,
    "deepseek-r1-distill-qwen-1.5b_prefill_L1024_1layer": 116_736_575,
    "deepseek-r1-distill-qwen-1.5b_prefill_L128_1layer": 8_748_830,
    "deepseek-r1-distill-qwen-1.5b_prefill_L512_1layer": 42_920_392,
    "gpt2-xl_decode_P1023_1layer": 2_231_205,
    "gpt2-xl_decode_P128_1layer": 2_064_882,
    "gpt2-xl_prefill_L1024_1layer": 40_290_493,
    "gpt2-xl_prefill_L128_1layer": 5_506_447,
    "gpt2-xl_prefill_L512_1layer": 19_662_642,
}


def test_every_committed_block_has_its_cycles() -> None:
    assert sorted(COMMITTED_CYCLES) == [p.stem for p in COMMITTED]


@pytest.mark.slow
@pytest.mark.parametrize("onnx_path", COMMITTED, ids=lambda p: p.stem)
def test_committed_mapping_solves(onnx_path: Path, tmp_path: Path) -> None:
    """Stream solves every committed full-size block mapping (about 2-50 s each) to the cycles it gave before."""
    mapping_yaml = mapping_path_for(onnx_path, ROOT / "mappings")
    estimate = evaluate_mapping(
        str(DEFAULT),
        str(onnx_path),
        str(tmp_path / "out"),
        mapping=str(mapping_yaml),
        options=SolveOptions(artifacts=False),
    )
    assert estimate.cycles == COMMITTED_CYCLES[onnx_path.stem]
