"""``report.md`` of an experiment: its figures in tables, its plots embedded, rendered from its summary."""

from __future__ import annotations

from pathlib import Path

from stream_trapti.atomic import atomic_write
from stream_trapti.errors import InputFileError
from stream_trapti.reports.roofline import BOUND_LABELS, BOUNDS, short_name
from stream_trapti.sram.explore import ConfigResult
from stream_trapti.summary import ExperimentRecord, ExperimentSummary, RooflineFigures, WorkloadSummary
from stream_trapti.trace import CLASSES

MIB = 2**20


def write_report(summary: ExperimentSummary, out_dir: str | Path) -> Path:
    """Write ``report.md`` for the experiment ``summary`` into ``out_dir``, whose plots it links to."""
    return atomic_write(Path(out_dir) / "report.md", render_report(summary).encode())


def rewrite_report(out_dir: str | Path) -> Path:
    """Regenerate ``report.md`` of an experiment directory from its ``summary.json``."""
    path = Path(out_dir) / "summary.json"
    if not path.is_file():
        raise InputFileError(f"{out_dir}: no summary.json; is it the output directory of an experiment?")
    return write_report(ExperimentSummary.load(path), out_dir)


def render_report(summary: ExperimentSummary) -> str:
    """The report's markdown. Each workload's figures are those of the memory its SRAM exploration swept."""
    experiment, workloads = summary.experiment, summary.workloads
    lines = [
        f"# TRAPTI experiment `{experiment.experiment_id}`",
        "",
        f"Hardware `{experiment.hardware}`; {_workloads_line(experiment)}; "
        f"SRAM sweep `{experiment.sweep or 'defaults'}`.",
        "",
        "## Summary",
        "",
        "| workload | cycles | Stream energy (µJ) | peak reserved (MiB) | peak needed (MiB) | needed / reserved "
        "| best SRAM | saving vs always-on | best / Stream's SRAM estimate |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, w in workloads.items():
        memory, best, ratio = w.memory, w.sram.best_energy, w.sram.best_vs_stream
        lines.append(
            f"| {name} | {w.trace.cycles:,} | {w.trace.stream_energy_pj / 1e6:,.1f} "
            f"| {memory.peak_reserved_bytes / MIB:.3f} | {memory.peak_needed_bytes / MIB:.3f} "
            f"| {_ratio(memory.peak_needed_bytes, memory.peak_reserved_bytes)} | {_config(best)} "
            f"| {best.saving:.1%} | {f'{ratio:.2f}' if ratio else 'n/a'} |"
        )
    if len(workloads) == 2:
        (a, wa), (b, wb) = workloads.items()
        lines += [
            "",
            f"{a} / {b}: peak needed {_ratio(wa.memory.peak_needed_bytes, wb.memory.peak_needed_bytes)}×, peak "
            f"reserved {_ratio(wa.memory.peak_reserved_bytes, wb.memory.peak_reserved_bytes)}×, cycles "
            f"{_ratio(wa.trace.cycles, wb.trace.cycles)}×.",
        ]
    for name, w in workloads.items():
        lines += _workload_section(name, w)
    return "\n".join(lines) + "\n"


def _workloads_line(experiment: ExperimentRecord) -> str:
    """What ran: the presets and the shape of their inference, or the ONNX workload as given."""
    if not experiment.models:
        mapping = f"mapping `{experiment.mapping}`" if experiment.mapping else "Stream's generic mapping"
        return f"workload `{experiment.onnx}` as given, {mapping}"
    layers = experiment.layers or "all"
    return (
        f"models {', '.join(experiment.models)}; prefill L = {experiment.prefill}, "
        f"{experiment.decode_steps} decode steps, {layers} layers, {experiment.precision_bits}-bit"
    )


def _workload_section(name: str, w: WorkloadSummary) -> list[str]:
    memory, sram = w.memory, w.sram
    lines = [
        "",
        f"## {name}",
        "",
        f"Memory `{memory.name}` (cores {', '.join(map(str, memory.core_ids))}), "
        f"{memory.capacity_bytes / MIB:.0f} MiB. The needed bytes peak at cycle {memory.peak_needed_cycle:,} in "
        f"group `{memory.peak_needed_group}`; the reserved bytes at cycle {memory.peak_reserved_cycle:,} in "
        f"`{memory.peak_reserved_group}`.",
        "",
        "| class | peak reserved (MiB) | peak needed (MiB) |",
        "|---|---:|---:|",
        *(
            f"| {c} | {memory.peak_reserved_by_class[c] / MIB:.3f} | {memory.peak_needed_by_class[c] / MIB:.3f} |"
            for c in CLASSES
        ),
        "",
        "Largest tensors at their most concurrent (needed view): "
        + ", ".join(f"`{t.tensor}` {t.bytes / MIB:.3f} MiB" for t in memory.top_needed_tensors[:4])
        + ".",
        "",
        f"![occupancy of {name}]({name}/trace/occupancy.png)",
        "",
        *_roofline_section(name, w.trace.roofline),
        f"### Banked, power-gated SRAM ({sram.configurations} configurations, {sram.pareto_size} on the Pareto front)",
        "",
        "| objective | configuration | energy (µJ) | saving vs always-on | area (mm²) | latency penalty (cycles) |",
        "|---|---|---:|---:|---:|---:|",
        *(
            f"| {objective} | {_config(c)} | {c.total_pj / 1e6:,.1f} | {c.saving:.1%} | {c.area_mm2:.2f} "
            f"| {c.penalty_cycles:,} |"
            for objective, c in sram.best.items()
        ),
        "",
    ]
    if sram.stream_estimate_pj:
        lines += [
            f"Stream's own estimate of this SRAM (its accesses at the hardware YAML's per-access energies, one "
            f"monolithic macro, no leakage): {sram.stream_estimate_pj / 1e6:,.1f} µJ.",
            "",
        ]
    lines += [
        f"![bank activity of {name}]({name}/sram/bank_heatmap.png)",
        f"![energy breakdown of {name}]({name}/sram/energy_breakdown.png)",
        f"![Pareto front of {name}]({name}/sram/pareto.png)",
    ]
    return lines


def _roofline_section(name: str, roofline: RooflineFigures) -> list[str]:
    """The roofline table: per group its cycles against its compute, SRAM-port and DRAM bounds, and which binds."""
    cycles = roofline.cycles
    utilisation = f"{roofline.utilisation:.2%}" if roofline.utilisation is not None else "n/a"
    shares = ", ".join(
        f"{BOUND_LABELS[b]} {roofline.cycles_by_bound.get(b, 0) / cycles:.1%}" if cycles else BOUND_LABELS[b]
        for b in BOUNDS
    )
    return [
        "### Roofline per group",
        "",
        f"{cycles:,} cycles for {roofline.macs:,} MACs on {roofline.peak_macs_per_cycle:,} MACs per cycle: MAC "
        f"utilisation {utilisation}. At its nearest bound every group would take {roofline.bound_cycles:,} cycles "
        f"({_ratio(cycles, roofline.bound_cycles)}× fewer). Stream's cycles by the bound nearest them: {shares}. "
        "Compute: the busiest core at full use of its PEs; ZigZag: what ZigZag gives that core's nodes, the core alone "
        "at its memory ports; SRAM port and DRAM: the bits through the busiest port over its rate (README, Roofline).",
        "",
        "| group | × | nodes | cores | MACs (M) | compute | ZigZag | SRAM port | DRAM (MiB) | DRAM | Stream "
        "| nearest bound | Stream / bound |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
        *(
            f"| `{short_name(r.group)}` | {r.count} | {r.nodes} | {' '.join(map(str, r.cores))} "
            f"| {r.macs / 1e6:,.1f} | {r.compute_cycles:,} | {r.zigzag_cycles:,} | {r.sram_port_cycles:,} "
            f"| {r.dram_bytes / MIB:,.2f} | {r.dram_cycles:,} | {r.stream_cycles:,} | {BOUND_LABELS[r.bound]} "
            f"| {f'{r.slack:.2f}' if r.slack is not None else 'n/a'} |"
            for r in roofline.rows
        ),
        "",
        f"![roofline of {name}]({name}/trace/roofline.png)",
        "",
    ]


def _config(c: ConfigResult) -> str:
    timeout = f" τ={c.timeout_cycles:,}" if c.timeout_cycles is not None else ""
    return f"{c.bank_count} banks, {c.policy}{timeout}, {c.flavour}/{c.gating_mode}"


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "n/a"
