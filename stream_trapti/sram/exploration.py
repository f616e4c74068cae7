"""Stage II end to end: a trace (on disk, or fresh from a solve) and a sweep in, the tables and plots out."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stream_trapti.api import TraceResult
from stream_trapti.atomic import atomic_directory
from stream_trapti.errors import ConfigError
from stream_trapti.sram.activity import Allocation
from stream_trapti.sram.energy import cacti_costs
from stream_trapti.sram.explore import ExplorationResult, explore, write_results
from stream_trapti.sram.sweep_config import SweepSpec, check_sweep_memory, load_sweep_spec
from stream_trapti.trace import OccupancyTrace
from stream_trapti.tracker.compose import needed_intervals
from stream_trapti.tracker.estimate import stream_sram_pj


def explore_trace(trace_path: str | Path, sweep_path: str | Path | None, out_dir: str | Path) -> ExplorationResult:
    """Evaluate the sweep of ``sweep_path`` (None: the defaults) on the trace at ``trace_path`` with per-bank costs
    from CACTI, and write its CSV, JSON and plots into ``out_dir``, replaced whole once everything is written (and
    never when it holds the trace or the sweep)."""
    spec = load_sweep_spec(sweep_path) if sweep_path is not None else SweepSpec()
    source = str(sweep_path) if sweep_path is not None else "the default sweep"
    if spec.allocator == "first_fit":
        raise ConfigError(
            f"{source}: key 'allocator': 'first_fit' needs the tracker's per-tensor allocations, which a trace file "
            "does not hold; use 'compacting', or run the sweep in an experiment (stream-trapti run)"
        )
    trace = OccupancyTrace.load(trace_path)
    check_sweep_memory(spec, trace.memories, source)
    inputs = (trace_path,) if sweep_path is None else (trace_path, sweep_path)
    return explore_and_write(trace, spec, out_dir, inputs=inputs)


def explore_result(result: TraceResult, spec: SweepSpec, out_dir: str | Path) -> ExplorationResult:
    """:func:`explore_and_write` on a fresh trace, whose solved groups also give the first-fit allocator its
    per-tensor allocations (a trace file does not hold them)."""
    allocations = tensor_allocations(result, spec.memory) if spec.allocator == "first_fit" else None
    return explore_and_write(result.trace, spec, out_dir, allocations)


def tensor_allocations(result: TraceResult, memory: int | str) -> list[Allocation]:
    """Every needed interval of ``memory`` in ``result`` as an allocation: the tensors' stays, in trace order."""
    intervals = needed_intervals(result.groups)
    keep = (intervals.memory == result.trace.memory_index(memory)) & (intervals.size > 0)
    return [
        Allocation(int(begin), int(end), int(size))
        for begin, end, size in zip(intervals.begin[keep], intervals.end[keep], intervals.size[keep], strict=True)
    ]


def explore_and_write(
    trace: OccupancyTrace,
    spec: SweepSpec,
    out_dir: str | Path,
    allocations: list[Allocation] | None = None,
    inputs: Iterable[str | Path] = (),
) -> ExplorationResult:
    """Evaluate ``spec`` on ``trace`` with per-bank costs from CACTI, with Stream's own estimate of the same SRAM's
    energy beside it, and write the results into ``out_dir``, replaced whole (never when it holds one of the run's
    ``inputs``). ``allocations`` are required by the first-fit allocator only."""
    result = explore(
        trace, spec, cacti_costs, allocations=allocations, stream_estimate_pj=stream_sram_energy_pj(trace, spec.memory)
    )
    with atomic_directory(out_dir, inputs) as staging:
        write_results(result, staging)
    return result


def stream_sram_energy_pj(trace: OccupancyTrace, memory: int | str) -> float | None:
    """What Stream's cost model charges the memory for the traced run, as its solve added it up: the DMA transfers'
    port accesses plus the SRAM part of every node's ZigZag energy (one monolithic SRAM, no leakage); None when the
    trace does not carry it."""
    recorded = stream_sram_pj(trace, memory)
    return None if recorded is None else sum(recorded.values())
