"""Throughput of the Stage II exploration: configurations evaluated per second on one trace.

Usage: ``python scripts/bench_explore.py [TRACE.npz] [--hardware HW.yaml] [--memory NAME] [--timeouts N] [--repeat N]``

Without a trace it traces full-depth GPT-2 XL prefill at L = 1024 on the default hardware (from the solve cache
after the first run). Bank costs come from CACTI; they are all computed (and cached on disk) by a first exploration
before anything is timed, as the target is stated with CACTI fully cached: at least 100 000 configurations/s for a
whole ``explore()``. That is timed ``--repeat`` times; the fastest and the median run are printed, and the least
CPU time of a run (``time.process_time``), which other work on a shared machine inflates least. Prints figures;
asserts nothing.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from stream_trapti.api import TraceOptions
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.sram.activity import compacting_activity
from stream_trapti.sram.energy import BankCosts, BankQuery, access_counts, cacti_costs, evaluate_energy
from stream_trapti.sram.explore import explore
from stream_trapti.sram.policies import GATING_POLICIES, idle_profiles
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.trace import OccupancyTrace

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trace", nargs="?", type=Path, help="an occupancy trace (.npz); default: GPT-2 XL, L = 1024")
    parser.add_argument("--hardware", type=Path, default=ROOT / "hardware" / "trapti_edge.yaml")
    parser.add_argument("--memory", default=0, help="memory name or index (default 0)")
    parser.add_argument("--timeouts", type=int, default=64, help="timeouts swept for the timeout policy")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of the whole explore()")
    args = parser.parse_args()

    memory = int(args.memory) if str(args.memory).isdigit() else args.memory
    if args.trace:
        trace = OccupancyTrace.load(args.trace)
    else:
        trace = trace_inference(args.hardware, "gpt2-xl", Phases(prefill=1024), options=TraceOptions()).trace
    capacity = trace.memories[trace.memory_index(memory)].capacity_bytes
    banks = tuple(2**i for i in range(7))
    timeouts = tuple(int(t) for t in np.unique(np.geomspace(1, 10**7, args.timeouts).astype(np.int64)))
    spec = SweepSpec(
        memory=memory,
        banks=banks,
        timeouts_cycles=timeouts,
        flavours=("hp", "lstp"),
        gating_modes=("retention", "power_off"),
    )
    table: dict[BankQuery, BankCosts] = {}

    def precomputed(query: BankQuery) -> BankCosts:
        if query not in table:
            table[query] = cacti_costs(query)
        return table[query]

    print(f"trace: {len(trace.times)} change points, {trace.cycles} cycles, capacity {capacity} B")
    explore(trace, spec, precomputed)  # fills the cost table (and warms numpy)

    start = time.perf_counter()
    # As explore() does it: the finest organisation extracted, the coarser ones read off it (IdleIntervals.coarser).
    finest = compacting_activity(trace, memory, capacity, max(banks)).idle_intervals()
    profiles = idle_profiles(finest, banks)
    extract = time.perf_counter() - start
    counts = access_counts(trace, memory, spec.port_bits or trace.memories[trace.memory_index(memory)].read_port_bits)
    start = time.perf_counter()
    evaluated = 0
    for query, costs in table.items():
        for policy in (name for name, p in GATING_POLICIES.items() if p.sleep_transistors == query.power_gating):
            energy = evaluate_energy(
                profiles[query.bank_count],
                policy,
                costs,
                counts,
                spec.clock_ghz,
                np.array(timeouts) if GATING_POLICIES[policy].takes_timeouts else None,
            )
            evaluated += len(energy.total_pj)
    evaluate = time.perf_counter() - start
    print(
        f"idle-interval extraction: {extract * 1e3:.1f} ms for {len(banks)} bank counts "
        f"({len(finest.spans.low)} spans holding {len(finest.bank)} idle intervals of {max(banks)} banks)"
    )
    print(
        f"energy evaluation only:   {evaluated} configurations in {evaluate * 1e3:.1f} ms = "
        f"{evaluated / evaluate:,.0f} configurations/s"
    )

    seconds, cpu = [], []
    for _ in range(max(args.repeat, 1)):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = explore(trace, spec, precomputed)
        seconds.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    configs = len(result.configs)
    for what, total in (("fastest", min(seconds)), ("median", float(np.median(seconds))), ("least CPU", min(cpu))):
        print(
            f"full explore(), {what} of {len(seconds)}: {configs} configurations in {total * 1e3:.1f} ms = "
            f"{configs / total:,.0f} configurations/s (extraction, rows, Pareto, heatmap included)"
        )


if __name__ == "__main__":
    main()
