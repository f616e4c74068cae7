"""An experiment's headline figures, printed."""

from __future__ import annotations

from typing import Any

MIB = 2**20


def print_summary(summary: dict[str, Any]) -> None:
    """Print each workload's cycles, energy, peak occupancy and best SRAM organisation, then the comparison."""
    workloads = summary["workloads"]
    for name, w in workloads.items():
        trace, sram = w["trace"], w["sram"]
        print(f"\n{name}: {trace['cycles']:,} cycles, Stream energy {trace['stream_energy_pj'] / 1e6:,.1f} µJ")
        for memory in trace["memories"]:
            needed, reserved = memory["peak_needed_bytes"], memory["peak_reserved_bytes"]
            print(
                f"  {memory['name']}: peak reserved {reserved / MIB:.3f} MiB, peak needed {needed / MIB:.3f} MiB "
                f"(needed/reserved {needed / reserved:.2f}) of {memory['capacity_bytes'] / MIB:.0f} MiB; "
                f"needed peaks in {memory['peak_needed_group']}"
            )
        best = sram["best"]["energy"]
        timeout = f", timeout {best['timeout_cycles']:,} cycles" if best["timeout_cycles"] is not None else ""
        print(
            f"  best SRAM: {best['bank_count']} banks, {best['policy']}{timeout}, {best['flavour']} cells, "
            f"{best['gating_mode']}: {best['total_pj'] / 1e6:,.1f} µJ, {best['saving']:.1%} less than the monolithic "
            f"always-on {best['flavour']} SRAM ({best['baseline_pj'] / 1e6:,.1f} µJ), area {best['area_mm2']:.2f} mm², "
            f"latency penalty {best['penalty_cycles']:,} cycles"
        )
        if sram["stream_estimate_pj"]:
            print(
                "  Stream's own estimate of the same SRAM (monolithic, no leakage): "
                f"{sram['stream_estimate_pj'] / 1e6:,.1f} µJ"
            )
    if len(workloads) == 2:
        (a, wa), (b, wb) = workloads.items()
        ma, mb = wa["trace"]["memories"][0], wb["trace"]["memories"][0]
        print(
            f"\n{a} / {b}: peak needed {ma['peak_needed_bytes'] / mb['peak_needed_bytes']:.2f}x, peak reserved "
            f"{ma['peak_reserved_bytes'] / mb['peak_reserved_bytes']:.2f}x, cycles "
            f"{wa['trace']['cycles'] / wb['trace']['cycles']:.2f}x"
        )
