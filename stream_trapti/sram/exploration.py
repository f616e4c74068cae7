"""Stage II from files: a trace on disk and a sweep YAML in, the exploration's tables and plots out."""

from __future__ import annotations

from pathlib import Path

from stream_trapti.atomic import atomic_directory
from stream_trapti.sram.energy import access_counts, cacti_costs
from stream_trapti.sram.explore import ExplorationResult, explore, write_results
from stream_trapti.sram.sweep_config import SweepSpec, load_sweep_spec
from stream_trapti.trace import OccupancyTrace

def explore_trace(trace_path: str | Path, sweep_path: str | Path | None, out_dir: str | Path) -> ExplorationResult:
    """Evaluate the sweep of ``sweep_path`` (None: the defaults) on the trace at ``trace_path`` with per-bank costs
    from CACTI, and write its CSV, JSON and plots into ``out_dir``, replaced whole once everything is written."""
    spec = load_sweep_spec(sweep_path) if sweep_path is not None else SweepSpec()
    return explore_and_write(OccupancyTrace.load(trace_path), spec, out_dir)


def explore_and_write(trace: OccupancyTrace, spec: SweepSpec, out_dir: str | Path) -> ExplorationResult:
    """Evaluate ``spec`` on ``trace`` with per-bank costs from CACTI, with Stream's own estimate of the same SRAM's
    energy beside it, and write the results into ``out_dir``, replaced whole."""
    result = explore(trace, spec, cacti_costs, stream_estimate_pj=stream_sram_energy_pj(trace, spec.memory))
    with atomic_directory(out_dir) as staging:
        write_results(result, staging)
    return result


def stream_sram_energy_pj(trace: OccupancyTrace, memory: int | str) -> float | None:
    """What Stream's cost model charges the memory for the traced run: its port accesses at the per-access energies
    of the hardware description (one monolithic SRAM, no leakage); None when the trace does not carry them."""
    info = trace.memories[trace.memory_index(memory)]
    if not (info.read_pj or info.write_pj):
        return None
    reads = access_counts(trace, memory, info.read_port_bits).reads
    writes = access_counts(trace, memory, info.write_port_bits).writes
    return reads * info.read_pj + writes * info.write_pj
