"""Benchmark Stage I: wall time and peak memory of tracing, cold (empty solve cache) and warm (cached).

Cases: full-depth GPT-2 XL prefill at L = 1024, and a 64-step decode after a prefill of 128 (as many decode steps as
``--decode-steps`` says). Each run is a fresh process, so its peak RSS is its own. Targets on a 2-core machine: cold
under 10 minutes, warm under 30 seconds. Prints figures; asserts nothing.

    python scripts/bench_trace.py [--hardware hardware/trapti_edge.yaml] [--decode-steps 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run_case(hardware: str, model: str, prefill: int, decode_steps: int, decode_from: int | None, cache: str) -> None:
    from stream_trapti.api import TraceOptions
    from stream_trapti.inference import Phases, trace_inference

    start = time.perf_counter()
    result = trace_inference(
        hardware,
        model,
        Phases(prefill, decode_steps, decode_from),
        options=TraceOptions(cache_dir=cache, progress=False),
    )
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": elapsed,
                "peak_rss_mib": peak_kib / 1024,
                "cycles": result.trace.cycles,
                "change_points": len(result.trace.times),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hardware", default=str(ROOT / "hardware" / "trapti_edge.yaml"))
    parser.add_argument("--decode-steps", type=int, default=64)
    parser.add_argument("--case", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        hardware, model, prefill, steps, start, cache = args.case
        _run_case(hardware, model, int(prefill), int(steps), int(start) or None, cache)
        return
    cases = [
        ("GPT-2 XL prefill L=1024, 48 layers", "gpt2-xl", 1024, 0, 0),
        (f"GPT-2 XL decode, {args.decode_steps} steps from P=128", "gpt2-xl", 0, args.decode_steps, 128),
    ]
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as cache:
        for label, model, prefill, steps, first in cases:
            for state in ("cold", "warm"):
                command = [
                    sys.executable,
                    __file__,
                    "--hardware",
                    args.hardware,
                    "--case",
                    args.hardware,
                    model,
                    str(prefill),
                    str(steps),
                    str(first),
                    cache,
                ]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()
                figures = json.loads(output[-1])
                print(
                    f"{label:45s} {state}: {figures['seconds']:8.1f} s, peak RSS {figures['peak_rss_mib']:7.0f} MiB, "
                    f"{figures['cycles']:,} cycles, {figures['change_points']:,} change points",
                    flush=True,
                )


if __name__ == "__main__":
    main()
