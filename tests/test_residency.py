"""KV-cache residency (stream_trapti.residency) on real Stream solves of the tiny MHA and GQA models: the cache's
off-chip bytes disappear and nothing else does, the KV band of the trace is the analytic cache, and cycles never
grow against the streamed run."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from stream_trapti.api import TraceOptions, TraceResult
from stream_trapti.errors import ConfigError, SolveError
from stream_trapti.experiment import parse_experiment, run_experiment
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.residency import ResidencyPlan
from stream_trapti.trace import CLASSES
from stream_trapti.workloads.analytics import kv_cache_bytes
from stream_trapti.workloads.config import preset

from conftest import DEFAULT_HARDWARE

OPTIONS = TraceOptions(progress=False)
KV = CLASSES.index("kv_cache")
PAST = 16
STEPS = 2


def _decode(model: str, policy: str, budget: float = 0.5) -> TraceResult:
    phases = Phases(prefill=0, decode_steps=STEPS, decode_from=PAST)
    return trace_inference(DEFAULT_HARDWARE, model, phases, kv_residency=policy, kv_budget=budget, options=OPTIONS)


@pytest.fixture(scope="module", params=["tiny-mha", "tiny-gqa"])
def runs(request: pytest.FixtureRequest) -> tuple[str, TraceResult, TraceResult]:
    """A model's decode traced with the cache streamed and resident."""
    return request.param, _decode(request.param, "streamed"), _decode(request.param, "resident")


def test_resident_decode_moves_exactly_the_cache_bytes_less_off_chip(runs) -> None:
    _, streamed, resident = runs
    for s, r in zip(streamed.groups, resident.groups, strict=True):
        assert r.name == s.name
        # Everything but the cache moves as before; the cache moves nothing off chip.
        np.testing.assert_array_equal(np.delete(r.dram_bytes, KV, axis=0), np.delete(s.dram_bytes, KV, axis=0))
        assert not r.dram_bytes[KV].any()
    kv_moved = sum(int(g.dram_bytes[KV].sum()) for g in streamed.groups)
    assert kv_moved > 0
    assert resident.stream.dram_total_bytes == streamed.stream.dram_total_bytes - kv_moved
    # The attention reads at least the whole cache of every layer and step from DRAM when it is streamed.
    config = preset(runs[0])
    least = sum(config.layers * kv_cache_bytes(config, p + 1) for p in range(PAST, PAST + STEPS))
    assert sum(int(g.dram_bytes[KV, 0]) for g in streamed.groups) >= least


def test_resident_energy_drops_by_what_stream_charged_for_moving_the_cache(runs) -> None:
    _, streamed, resident = runs
    charged = sum(float(g.offchip_pj[KV, 0]) for g in streamed.groups)
    assert charged > 0
    assert resident.stream.energy_pj == pytest.approx(streamed.stream.energy_pj - charged, rel=1e-9)


def test_resident_cycles_never_exceed_streamed(runs) -> None:
    _, streamed, resident = runs
    assert resident.trace.cycles <= streamed.trace.cycles
    for s, r in zip(streamed.groups, resident.groups, strict=True):
        assert r.cycles <= s.cycles, r.name


def test_kv_band_is_the_analytic_cache_at_every_step(runs) -> None:
    model, _, resident = runs
    config = preset(model)
    trace = resident.trace

    def kv_at(cycle: int) -> int:
        return int(trace.occupancy[1, 0, KV, np.searchsorted(trace.times, cycle, side="right") - 1])

    step_ends = [
        max(g.end for g in trace.groups if g.name.startswith(f"decode_P{p}/")) for p in range(PAST, PAST + STEPS)
    ]
    for past, end in zip(range(PAST, PAST + STEPS), step_ends, strict=True):
        # 2 · layers · P · n_kv · d_head · bytes, with the step's own entry appended: P + 1 positions.
        assert kv_at(end - 1) == 2 * config.layers * (past + 1) * config.kv_heads * config.head_dim
    # Before the first layer appends, the cache holds the P past positions of every layer.
    assert (
        trace.occupancy[1, 0, KV, 0] - kv_cache_bytes(config, 1)
        == 2 * config.layers * PAST * config.kv_heads * config.head_dim
    )


def test_resident_occupancy_stays_within_the_sram(runs) -> None:
    _, _, resident = runs
    trace = resident.trace
    reserved = trace.occupancy[0, 0].sum(axis=0)
    needed = trace.occupancy[1, 0].sum(axis=0)
    assert (needed <= reserved).all()
    assert reserved.max() <= trace.memories[0].capacity_bytes


def test_fit_keeps_whole_layers_from_the_first() -> None:
    config = preset("tiny-gqa")
    one_layer = kv_cache_bytes(config, PAST + STEPS)
    # A budget of one and a half layers' cache keeps exactly one layer on chip.
    budget = 1.5 * one_layer / (4 * 2**20)
    result = _decode("tiny-gqa", "fit", budget)
    assert result.trace.metadata["kv_resident_layers"] == "1"
    for g in result.groups:
        if g.name.split("/")[1].startswith("layer0."):
            assert not g.dram_bytes[KV].any(), g.name
    assert any(g.dram_bytes[KV].any() for g in result.groups if g.name.split("/")[1].startswith("layer1."))
    assert result.trace.occupancy[1, 0, KV, 0] >= PAST * kv_cache_bytes(config, 1)


def test_a_cache_that_cannot_fit_names_the_step_and_the_missing_bytes() -> None:
    plan = ResidencyPlan("resident", 48, 3200, 4 * 2**20, 1024)
    with pytest.raises(SolveError, match=r"step decode_P1023: .* 157,286,400 B .* \(153,092,096 B missing"):
        plan.free_capacity("decode_P1023", 1024)


def test_cli_fails_in_one_line_before_solving_a_cache_that_cannot_fit(tmp_path) -> None:
    out = tmp_path / "out"
    args = ["--hardware", str(DEFAULT_HARDWARE), "--model", "gpt2-xl", "--decode-from", "1000", "--decode-steps", "1"]
    run = subprocess.run(
        [sys.executable, "-m", "stream_trapti.cli", "trace", *args, "--kv-residency", "resident", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 2
    assert run.stderr.count("\n") == 1 and "step decode_P1000" in run.stderr and "missing" in run.stderr
    assert not out.exists()


def test_an_experiment_runs_every_capacity_with_the_cache_resident(tmp_path) -> None:
    spec = {
        "experiment_id": "kv",
        "hardware": str(DEFAULT_HARDWARE),
        "models": ["tiny-gqa"],
        "prefill": 16,
        "decode_steps": 1,
        "kv_residency": "resident",
        "sram_capacities_mib": [2, 4],
        "output_dir": str(tmp_path / "outputs"),
    }
    summary = run_experiment(parse_experiment(spec))
    assert list(summary.workloads) == ["tiny-gqa_2mib", "tiny-gqa_4mib"]
    assert (summary.experiment.kv_residency, summary.experiment.sram_capacities_mib) == ("resident", (2.0, 4.0))
    config = preset("tiny-gqa")
    for mib, workload in zip((2, 4), summary.workloads.values(), strict=True):
        assert workload.memory.capacity_bytes == mib * 2**20
        assert workload.trace.dram_bytes_by_class["kv_cache"] == 0
        assert workload.trace.metadata["kv_resident_layers"] == str(config.layers)
        # The cache after the decode step, every layer resident: the KV peak of the needed view.
        assert workload.memory.peak_needed_by_class["kv_cache"] == config.layers * kv_cache_bytes(config, 17)


def test_steps_solved_on_two_workers_give_the_serial_trace_byte_for_byte(tmp_path) -> None:
    phases = Phases(prefill=0, decode_steps=3, decode_from=PAST)
    files = []
    for workers, cache in ((1, "serial"), (2, "parallel")):
        options = TraceOptions(progress=False, workers=workers, cache_dir=tmp_path / cache)
        result = trace_inference(DEFAULT_HARDWARE, "tiny-gqa", phases, kv_residency="resident", options=options)
        files.append(result.trace.save(tmp_path / f"{cache}.npz").read_bytes())
    assert files[0] == files[1]
    # Every step of the parallel run was solved once, by a worker, into its own cache.
    assert len(list((tmp_path / "parallel" / "groups").glob("*.npz"))) == 3


@pytest.mark.parametrize(
    ("policy", "budget", "message"),
    [("sometimes", 0.5, "kv_residency must be one of streamed, resident, fit"), ("fit", 0.0, "kv_budget must be")],
)
def test_a_bad_policy_or_budget_is_a_config_error(policy: str, budget: float, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ResidencyPlan(policy, 2, 128, 2**20, 16, budget)
