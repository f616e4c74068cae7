"""The TRAPTI-style hardware YAMLs: they parse, share one SRAM of the stated size, and decoder blocks solve on them."""

from __future__ import annotations

from pathlib import Path

import pytest
from stream.api import SolveOptions, evaluate_mapping
from stream.stages.parsing.accelerator_parser import parse_accelerator

from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

HARDWARE = Path(__file__).resolve().parent.parent / "hardware"
DEFAULT = HARDWARE / "trapti_edge.yaml"
MIB = 8 * 2**20  # bits
# Accelerator file -> the shared SRAM capacity its header states.
SRAM_BITS = {"trapti_edge.yaml": 4 * MIB, "trapti_edge_2mib.yaml": 2 * MIB, "trapti_edge_8mib.yaml": 8 * MIB}
ARRAYS, VECTOR, DRAM = (0, 1), 2, 3


def test_every_accelerator_file_is_listed() -> None:
    assert sorted(p.name for p in HARDWARE.glob("*.yaml")) == sorted(SRAM_BITS)


@pytest.mark.parametrize("name", sorted(SRAM_BITS))
def test_shared_sram_is_one_instance_of_the_stated_size(name: str) -> None:
    accelerator = parse_accelerator(str(HARDWARE / name))
    compute = [accelerator.get_core(i) for i in (*ARRAYS, VECTOR)]
    owners = {accelerator.memory_of(core).id for core in compute}
    assert len(owners) == 1, f"compute cores resolve to several top-level memories: {owners}"
    owner = accelerator.get_core(owners.pop())
    assert owner.get_memory_capacity() == SRAM_BITS[name]
    assert all(core.get_memory_capacity() == SRAM_BITS[name] for core in compute)
    assert accelerator.offchip_core_id == DRAM


@pytest.mark.parametrize("name", sorted(SRAM_BITS))
def test_cores_have_the_stated_roles(name: str) -> None:
    accelerator = parse_accelerator(str(HARDWARE / name))
    for i in ARRAYS:
        array = accelerator.get_core(i)
        assert array.operational_array.total_unit_count == 64 * 64
        assert "MatMul" in array.operator_types and "Softmax" not in array.operator_types
    vector = accelerator.get_core(VECTOR)
    needed = {"LayerNormalization", "Softmax", "Gelu", "Silu", "Pow", "ReduceMean", "Mul", "Add", "Sub", "Div", "Slice"}
    assert needed <= set(vector.operator_types)
    assert "MatMul" not in vector.operator_types


def test_larger_sram_costs_more_per_access() -> None:
    """The CACTI energies grow with capacity, so the three files were not copied from one another unchanged."""
    costs = []
    for name in ("trapti_edge_2mib.yaml", "trapti_edge.yaml", "trapti_edge_8mib.yaml"):
        core = parse_accelerator(str(HARDWARE / name)).get_core(0)
        sram = max(core.memory_hierarchy.mem_level_list, key=lambda level: level.memory_instance.size)
        costs.append((sram.memory_instance.r_cost, sram.memory_instance.w_cost))
    assert costs == sorted(costs) and len(set(costs)) == 3


def _block(tmp_path: Path, model: str, phase: str, length: int) -> Path:
    return write_workload(preset(model), WorkloadSpec(phase=phase, length=length, layers=1), tmp_path / "block.onnx")


def _solve(onnx_path: Path, out: Path) -> float:
    options = SolveOptions(artifacts=False, stage_options={"fusion_cut_points": "per-layer"})
    return evaluate_mapping(str(DEFAULT), str(onnx_path), str(out), options=options).cycles


@pytest.mark.parametrize(("model", "phase"), [("tiny-mha", "prefill"), ("tiny-gqa", "decode")])
def test_tiny_block_solves(tmp_path: Path, model: str, phase: str) -> None:
    assert _solve(_block(tmp_path, model, phase, 64), tmp_path / "out") > 0


# GPT-2 XL has 1024 learned positions, so its longest decode step attends to P+1 = 1024 tokens: P = 1023.
FULL_SIZE = [
    ("gpt2-xl", "prefill", 1024),
    ("gpt2-xl", "decode", 1023),
    ("deepseek-r1-distill-qwen-1.5b", "prefill", 1024),
    ("deepseek-r1-distill-qwen-1.5b", "decode", 1024),
]


@pytest.mark.slow
@pytest.mark.parametrize(("model", "phase", "length"), FULL_SIZE)
def test_full_size_block_solves_with_generic_mapping(tmp_path: Path, model: str, phase: str, length: int) -> None:
    """The shared SRAM holds the attention-score tiles at L = 1024 (no InfeasibleAllocationError)."""
    assert _solve(_block(tmp_path, model, phase, length), tmp_path / "out") > 0
