"""Throughput of the Stage II exploration: configurations evaluated per second on one trace.

Usage: ``python scripts/bench_explore.py [TRACE.npz] [--memory NAME] [--timeouts N] [--points K]``

Without a trace it builds a synthetic one of ``--points`` change points (default 100 000): phases of a random-walk
occupancy separated by empty gaps, like the per-group fill and drain of a Stream schedule. Bank costs are
computed once before timing, as the exploration caches them: the throughput does not depend on their values, so
this uses a simple synthetic cost table (leakage proportional to bank bytes) unless ``--cacti`` is given.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from stream_trapti.sram.activity import compacting_activity
from stream_trapti.sram.energy import BankCosts, BankQuery, access_counts, cacti_costs, evaluate_energy
from stream_trapti.sram.explore import explore
from stream_trapti.sram.policies import POLICIES, idle_profile
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.trace import MemoryInfo, OccupancyTrace


def synthetic_trace(points: int, capacity: int, seed: int = 0) -> OccupancyTrace:
    """A trace of ``points`` change points whose occupancy rises and falls in phases, with empty gaps."""
    rng = np.random.default_rng(seed)
    times = np.concatenate([[0], np.cumsum(rng.integers(1, 200, points - 1))])
    walk = np.abs(np.cumsum(rng.normal(0, capacity / 20, points)))
    occupancy = np.minimum(walk % capacity, capacity).astype(np.int64)
    occupancy[(np.arange(points) // 500) % 4 == 3] = 0  # every fourth phase drains the memory
    cycles = int(times[-1]) + 100
    window = 1000
    windows = -(-cycles // window)
    array = np.zeros((2, 1, 3, points), dtype=np.int64)
    array[:, 0, 1] = occupancy
    accesses = rng.integers(0, 1 << 16, (2, 1, windows))
    memory = MemoryInfo("sram", (0,), capacity, 512, 512)
    return OccupancyTrace(cycles, (memory,), times, array, window, accesses)


def synthetic_costs(query: BankQuery) -> BankCosts:
    """Costs that scale with bank bytes; only their shape matters for timing."""
    share = query.bank_bytes / (1 << 20)
    leak = 10.0 * share * (1.0 if query.flavour == "hp" else 0.1)
    if not query.power_gating:
        gated = leak
    elif query.gating_mode == "retention":
        gated = leak * (query.gated_leakage_fraction or 0.6)
    else:
        gated = leak * query.off_leakage_fraction
    area = query.bank_count * (0.5 + 2 * share) * (1.05 if query.power_gating else 1.0)
    return BankCosts(5 + 20 * share, 5 + 20 * share, leak, gated, 50 * share, 4, area)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", nargs="?", type=Path, help="an occupancy trace (.npz); default: synthetic")
    parser.add_argument("--memory", default=0, help="memory name or index (default 0)")
    parser.add_argument("--points", type=int, default=100_000, help="change points of the synthetic trace")
    parser.add_argument("--timeouts", type=int, default=64, help="timeouts swept for the timeout policy")
    parser.add_argument("--cacti", action="store_true", help="use the real CACTI costs instead of synthetic ones")
    args = parser.parse_args()

    memory = int(args.memory) if str(args.memory).isdigit() else args.memory
    trace = OccupancyTrace.load(args.trace) if args.trace else synthetic_trace(args.points, 4 << 20)
    capacity = trace.memories[trace.memory_index(memory)].capacity_bytes
    banks = tuple(2**i for i in range(7))
    timeouts = tuple(int(t) for t in np.unique(np.geomspace(1, 10**7, args.timeouts).astype(np.int64)))
    spec = SweepSpec(memory=memory, banks=banks, timeouts_cycles=timeouts, flavours=("hp", "lstp"),
                     gating_modes=("retention", "power_off"))
    provider = cacti_costs if args.cacti else synthetic_costs
    table: dict[BankQuery, BankCosts] = {}

    def precomputed(query: BankQuery) -> BankCosts:
        if query not in table:
            table[query] = provider(query)
        return table[query]

    print(f"trace: {len(trace.times)} change points, {trace.cycles} cycles, capacity {capacity} B")
    explore(trace, spec, precomputed)  # fills the cost table (and warms numpy)

    start = time.perf_counter()
    intervals = {b: compacting_activity(trace, memory, capacity, b).idle_intervals() for b in banks}
    profiles = {b: idle_profile(i) for b, i in intervals.items()}
    extract = time.perf_counter() - start
    counts = access_counts(trace, memory, spec.port_bits or trace.memories[trace.memory_index(memory)].read_port_bits)
    start = time.perf_counter()
    evaluated = 0
    for query, costs in table.items():
        for policy in POLICIES[1:] if query.power_gating else POLICIES[:1]:
            energy = evaluate_energy(profiles[query.bank_count], policy, costs, counts, spec.clock_ghz,
                                     np.array(timeouts) if policy == "timeout" else None)
            evaluated += len(energy.total_pj)
    evaluate = time.perf_counter() - start
    print(f"idle-interval extraction: {extract * 1e3:.1f} ms for {len(banks)} bank counts "
          f"({sum(len(i.bank) for i in intervals.values())} idle intervals)")
    print(f"energy evaluation only:   {evaluated} configurations in {evaluate * 1e3:.1f} ms = "
          f"{evaluated / evaluate:,.0f} configurations/s")

    start = time.perf_counter()
    result = explore(trace, spec, precomputed)
    total = time.perf_counter() - start
    print(f"full explore():           {len(result.configs)} configurations in {total * 1e3:.1f} ms = "
          f"{len(result.configs) / total:,.0f} configurations/s (extraction, rows, Pareto, heatmap included)")


if __name__ == "__main__":
    main()
