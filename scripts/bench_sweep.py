"""Benchmark design sweeps on Dask: points per hour on 1 and 2 local workers, and what more workers would give.

1. **Dask's overhead per task**: a no-op sweep of ``--tasks`` (10⁴) tasks on a 2-worker LocalCluster, submitted and
   collected as ``stream-trapti sweep`` does (one future per task, results taken as they complete).
2. **Points per hour**: the sweep (default ``inputs/design_sweep_default.yaml``) run cold (an empty solve cache) on a
   LocalCluster of each of ``--workers`` (1 and 2), and their ratio. CACTI's results for the sweep's capacities are
   made first (a warm-up sweep of the tiny model at each capacity), so both runs find them cached alike.
3. **Scale-out estimate**: the 1-worker run's measured per-solve times, replayed on N workers (each task in
   submission order on the first free worker, the scheduler starting at most one task per overhead measured in 1),
   then each point composed on the client (its measured seconds, one at a time, once its solves are in), plus the
   planning. Replayed on 1 and 2 workers it can be checked against the measured runs.

Prints figures; asserts nothing. Takes as long as the sweep twice, cold (7 minutes 21 seconds for the default sweep on
an idle 2-core machine).

    python scripts/bench_sweep.py [--sweep inputs/design_sweep_default.yaml] [--workers 1 2] [--tasks 10000]
"""

from __future__ import annotations

import argparse
import heapq
import logging
import os
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def noop(i: int) -> int:
    return i


def scheduler_overhead(tasks: int) -> tuple[float, float]:
    """Seconds to start a 2-worker LocalCluster, and seconds per task of ``tasks`` no-op tasks on it."""
    from distributed import Client, LocalCluster, as_completed

    start = time.perf_counter()
    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        started = time.perf_counter()
        futures = [client.submit(noop, i, key=f"noop-{i}", pure=False) for i in range(tasks)]
        for future in as_completed(futures):
            future.result()
        elapsed = time.perf_counter() - started
    return started - start, elapsed / tasks


def replay(stats, workers: int, overhead: float) -> float:
    """The wall seconds of the measured run ``stats`` replayed on ``workers`` workers (see the module docstring)."""
    free = [0.0] * workers
    end: dict[str, float] = {}
    for i, (key, seconds) in enumerate(stats.solve_seconds.items()):
        start = max(heapq.heappop(free), i * overhead)
        end[key] = start + seconds + overhead
        heapq.heappush(free, end[key])
    ready = sorted((max((end[k] for k in keys), default=0.0), p) for p, keys in stats.point_solves.items())
    client = 0.0
    for at, point in ready:
        client = max(client, at) + stats.compose_seconds.get(point, 0.0)
    return stats.plan_seconds + client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", type=Path, default=ROOT / "inputs" / "design_sweep_default.yaml")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--scale", type=int, nargs="+", default=[1, 2, 4, 8, 16, 32, 64])
    args = parser.parse_args()
    import distributed  # noqa: F401  (its import sets its loggers to INFO)

    from stream_trapti.api import TraceOptions
    from stream_trapti.design_sweep import load_design_sweep, parse_design_sweep
    from stream_trapti.dispatch import Cluster
    from stream_trapti.sweep_run import run_sweep

    logging.getLogger("distributed").setLevel(logging.ERROR)
    os.chdir(ROOT)  # the sweep's paths are relative to the repository, as `make sweep` runs it
    startup, overhead = scheduler_overhead(args.tasks)
    print(
        f"Dask LocalCluster of 2 workers: {startup:.1f} s to start; {args.tasks:,} no-op tasks, {overhead * 1e3:.2f} ms"
    )

    sweep = load_design_sweep(args.sweep)
    with tempfile.TemporaryDirectory(prefix="bench_sweep.") as scratch:
        scratch = Path(scratch)
        capacities = dict.fromkeys((p.hardware, p.sram_mib) for p in sweep.expand())
        warm_points = [{"model": "tiny-mha", "hardware": hw, "sram_mib": mib, "prefill": 16} for hw, mib in capacities]
        warm = parse_design_sweep(
            {"sweep_id": "warm", "hardware": sweep.hardware, "sram_sweep": sweep.sram_sweep, "points": warm_points}
        )
        warm = warm.model_copy(update={"output_dir": scratch})
        run_sweep(warm, Cluster("none"), TraceOptions(cache_dir=scratch / "warm-cache"), progress=False)
        measured = {}
        for workers in args.workers:
            out = sweep.model_copy(update={"output_dir": scratch / f"out{workers}"})
            result = run_sweep(
                out,
                Cluster("local", workers, dashboard=False),
                TraceOptions(cache_dir=scratch / f"c{workers}"),
                progress=False,
            )
            ran = sum(r["skipped"] is None for r in result.rows)
            measured[workers] = result
            stats = result.stats
            solving, composing = sum(stats.solve_seconds.values()), sum(stats.compose_seconds.values())
            print(
                f"{workers} local worker(s): {ran} points ran ({stats.points - ran} skipped), "
                f"{len(stats.solve_seconds)} solves ({solving:.0f} s solving), planning {stats.plan_seconds:.0f} s, "
                f"composing {composing:.0f} s: {stats.wall_seconds:.0f} s, "
                f"{3600 * ran / stats.wall_seconds:.0f} points/hour"
            )
    if 1 in measured and len(measured) > 1:
        for workers, result in measured.items():
            if workers != 1:
                print(
                    f"1 worker / {workers} workers: {measured[1].stats.wall_seconds / result.stats.wall_seconds:.2f}x"
                )
    base = measured[min(measured)].stats
    ran = sum(r["skipped"] is None for r in measured[min(measured)].rows)
    # What the replay does not see (the cluster's start, the workers' imports, writing the outputs), from the run.
    fixed = base.wall_seconds - replay(base, min(measured), overhead)
    print(f"\nreplay of the {min(measured)}-worker run, {overhead * 1e3:.2f} ms per task, {fixed:.0f} s fixed:")
    print("| workers | estimated wall (s) | points/hour | measured wall (s) |")
    print("|---:|---:|---:|---:|")
    for workers in args.scale:
        wall = fixed + replay(base, workers, overhead)
        seen = f"{measured[workers].stats.wall_seconds:.0f}" if workers in measured else ""
        print(f"| {workers} | {wall:.0f} | {3600 * ran / wall:.0f} | {seen} |")


if __name__ == "__main__":
    main()
