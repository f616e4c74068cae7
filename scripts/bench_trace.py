"""Benchmark Stage I: wall time and peak memory of tracing, cold (empty solve cache) and warm (cached).

Cases: full-depth GPT-2 XL prefill at L = 1024; a 64-step decode from P = 128 (as many decode steps as
``--decode-steps`` says); a decode of ``--resident-steps`` (256) steps from P = 16 with the whole cache resident on
the accelerator's SRAM resized to 64 MiB; and, with ``--long``, a 1024-step resident decode from P = 1 (on 256 MiB).
Each run is a fresh process, so its peak RSS is its own. Targets on a 2-core machine: cold under 10 minutes, warm
under 30 seconds. Prints figures; asserts nothing. ``--only`` runs the cases whose label contains the text.

    python scripts/bench_trace.py [--hardware hardware/trapti_edge.yaml] [--decode-steps 64] [--long] [--only TEXT]
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


def _run_case(
    hardware: str, model: str, prefill: int, decode_steps: int, decode_from: int | None, mib: float, cache: str
) -> None:
    from stream_trapti.api import TraceOptions
    from stream_trapti.hardware_variants import sram_capacity_variant
    from stream_trapti.inference import Phases, trace_inference

    start = time.perf_counter()
    result = trace_inference(
        sram_capacity_variant(hardware, round(mib * 2**20)) if mib else hardware,
        model,
        Phases(prefill, decode_steps, decode_from),
        kv_residency="resident" if mib else "streamed",
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
    parser.add_argument("--resident-steps", type=int, default=256)
    parser.add_argument("--long", action="store_true", help="also the 1024-step resident decode (hours cold)")
    parser.add_argument("--only", default="", help="run only the cases whose label contains this text")
    parser.add_argument("--case", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        hardware, model, prefill, steps, start, mib, cache = args.case
        _run_case(hardware, model, int(prefill), int(steps), int(start) or None, float(mib), cache)
        return
    cases = [
        ("GPT-2 XL prefill L=1024, 48 layers", "gpt2-xl", 1024, 0, 0, 0),
        (f"GPT-2 XL decode, {args.decode_steps} steps from P=128", "gpt2-xl", 0, args.decode_steps, 128, 0),
        (
            f"GPT-2 XL decode, {args.resident_steps} steps from P=16, resident, 64 MiB",
            "gpt2-xl",
            0,
            args.resident_steps,
            16,
            64,
        ),
    ]
    if args.long:
        cases.append(("GPT-2 XL decode, 1023 steps from P=1, resident, 256 MiB", "gpt2-xl", 0, 1023, 1, 256))
    with tempfile.TemporaryDirectory(prefix="bench-trace-") as cache:
        for label, model, prefill, steps, first, mib in cases:
            if args.only not in label:
                continue
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
                    str(mib),
                    cache,
                ]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout.strip().splitlines()
                figures = json.loads(output[-1])
                print(
                    f"{label:60s} {state}: {figures['seconds']:8.1f} s, peak RSS {figures['peak_rss_mib']:7.0f} MiB, "
                    f"{figures['cycles']:,} cycles, {figures['change_points']:,} change points",
                    flush=True,
                )


if __name__ == "__main__":
    main()
