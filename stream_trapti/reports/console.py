"""An experiment's headline figures, printed."""

from __future__ import annotations

from stream_trapti.reports.roofline import BOUND_LABELS, BOUNDS
from stream_trapti.summary import ExperimentSummary

MIB = 2**20


def print_summary(summary: ExperimentSummary) -> None:
    """Print each workload's cycles, energy, peak occupancy of every memory and best SRAM organisation of the swept
    memory, then the comparison of the swept memories' peaks."""
    workloads = summary.workloads
    for name, w in workloads.items():
        print(f"\n{name}: {w.trace.cycles:,} cycles, Stream energy {w.trace.stream_energy_pj / 1e6:,.1f} µJ")
        for memory in w.trace.memories:
            needed, reserved = memory.peak_needed_bytes, memory.peak_reserved_bytes
            print(
                f"  {memory.name}: peak reserved {reserved / MIB:.3f} MiB, peak needed {needed / MIB:.3f} MiB "
                f"(needed/reserved {needed / reserved:.2f}) of {memory.capacity_bytes / MIB:.0f} MiB; "
                f"needed peaks in {memory.peak_needed_group}"
            )
        roofline = w.trace.roofline
        if roofline.utilisation is not None and roofline.cycles:
            shares = ", ".join(
                f"{BOUND_LABELS[b]} {roofline.cycles_by_bound.get(b, 0) / roofline.cycles:.0%}" for b in BOUNDS
            )
            print(
                f"  roofline: {roofline.macs:,} MACs at {roofline.utilisation:.2%} of {roofline.peak_macs_per_cycle:,}"
                f" MACs/cycle; {roofline.bound_cycles:,} cycles at every group's nearest bound; Stream's cycles by "
                f"nearest bound: {shares}"
            )
        best = w.sram.best_energy
        timeout = f", timeout {best.timeout_cycles:,} cycles" if best.timeout_cycles is not None else ""
        print(
            f"  best SRAM: {best.bank_count} banks, {best.policy}{timeout}, {best.flavour} cells, "
            f"{best.gating_mode}: {best.total_pj / 1e6:,.1f} µJ, {best.saving:.1%} less than the monolithic "
            f"always-on {best.flavour} SRAM ({best.baseline_pj / 1e6:,.1f} µJ), area {best.area_mm2:.2f} mm², "
            f"latency penalty {best.penalty_cycles:,} cycles"
        )
        if w.sram.stream_estimate_pj:
            print(
                "  Stream's own estimate of the same SRAM (monolithic, no leakage): "
                f"{w.sram.stream_estimate_pj / 1e6:,.1f} µJ"
            )
    if len(workloads) == 2:
        (a, wa), (b, wb) = workloads.items()
        print(
            f"\n{a} / {b}: peak needed "
            f"{wa.memory.peak_needed_bytes / wb.memory.peak_needed_bytes:.2f}x, peak reserved "
            f"{wa.memory.peak_reserved_bytes / wb.memory.peak_reserved_bytes:.2f}x, cycles "
            f"{wa.trace.cycles / wb.trace.cycles:.2f}x"
        )
