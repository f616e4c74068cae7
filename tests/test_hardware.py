"""The TRAPTI-style hardware YAMLs: they parse, share one SRAM of the stated size, and decoder blocks solve on them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from stream.api import SolveOptions, evaluate_mapping
from stream.stages.parsing.accelerator_parser import parse_accelerator

from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

from conftest import DEFAULT_HARDWARE as DEFAULT
from conftest import HARDWARE

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


# Cycles of one-layer blocks on the default hardware with Stream's generic mapping, one fused group per layer:
# regression values from a run of Stream 2.1.1 (evaluate_mapping, SolveOptions(artifacts=False)). Every allocation solve
# ends far inside Stream's 300 s limit (after which it would take its best incumbent), so the figures do not depend on
# the machine's speed.
TINY_GENERIC_CYCLES = {("tiny-mha", "prefill"): 36_460, ("tiny-gqa", "decode"): 6_282}


@pytest.mark.parametrize(("model", "phase"), sorted(TINY_GENERIC_CYCLES))
def test_tiny_block_solves(tiny_block: Callable[..., Path], tmp_path: Path, model: str, phase: str) -> None:
    assert _solve(tiny_block(model, phase, 64), tmp_path / "out") == TINY_GENERIC_CYCLES[model, phase]


# GPT-2 XL has 1024 learned positions, so its longest decode step attends to P+1 = 1024 tokens: P = 1023.
# The cycles are regression values, as TINY_GENERIC_CYCLES (the README's "Stream's generic mapping" column lists them).
FULL_SIZE_GENERIC_CYCLES = {
    ("gpt2-xl", "prefill", 1024): 65_746_110,
    ("gpt2-xl", "decode", 1023): 2_642_432,
    ("deepseek-r1-distill-qwen-1.5b", "prefill", 1024): 110_335_699,
    ("deepseek-r1-distill-qwen-1.5b", "decode", 1024): 3_135_962,
}


@pytest.mark.slow
@pytest.mark.parametrize(("model", "phase", "length"), list(FULL_SIZE_GENERIC_CYCLES))
def test_full_size_block_solves_with_generic_mapping(tmp_path: Path, model: str, phase: str, length: int) -> None:
    """The shared SRAM holds the attention-score tiles at L = 1024 (no InfeasibleAllocationError)."""
    cycles = _solve(_block(tmp_path, model, phase, length), tmp_path / "out")
    assert cycles == FULL_SIZE_GENERIC_CYCLES[model, phase, length]
