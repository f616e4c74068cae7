"""Fused schedules (stream_trapti.fusion): the scopes group what they say, Stream solves them through our
``stream.mapping_generators`` plugin, fusing saves cycles, and in the solved schedule every node runs after the
producers of the data it reads have finished it."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from stream.frontends import load_workload
from stream.ir.infeasibility import InfeasibleAllocationError
from stream.opt.allocation.constraint_optimization.diagnosis import structural_infeasibility
from stream.stages.context import StageContext
from stream.stages.generation.mapping_generators import mapping_generator_for
from stream.stages.parsing.accelerator_parser import parse_accelerator
from stream.stages.stage import Stage
from stream.workload.affine_access import map_dim_positions
from stream.workload.node import ComputationNode, FusionEdge, TransferNode
from stream.workload.steady_state.iteration_space import LoopEffect

from stream_trapti.api import TraceOptions, trace_workload
from stream_trapti.errors import ConfigError, SolveError
from stream_trapti.fusion import GENERATOR, check_registered
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.mappings import (
    SCOPE_BLOCKS,
    FusionError,
    TokenRetry,
    fused_groups,
    generate_mapping,
    weight_names,
)
from stream_trapti.reports.roofline import roofline_figures
from stream_trapti.tracker import plugin
from stream_trapti.tracker import stream_internals as internals
from stream_trapti.tracker.group import _Schedule
from stream_trapti.tracker.infeasibility import (
    AllocationDiagnosisStage,
    DiagnosedInfeasibility,
    explain,
    fullest_memory,
)
from stream_trapti.workloads.analytics import mac_count
from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

from conftest import DEFAULT_HARDWARE

OPTIONS = TraceOptions(progress=False, use_cache=False)

# Cycles of the tiny blocks per scope on the default hardware: regression values from a run of Stream 2.1.1 (as
# tests/test_mappings.py's TINY_FIXED_CYCLES, which the operator scope reproduces: it is the committed policy).
FUSED_CYCLES = {
    ("tiny-mha", "prefill", 64): {"operator": 12_121, "attention": 12_187, "layer": 8_267},
    ("tiny-mha", "decode", 64): {"operator": 5_349, "attention": 5_043, "layer": 4_741},
}


def test_the_generator_is_stream_s() -> None:
    """Stream finds our generator under its entry point and prefers it to its generic one (which it runs itself when
    no scope is asked for)."""
    check_registered()
    assert mapping_generator_for(parse_accelerator(str(DEFAULT_HARDWARE))) is GENERATOR


def test_scopes_group_their_blocks(
    tiny_block: Callable[..., Path], tiny_mapping: Callable[..., dict[str, Any]]
) -> None:
    workload = load_workload(str(tiny_block("tiny-mha", "prefill", 64)))
    accelerator = parse_accelerator(str(DEFAULT_HARDWARE))
    names = [n.name for n in workload.dataflow_sort() if isinstance(n, ComputationNode)]
    operator, mapping = generate_mapping(workload, accelerator, "operator")
    assert mapping == tiny_mapping("tiny-mha", "prefill", 64)  # the committed policy
    attention, _ = generate_mapping(workload, accelerator, "attention")
    block = [n for n in names if SCOPE_BLOCKS["attention"].match(n)]
    assert block[0] == "layer0.attn_norm" and block[-1] == "layer0.attn_residual"
    # The fused Q/K/V projection ends its group: with its split in the group, Stream computes a third of its columns.
    head = ["layer0.attn_norm", "layer0.attn.qkv_proj", "layer0.attn.qkv_proj.add_bias"]
    rest = [n for n in block if n not in head]
    assert head in attention and rest in attention and sum(map(len, attention)) == len(names)
    # Outside the block, the operator groups, less what of them the block took.
    assert [g for g in attention if g not in (head, rest)] == [
        [n for n in g if n not in block] for g in operator if set(g) - set(block)
    ]
    layer, mapping = generate_mapping(workload, accelerator, "layer")
    assert layer == [head, [n for n in names if n not in head]]
    # In the fused layer every contraction split over the arrays is split on a token axis, of the prompt's 64
    # positions, that no weight is indexed by: never on the QKV outputs or the heads, which the group ties together.
    nodes = {n.name: n for n in workload.get_computation_nodes()}
    lead = workload.leading_dim
    weights = weight_names(workload)
    weighted = {
        lead(workload.get_dims(n)[p])[0]
        for n in nodes.values()
        for t in n.inputs
        if t.name in weights
        for p in map_dim_positions(n.get_mapping(t))
    }
    split = {
        lead(workload.get_dims(nodes[e["name"]])[int(e["inter_core_tiling"][0][0]["dim"][1:])])[0]
        for e in mapping["layers"]
        if e["inter_core_tiling"]
    }
    assert split and not split & weighted
    assert {workload.get_dimension_size(d) for d in split} == {64}


@pytest.mark.parametrize("scope", ["operator", "attention", "layer"])
def test_no_fused_group_crosses_a_decoder_layer_s_end(scope: str, tmp_path: Path) -> None:
    """An inference solves one layer and repeats its groups by name, so no group may hold a layer's last MLP node and
    the final norm or LM head after it (the head would be repeated with the layer)."""
    spec = WorkloadSpec(phase="decode", length=16, layers=2, lm_head="last")
    workload = load_workload(str(write_workload(preset("tiny-mha"), spec, tmp_path / "w.onnx")))
    groups = [[cn.name for cn in g] for g in fused_groups(workload, weight_names(workload), scope)]
    layers = [{name.split(".")[0] if name.startswith("layer") else "head" for name in g} for g in groups]
    assert all(len(of) == 1 for of in layers), groups
    assert [next(iter(of)) for of in layers].count("head") >= 1


def test_rope_keys_fold_into_one_fused_layer(tiny_block: Callable[..., Path]) -> None:
    """GQA with RoPE: Stream folds every relayout of the prefill (no FusionEdge cuts the layer), so a fused layer is one
    group and the scores read the K cache itself, classed as KV cache."""
    workload = load_workload(str(tiny_block("tiny-gqa", "prefill", 64)))
    assert not [n.name for n in workload.nodes if isinstance(n, FusionEdge)]
    assert "layer0.attn.k_cache" in [t.name for t in workload.get_node_by_name("layer0.attn.scores").inputs]
    assert len(fused_groups(workload, weight_names(workload), "layer")) == 1


@pytest.mark.parametrize("block", list(FUSED_CYCLES), ids=lambda b: "-".join(map(str, b)))
def test_fused_scopes_solve_and_save_cycles(
    block: tuple[str, str, int], tiny_block: Callable[..., Path], tmp_path: Path
) -> None:
    cycles = {}
    for scope in ("operator", "attention", "layer"):
        result = trace_workload(DEFAULT_HARDWARE, tiny_block(*block), tmp_path / scope, options=OPTIONS, fusion=scope)
        assert result.trace.metadata["fusion"] == scope
        cycles[scope] = result.trace.cycles
    assert cycles == FUSED_CYCLES[block]
    assert cycles["layer"] < min(cycles["attention"], cycles["operator"])


def test_an_inference_repeats_its_fused_layer() -> None:
    """A whole inference with the layer fused: each step solves one fused layer (the LM head's row slice starts its
    own group), repeated over the model's layers and renamed."""
    result = trace_inference(DEFAULT_HARDWARE, "tiny-gqa", Phases(16, 1), fusion="layer", options=OPTIONS)
    assert result.trace.metadata["fusion"] == "layer"
    names = [g.name for g in result.groups]
    for step in ("prefill_L16", "decode_P16"):
        layers = [n for n in names if n.startswith(f"{step}/layer") and n.endswith(".mlp_residual")]
        assert [n.split("/")[1].split(".")[0] for n in layers] == ["layer0", "layer1"]
        assert all(n.count("+") > 30 for n in layers)  # the whole layer, one group
    assert sum(g.cycles for g in result.groups) == result.trace.cycles


def test_a_mapping_is_the_committed_schedule(tiny_block: Callable[..., Path], tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="fusion 'layer' generates its own"):
        trace_workload(DEFAULT_HARDWARE, tiny_block("tiny-mha", "prefill", 64), tmp_path, "m.yaml", fusion="layer")


def _small_sram(directory: Path, kib: int) -> Path:
    """A copy of the default accelerator whose shared SRAM holds ``kib`` KiB (at the 4 MiB macro's access costs)."""
    shutil.copytree(DEFAULT_HARDWARE.parent, directory)
    for core in ("trapti_array_4mib", "trapti_vector_4mib"):
        path = directory / "cores" / f"{core}.yaml"
        path.write_text(path.read_text().replace("size: 33554432", f"size: {kib * 1024 * 8}"))
    return directory / DEFAULT_HARDWARE.name


def test_a_scope_that_cannot_fit_names_its_tensors(tiny_block: Callable[..., Path], tmp_path: Path) -> None:
    """The tiny layer on a 4 KiB SRAM: one line naming the group, the usable bytes and the largest tensors."""
    hardware = _small_sram(tmp_path / "hardware", 4)
    workload = load_workload(str(tiny_block("tiny-mha", "prefill", 64)))
    with pytest.raises(FusionError) as error:
        generate_mapping(workload, parse_accelerator(str(hardware)), "layer")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("fusion 'layer': group layer0.attn.q_split … layer0.mlp_residual (")
    assert "sram@core0 (3,686 B usable)" in message and " B, largest " in message
    # Raised inside Stream's pipeline, it reaches the caller as a solve error naming the files.
    onnx = tiny_block("tiny-mha", "prefill", 64)
    with pytest.raises(SolveError, match=f"^{onnx} on {hardware}: fusion 'layer': group"):
        trace_workload(hardware, onnx, tmp_path / "out", options=OPTIONS, fusion="layer")


# The tiny MHA layer at L = 256 on a 128 KiB SRAM, tiled on its tokens: a regression value from a run of Stream 2.1.1.
TOKEN_TILED_CYCLES = 208_272


@pytest.mark.slow
def test_a_layer_one_head_per_tile_cannot_hold_tiles_its_tokens(
    tiny_block: Callable[..., Path], tmp_path: Path
) -> None:
    """At L = 256 a head's scores alone are 64 KiB, so one head and one MLP slice per tile do not fit 128 KiB (Stream's
    allocation screen pins 896 KiB); the generator cuts the tokens (the queries, and the rows of the projections and
    the MLP) as the outermost loop, and the solved layer does every MAC of the block, as Stream counts them."""
    hardware = _small_sram(tmp_path / "hardware", 128)
    onnx = tiny_block("tiny-mha", "prefill", 256)
    _, mapping = generate_mapping(load_workload(str(onnx)), parse_accelerator(str(hardware)), "layer")
    # One head, one 64-wide MLP slice, 8 of each array's 128 query rows per tile (the 256 rows split over two arrays):
    # the fewest token tiles whose produced tensors pass Stream's capacity screen, which its allocation takes.
    assert mapping["fused_groups"][-1]["intra_core_tiling"] == [
        {"dim": "layer0.attn.scores.D0", "tile": 1},
        {"dim": "layer0.mlp.up_proj.D1", "tile": 64},
        {"dim": "layer0.attn.scores.D1", "tile": 8},
    ]
    result = trace_workload(hardware, onnx, tmp_path / "out", options=OPTIONS, fusion="layer")
    assert roofline_figures(result.groups).macs == mac_count(preset("tiny-mha"), WorkloadSpec("prefill", 256, 1))
    assert result.trace.cycles == TOKEN_TILED_CYCLES


@pytest.mark.slow
def test_a_layer_no_token_cut_fits_fails_in_one_line(
    tiny_block: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On 64 KiB the screen passes 4 tokens per tile, Stream's allocation rejects 4, 2 and 1 (what it reads beside
    them, the K and V of a head, the weights, does not fit), and the solve fails in one line saying so, with the
    largest tensors Stream's diagnosis counts."""
    rejected: list[tuple[Any, InfeasibleAllocationError]] = []

    class Recording(AllocationDiagnosisStage):
        def run(self):
            try:
                yield from super().run()
            except InfeasibleAllocationError as error:
                rejected.append((self.ctx, error))
                raise

    monkeypatch.setattr(plugin, "AllocationDiagnosisStage", Recording)
    hardware = _small_sram(tmp_path / "hardware", 64)
    onnx = tiny_block("tiny-mha", "prefill", 256)
    with pytest.raises(FusionError) as error:
        trace_workload(hardware, onnx, tmp_path / "out", options=OPTIONS, fusion="layer")
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"{onnx} on {hardware}: fusion 'layer': group layer0.attn.q_split … layer0.mlp_residual")
    assert "rejects every cut from 4 to 1 token per array (at 1: Infeasible mapping — Core 0: " in message
    assert len(rejected) == 3
    ctx, last = rejected[-1]
    (unmet,) = [resource.unmet for resource in last.report.resources if resource.unmet is not None]
    largest = ", ".join(f"{term.label} {term.value:,.0f} B" for term in unmet.terms[:3])
    assert message.endswith(f"; largest {largest})")
    # Our count of each tensor's least residency is Stream's diagnosis's, tensor for tensor.
    problem = ctx.get("allocation_problem")
    assert internals.forced_residency(problem, ())[0] == (64 * 1024, {term.label: term.value for term in unmet.terms})
    # Under Stream's reuse rules the copies of K and V the scores read are held across the token loop: whole, 256
    # tokens × 64 channels of one byte each.
    families = [family.name for family in ctx.get("families").families]
    demand = fullest_memory(problem, families)
    assert demand is not None and demand.memory == "Core 0" and demand.bound == 64 * 1024
    assert demand.terms[:2] == (("layer0.attn.k_cache_1", 256 * 64), ("layer0.attn.v_cache_1", 256 * 64))
    # Where Stream's diagnosis names no memory (a conflict it calls structural), the stage names these.
    structural = InfeasibleAllocationError(structural_infeasibility("no reuse choice holds them"))

    class Rejecting(Stage):
        def is_leaf(self) -> bool:
            return True

        def run(self):
            raise structural
            yield

    with pytest.raises(DiagnosedInfeasibility) as diagnosed:
        list(AllocationDiagnosisStage([Rejecting], StageContext.from_kwargs(**ctx.data)).run())
    assert diagnosed.value.__cause__ is structural and diagnosed.value.demand == demand
    assert explain(diagnosed.value) == (
        f"{structural} Held as long as Stream's reuse rules force them, the tensors that may live on Core 0 need "
        f"{demand.demand:,.0f} of its 65,536 B, largest layer0.attn.k_cache_1 16,384 B, layer0.attn.v_cache_1 16,384 "
        f"B, {demand.terms[2][0]} {demand.terms[2][1]:,.0f} B"
    )


def test_a_retry_with_no_tokens_to_cut_stops(tiny_block: Callable[..., Path]) -> None:
    """A solve Stream's allocation rejects is retried only while a group is cut on its tokens: the operator scope
    (the tiler's plans) has none, so a retry fails in one line with the allocation's reason instead of looping."""
    workload = load_workload(str(tiny_block("tiny-mha", "decode", 64)))
    accelerator = parse_accelerator(str(DEFAULT_HARDWARE))
    with pytest.raises(FusionError, match="^fusion 'operator': no group is cut on its tokens, and Stream said no$"):
        generate_mapping(workload, accelerator, "operator", TokenRetry(1, "Stream said no"))


# Tiny layers on SRAMs small enough that the fused layer is tiled: over 256 steady-state iterations in prefill,
# per MLP slice in decode (4).
ORDERED = [("tiny-mha", "prefill", 64, 256), ("tiny-mha", "decode", 64, 64)]


@pytest.mark.parametrize("block", ORDERED, ids=["prefill", "decode"])
def test_every_node_runs_after_what_it_reads(
    block: tuple[str, str, int, int],
    tiny_block: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """In a fused layer, nodes idle on a tiled loop (ABSENT) are charged an average share of its iterations; whether
    their data is ready when they run is not Stream's to say. From the solved schedule (slot starts and ends, the
    iteration step, each node's loops), every consumer's run must start after the end of every producer run that
    writes the tile it reads: the output projection of every head before the bias add (and norm) reading its sum."""
    allocations = []
    record = plugin.record_group

    def capture(name, allocation, accesses, classify):
        allocations.append(allocation)
        return record(name, allocation, accesses, classify)

    monkeypatch.setattr(plugin, "record_group", capture)
    hardware = _small_sram(tmp_path / "hardware", block[3])
    trace_workload(hardware, tiny_block(*block[:3]), tmp_path / "out", options=OPTIONS, fusion="layer")
    # The fused Q/K/V projection is a group of its own (mappings._start_at_slices); both groups are tiled.
    assert len(allocations) == 2 and all(a.problem.iterations > 1 for a in allocations)
    checked = [_check_order(a) for a in allocations]
    edges, waiting = sum(e for e, _ in checked), sum(w for _, w in checked)
    assert edges > 10
    assert waiting  # an edge whose reader is idle on a loop its producer iterates: the doubtful case is exercised


def _check_order(allocation) -> tuple[int, int]:
    """Assert that every computation node's runs start after the producer runs that write the tiles it reads (through
    any transfers between them); returns the producer-consumer edges checked, and how many of them have a consumer
    idle on a loop its producer iterates over."""
    schedule = _Schedule.of(allocation, internals.decision_space(allocation))
    workload = allocation.problem.workload
    group = "fused layer"
    edges = waiting = 0
    for producer in workload.get_computation_nodes():
        for t in producer.outputs:
            tiles = internals.tile_of_iteration(allocation, t, group)
            writes = internals.active_iterations(allocation, producer, group)
            end = schedule.lead + writes * schedule.step + schedule.end[schedule.slot_of[producer]]
            for consumer in _consumers(workload, producer, t):
                later = int(schedule.slot_of[consumer] < schedule.slot_of[producer])
                reads = internals.active_iterations(allocation, consumer, group)
                reads = reads[reads >= later]
                start = schedule.lead + reads * schedule.step + schedule.start[schedule.slot_of[consumer]]
                # The last end of the producer's runs writing each tile, against each read of that tile.
                ready = np.full(int(tiles.max()) + 1, -1, dtype=np.int64)
                np.maximum.at(ready, tiles[writes], end)
                late = ready[tiles[reads - later]] > start
                assert not late.any(), (
                    f"{consumer.name} starts at {start[late][:3]} before {producer.name} finishes its tile "
                    f"at {ready[tiles[reads - later]][late][:3]}"
                )
                edges += 1
                loops = zip(
                    *(internals._temporal_loops(allocation, n, group) for n in (producer, consumer)), strict=True
                )
                waiting += any(p.effect != LoopEffect.ABSENT and c.effect == LoopEffect.ABSENT for p, c in loops)
    return edges, waiting


def _consumers(workload, node, tensor) -> list[ComputationNode]:
    """The computation nodes reading ``tensor`` of ``node``, directly or through transfers."""
    found = []
    for reader in workload.successors(node):
        if tensor not in getattr(reader, "inputs", ()):
            continue
        if isinstance(reader, TransferNode):
            found += [c for copy in reader.outputs for c in _consumers(workload, reader, copy)]
        elif isinstance(reader, ComputationNode):
            found.append(reader)
    return found
