"""The occupancy tracker on real Stream solves: the trace adds up to Stream's own figures."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from stream.api import SolveOptions, evaluate_mapping
from stream.datatypes import LayerDim
from stream.workload.steady_state.iteration_space import (
    IterationVariable,
    LoopEffect,
    Reuse,
    SteadyStateIterationSpace,
)

from stream_trapti.api import TraceOptions, TraceResult, default_solve_options, tensor_allocations, trace_workload
from stream_trapti.errors import StreamContractError, TraptiError
from stream_trapti.sram.activity import compacting_activity, first_fit_activity
from stream_trapti.sram.energy import access_counts
from stream_trapti.trace import ACCESS_SOURCES, OccupancyTrace, stream_sram_energy_pj
from stream_trapti.tracker import stream_internals
from stream_trapti.tracker.compose import compose
from stream_trapti.tracker.estimate import StreamEstimate

from conftest import FUSEMAX


def classify(name: str) -> str:
    return "weight" if name.startswith("w") else "activation"


def solve(onnx: Path, out: Path, tracker: dict | None):
    options = default_solve_options()
    if tracker is not None:
        options = SolveOptions(**{**options.__dict__, "instrumentation": {"trapti_occupancy": tracker}})
    return evaluate_mapping(str(FUSEMAX), str(onnx), str(out), options=options)


@pytest.fixture(scope="module")
def traced(mha_onnx: Path, tmp_path_factory: pytest.TempPathFactory):
    groups: list = []
    estimate = solve(mha_onnx, tmp_path_factory.mktemp("solve"), {"sink": groups, "classify": classify})
    return estimate, groups, compose(groups)


def test_trace_spans_stream_cycles_exactly(traced) -> None:
    estimate, groups, trace = traced
    assert trace.cycles == estimate.cycles
    assert [g.end - g.start for g in trace.groups] == list(estimate.group_cycles)
    assert trace.groups[-1].end == trace.cycles


def test_reserved_equals_stream_memory_occupancy_for_every_group(traced) -> None:
    estimate, groups, trace = traced
    reports = estimate.context.get("group_allocations")
    assert len(groups) == len(reports) > 1
    for i, group in enumerate(groups):
        rows = {r["core_id"]: r["resident_bits"] for r in reports[i]["performance"]["memory_occupancy"]}
        for m, memory in enumerate(group.memories):
            owner = memory.core_ids[0]
            assert group.reserved[m].sum() * 8 == rows[owner], group.name
            assert group.stream_reserved[m] * 8 == rows[owner]
            # The trace holds that figure for the group's whole span.
            span = trace.groups[i]
            assert trace.value_at(m, span.start, "reserved") == rows[owner] // 8


def test_needed_within_reserved_within_capacity(traced) -> None:
    _, _, trace = traced
    for m, memory in enumerate(trace.memories):
        needed, reserved = trace.series(m, "needed"), trace.series(m, "reserved")
        assert np.all(needed >= 0)
        assert np.all(needed <= reserved)
        assert np.all(reserved <= memory.capacity_bytes)
        assert needed.max() > 0
    for view in ("reserved", "needed"):
        assert np.all(trace.occupancy[trace_view(view)] >= 0)


def test_allocations_add_up_to_the_needed_view_and_first_fit_never_beats_compacting(traced) -> None:
    _, groups, trace = traced
    allocations = tensor_allocations(TraceResult(trace, StreamEstimate.of(groups), tuple(groups)), 0)
    table = np.array([(a.start, a.end, a.size) for a in allocations])
    times = trace.times[:, None]
    live = (table[:, 2] * ((table[:, 0] <= times) & (times < table[:, 1]))).sum(axis=1)
    assert live.tolist() == trace.series(0, "needed").tolist()
    capacity = trace.memories[0].capacity_bytes
    for banks in (1, 4, 16):
        fit = first_fit_activity(allocations, trace.cycles, capacity, banks)
        packed = compacting_activity(trace, 0, capacity, banks)
        on = fit.banks_on[np.searchsorted(fit.times, packed.times, side="right") - 1]
        assert np.all(on >= packed.banks_on), banks


def trace_view(view: str) -> int:
    return ("reserved", "needed").index(view)


def test_shared_sram_is_one_memory(traced) -> None:
    _, _, trace = traced
    assert len(trace.memories) == 1
    assert trace.memories[0].core_ids == (0, 1)
    assert trace.memories[0].capacity_bytes == 16_777_216 // 8


def stream_memory_accesses(estimate, trace: OccupancyTrace) -> np.ndarray:
    """Bytes read and written per memory by Stream's ``memory_accesses`` reports, summed over groups."""
    expected = np.zeros((len(trace.memories), 2), dtype=np.int64)
    owners = {c: m for m, memory in enumerate(trace.memories) for c in memory.core_ids}
    for report in estimate.context.get("group_memory_accesses").values():
        for core in report["cores"]:
            if core["core_id"] in owners:
                m = owners[core["core_id"]]
                expected[m, 0] += core["read"] * core["read_bandwidth"] // 8
                expected[m, 1] += core["write"] * core["write_bandwidth"] // 8
    return expected


def test_transfer_accesses_equal_stream_memory_accesses(traced) -> None:
    # Every transfer of this workload crosses memories (no handover between the two cores sharing the SRAM), so the
    # trace's transfer side is all of Stream's memory_accesses.
    estimate, _, trace = traced
    expected = stream_memory_accesses(estimate, trace)
    assert expected.sum() > 0
    np.testing.assert_array_equal(trace.access_totals("transfer"), expected)


def test_one_bank_energy_at_the_yaml_costs_is_stream_sram_energy(traced) -> None:
    _, groups, _ = traced
    estimate = StreamEstimate.of(groups)
    trace = compose(groups, metadata=estimate.metadata())
    memory = trace.memories[0]
    reads = access_counts(trace, 0, memory.read_port_bits).reads
    writes = access_counts(trace, 0, memory.write_port_bits).writes
    ours = reads * memory.read_pj + writes * memory.write_pj
    stream = estimate.sram_pj[memory.name]
    assert stream_sram_energy_pj(trace, 0) == stream["transfer"] + stream["compute"]
    assert ours == pytest.approx(stream["transfer"] + stream["compute"], rel=1e-3)
    # The computation's accesses are ZigZag's own counts: at the YAML's costs they are its SRAM energy exactly.
    compute_read, compute_write = trace.access_totals("compute")[0]
    priced = compute_read * 8 // memory.read_port_bits * memory.read_pj
    priced += compute_write * 8 // memory.write_port_bits * memory.write_pj
    assert priced == pytest.approx(stream["compute"], rel=1e-9)
    assert stream["compute"] > stream["transfer"] > 0
    assert stream["transfer"] + stream["compute"] < estimate.energy_pj


def test_compute_accesses_happen_while_their_group_runs(traced) -> None:
    _, groups, _ = traced
    for group in groups:
        compute = group.access_source == ACCESS_SOURCES.index("compute")
        assert compute.any(), group.name
        assert np.all((group.access_time[compute] >= 0) & (group.access_time[compute] < group.cycles)), group.name


def test_guard_names_the_group_when_stream_disagrees(
    mha_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    report = stream_internals.stream_occupancy_report
    monkeypatch.setattr(stream_internals, "stream_occupancy_report", lambda a: {c: b + 8 for c, b in report(a).items()})
    with pytest.raises(StreamContractError, match=r"group '[^']+': the tracker reserves [\d,]+ B in sram@core0"):
        solve(mha_onnx, tmp_path, {"sink": [], "classify": classify})


def test_energy_guard_names_the_group(mha_onnx: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = stream_internals.stream_energy_report

    def doubled(allocation):
        return {**report(allocation), "node_pj_per_iteration": 2 * report(allocation)["node_pj_per_iteration"]}

    monkeypatch.setattr(stream_internals, "stream_energy_report", doubled)
    with pytest.raises(StreamContractError, match=r"group '[^']+': node energy \(pJ\) is"):
        solve(mha_onnx, tmp_path, {"sink": [], "classify": classify})


def test_weights_are_attributed_by_name(traced) -> None:
    _, _, trace = traced
    weights = {t.tensor for t in trace.tensors if t.tensor_class == "weight" and t.view == "reserved"}
    assert weights == {"wQ", "wK", "wV"}
    # Each projection weight is [4 heads, 256, 64] bf16 = 131072 bytes, held whole while its projection runs.
    peaks = {t.tensor: t.peak_bytes for t in trace.tensors if t.view == "needed" and t.tensor_class == "weight"}
    assert peaks == {"wQ": 131072, "wK": 131072, "wV": 131072}


def test_tracker_does_not_change_the_solve(traced, mha_onnx: Path, tmp_path: Path) -> None:
    estimate, _, _ = traced
    plain = solve(mha_onnx, tmp_path, None)
    assert plain.group_cycles == estimate.group_cycles

    def energy(estimate):
        return [a["performance"]["energy"] for a in estimate.context.get("group_allocations").values()]

    assert energy(plain) == energy(estimate)


def test_trace_is_identical_across_reruns(traced, mha_onnx: Path, tmp_path: Path) -> None:
    _, groups, trace = traced
    again: list = []
    solve(mha_onnx, tmp_path / "again", {"sink": again, "classify": classify})
    first, second = trace.save(tmp_path / "a.npz"), compose(again).save(tmp_path / "b.npz")
    assert first.read_bytes() == second.read_bytes()
    assert OccupancyTrace.load(first) == trace


def test_trace_workload_api_reports_stream_estimate(mha_onnx: Path, tmp_path: Path) -> None:
    result = trace_workload(FUSEMAX, mha_onnx, tmp_path / "stream", options=TraceOptions())
    assert result.stream.cycles == result.trace.cycles
    assert result.stream.energy_pj > 0


def test_unparseable_operator_is_named(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.INT8, [4, 8])
    y = helper.make_tensor_value_info("y", TensorProto.INT8, [4, 8])
    graph = helper.make_graph([helper.make_node("Erf", ["x"], ["y"], name="gelu_erf")], "g", [x], [y])
    path = tmp_path / "erf.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(TraptiError, match=r"node 'gelu_erf' is an ONNX 'Erf' operator"):
        trace_workload(FUSEMAX, path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_memory_too_small_names_the_memory(mha_onnx: Path, tmp_path: Path) -> None:
    hardware = yaml.safe_load(FUSEMAX.read_text())
    cores = FUSEMAX.parent / "cores"
    small = tmp_path / "cores"
    small.mkdir()
    for name in ("fusemax_array.yaml", "fusemax_vec.yaml", "fusemax_dram.yaml"):
        core = yaml.safe_load((cores / name).read_text())
        if "sram" in core["memories"]:
            core["memories"]["sram"]["size"] = 8 * 16 * 1024  # 16 KiB: smaller than one projection weight
        (small / name).write_text(yaml.safe_dump(core))
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(hardware))
    with pytest.raises(TraptiError, match=r"does not fit on .*tiny\.yaml: .*(KB|memory)") as error:
        trace_workload(tmp_path / "tiny.yaml", mha_onnx, tmp_path / "out")
    # Stream's capacity screen gives the bytes; the line adds the tensors: the largest a copy of a 256 × 256 bf16
    # weight, then two 64 × 256 bf16 activations (128 KiB + 2 × 32 KiB).
    assert "need 196,608 of its 16,384 B, largest wK_1 131,072 B, " in str(error.value)


def test_plugin_writes_the_trace_when_asked(traced, mha_onnx: Path, tmp_path: Path) -> None:
    _, _, trace = traced
    solve(mha_onnx, tmp_path / "s", {"output": str(tmp_path / "t.npz"), "classify": classify})
    written = OccupancyTrace.load(tmp_path / "t.npz")
    np.testing.assert_array_equal(written.occupancy, trace.occupancy)
    assert written.cycles == trace.cycles


ROOT = Path(__file__).resolve().parents[1]
GPT2_MAPPING = ROOT / "mappings/gpt2-xl_prefill_L128_1layer.yaml"


@pytest.fixture(scope="module")
def gpt2_block(tmp_path_factory: pytest.TempPathFactory):
    """The audit's block: GPT-2 XL prefill L=128, one layer, committed mapping, on the default hardware."""
    groups: list = []
    tracker = {"trapti_occupancy": {"sink": groups}}
    estimate = evaluate_mapping(
        str(ROOT / "hardware/trapti_edge.yaml"),
        str(ROOT / "inputs/gpt2-xl_prefill_L128_1layer.onnx"),
        str(tmp_path_factory.mktemp("gpt2")),
        mapping=str(GPT2_MAPPING),
        options=SolveOptions(**{**default_solve_options().__dict__, "instrumentation": tracker}),
    )
    stream = StreamEstimate.of(groups)
    return estimate, groups, compose(groups, metadata=stream.metadata())


@pytest.mark.slow
def test_gpt2_block_prices_both_sides_as_stream_does(gpt2_block) -> None:
    estimate, groups, trace = gpt2_block
    assert trace.cycles == 5_506_447
    # The vector core hands activations to the arrays inside the shared SRAM: Stream's memory_accesses count a read
    # and a write per core for them, the trace (like Stream's energy) nothing.
    transfer = trace.access_totals("transfer")
    assert np.all(transfer < stream_memory_accesses(estimate, trace))
    memory = trace.memories[0]
    reads = access_counts(trace, 0, memory.read_port_bits).reads
    writes = access_counts(trace, 0, memory.write_port_bits).writes
    sram = StreamEstimate.of(groups).sram_pj[memory.name]
    assert reads * memory.read_pj + writes * memory.write_pj == pytest.approx(sum(sram.values()), rel=1e-3)
    # The arrays' own operand reads and partial-sum writes cost the SRAM more than ten times the transfers.
    assert sram["compute"] > 10 * sram["transfer"]


@pytest.mark.slow
def test_gpt2_qkv_group_needs_each_tile_once(gpt2_block) -> None:
    _, groups, trace = gpt2_block
    hidden, length = 1600, 128  # GPT-2 XL, int8
    mapping = yaml.safe_load(GPT2_MAPPING.read_text())
    tile = mapping["fused_groups"][0]["intra_core_tiling"][0]["tile"]  # columns of the QKV output per core
    cores = next(x for x in mapping["layers"] if x["name"] == "layer0.attn.qkv_proj")["inter_core_tiling"][0][0]
    columns = tile * cores["split"]  # one iteration: both arrays
    # Double-buffered weight tiles, one output tile, and the normalised activations loaded once for all iterations;
    # the block's input is needed only until the norm has read it.
    expected = 2 * hidden * columns + length * columns + length * hidden
    assert expected == 2_867_200
    span = trace.groups[0]
    inside = (trace.times >= span.start) & (trace.times < span.end)
    assert trace.series(0, "needed")[inside].max() == expected
    assert np.all(trace.series(0, "needed") <= trace.series(0, "reserved"))

    group = groups[0]
    intervals = {
        name: (group.needed_start[group.needed_tensor == i], group.needed_end[group.needed_tensor == i])
        for i, name in enumerate(group.tensor_names)
    }
    norm_start, norm_end = intervals["layer0.attn_norm.out"]
    weight_start, weight_end = intervals["layer0.attn.qkv_proj.weight"]
    assert len(norm_start) == 1
    assert len(weight_start) == 3 * hidden // columns
    # The norm's output is live throughout qkv_proj's reads: from before the first weight tile to its last read.
    assert norm_start[0] <= weight_start.min() and norm_end[0] >= weight_end.max()


def test_a_tile_is_shared_by_the_iterations_it_does_not_change_on() -> None:
    def loop(size: int, effect: LoopEffect, reuse: bool = False) -> IterationVariable:
        variable = IterationVariable(LayerDim("D0"), size, effect)
        if reuse:
            variable.reuse = Reuse.REUSE
        return variable

    def tiles(*loops: IterationVariable) -> list[int]:
        iterations = math.prod(v.size for v in loops)
        fake = SimpleNamespace(
            ssis={"t": SteadyStateIterationSpace(loops)}, problem=SimpleNamespace(iterations=iterations)
        )
        return stream_internals.tile_of_iteration(fake, "t", "g").tolist()

    # Innermost first: kept across an ABSENT loop of 3 and a reused irrelevant loop of 2, changes on the outer 2.
    kept = (loop(3, LoopEffect.ABSENT), loop(2, LoopEffect.INVARIANT, True), loop(2, LoopEffect.VARYING))
    assert tiles(*kept) == [0] * 6 + [1] * 6
    # An irrelevant loop that is not reused reloads the tile: every iteration has its own.
    assert tiles(loop(2, LoopEffect.INVARIANT), loop(3, LoopEffect.VARYING)) == [0, 1, 2, 3, 4, 5]
    # Kept across a loop outside the one it changes on: its 4 tiles recur in each of the 3 outer passes.
    assert tiles(loop(4, LoopEffect.VARYING), loop(3, LoopEffect.ABSENT)) == [0, 1, 2, 3] * 3


@pytest.mark.slow
def test_gpt2_every_access_falls_inside_a_needed_interval_of_its_tensor(gpt2_block) -> None:
    _, groups, _ = gpt2_block
    for group in groups:
        at, memory, tensor = (x[:, None] for x in (group.access_time, group.access_memory, group.access_tensor))
        live = (group.needed_memory == memory) & (group.needed_tensor == tensor)
        live &= (group.needed_start <= at) & (at < group.needed_end)
        outside = ~live.any(axis=1)
        assert not outside.any(), (group.name, sorted({group.tensor_names[t] for t in group.access_tensor[outside]}))


def test_every_access_falls_inside_a_needed_interval_of_its_tensor(traced) -> None:
    _, groups, _ = traced
    for group in groups:
        at, memory, tensor = (x[:, None] for x in (group.access_time, group.access_memory, group.access_tensor))
        live = (group.needed_memory == memory) & (group.needed_tensor == tensor)
        live &= (group.needed_start <= at) & (at < group.needed_end)
        assert live.any(axis=1).all(), group.name
