"""Stage II end to end: a trace and a sweep in, the tables and plots out.

Nothing here needs Stream: ``stream-trapti explore`` on a saved trace loads none of it. A fresh trace, whose solved
groups also give the first-fit allocator its allocations, is explored through :func:`stream_trapti.api.explore_result`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from stream_trapti.errors import ConfigError
from stream_trapti.reports.exploration_outputs import write_exploration_outputs
from stream_trapti.sram.activity import Allocation
from stream_trapti.sram.energy import cacti_costs
from stream_trapti.sram.explore import ExplorationResult, explore
from stream_trapti.sram.sweep_config import SweepSpec, check_sweep_memory, load_sweep_spec
from stream_trapti.trace import OccupancyTrace, stream_sram_energy_pj


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
    write_exploration_outputs(result, out_dir, inputs)
    return result
