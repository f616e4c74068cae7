"""The headline TRAPTI study: multi-head (GPT-2 XL) against grouped-query attention (DeepSeek-R1-Distill-Qwen-1.5B) on
one accelerator, across sequence lengths, with the sensitivity of its conclusions to SRAM capacity, cell flavour
and the residual leakage of a gated bank.

Every case is a whole model (full depth, LM head over the last position): a prefill of L tokens, or one decode step
over a cache of P tokens. Each is traced (Stage I) and explored (Stage II) like an experiment; the study writes
``study.json``, ``study.csv``, plots and ``report.md``.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from stream_trapti.api import TraceOptions
from stream_trapti.atomic import atomic_directory, atomic_write
from stream_trapti.errors import SolveError
from stream_trapti.experiment import jsonable
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.sram.energy import cacti_costs
from stream_trapti.sram.explore import explore
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.trace import CLASSES, OccupancyTrace, stream_sram_energy_pj
from stream_trapti.workloads.config import preset


@dataclass(frozen=True)
class Study:
    """What the study runs. ``hardware`` is the accelerator of the main comparison; ``capacity_variants`` maps an
    SRAM size (MiB) to an accelerator that differs only in it, for the capacity sensitivity, run at
    ``sensitivity_prefill``."""

    hardware: Path
    models: tuple[str, ...]
    prefill_lengths: tuple[int, ...]
    decode_past: tuple[int, ...]
    sweep: SweepSpec
    capacity_variants: dict[int, Path]
    sensitivity_prefill: int
    flavours: tuple[str, ...] = ("hp", "lstp")
    gated_leakage_fractions: tuple[float, ...] = (0.1, 0.3, 0.6, 0.9)


@dataclass(frozen=True)
class Case:
    """One measured point: a model, a step (prefill L or decode P) on an accelerator, and its figures, all of one
    memory: the one the sweep explores (``memory``, by name). ``skipped`` says why a case could not run (then the
    figures are absent)."""

    model: str
    phase: str
    length: int
    hardware: str
    skipped: str | None = None
    memory: str | None = None
    cycles: int | None = None
    stream_energy_pj: float | None = None
    peak_needed_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    peak_needed_by_class: dict[str, int] | None = None
    stream_sram_pj: float | None = None
    best_config: str | None = None
    best_total_pj: float | None = None
    best_saving: float | None = None
    best_vs_stream: float | None = None


@dataclass(frozen=True)
class Sensitivity:
    """One sensitivity of the study: the setting it varies (``key``, as in ``study.json``) and, per value of it, the
    case of each model."""

    key: str
    rows: tuple[tuple[int | float | str, Case], ...]


@dataclass(frozen=True)
class StudyResult:
    """What a study measured: the main cases (every model at every prefill and decode length) and the
    sensitivities, in the order they are reported."""

    study: Study
    cases: tuple[Case, ...]
    sensitivities: tuple[Sensitivity, ...]

    def to_json(self) -> str:
        """``study.json``: the study's settings, the cases, and per sensitivity its cases with the value varied."""
        return json.dumps(
            {
                "study": jsonable(asdict(self.study)),
                "cases": [asdict(c) for c in self.cases],
                "sensitivity": {s.key: [asdict(c) | {s.key: value} for value, c in s.rows] for s in self.sensitivities},
            },
            indent=1,
        )


def run_study(study: Study, out_dir: str | Path, options: TraceOptions | None = None) -> StudyResult:
    """Run every case of ``study`` and write its outputs into ``out_dir`` (replaced whole once written)."""
    options = options or TraceOptions()
    traces: dict[tuple[str, str, int, str], OccupancyTrace] = {}

    def case(model: str, phase: str, length: int, hardware: Path, sweep: SweepSpec = study.sweep) -> Case:
        key = (model, phase, length, str(hardware))
        base = Case(model, phase, length, str(hardware))
        if reason := _out_of_range(model, phase, length):
            return replace(base, skipped=reason)
        if key not in traces:
            phases = Phases(length) if phase == "prefill" else Phases(0, 1, decode_from=length)
            try:
                result = trace_inference(hardware, model, phases, options=options)
            except SolveError as error:
                return replace(base, skipped=str(error))
            traces[key] = result.trace
        return measure(base, traces[key], sweep)

    main = [case(m, "prefill", n, study.hardware) for m in study.models for n in study.prefill_lengths]
    main += [case(m, "decode", _decode_length(m, p), study.hardware) for m in study.models for p in study.decode_past]
    at = study.sensitivity_prefill
    capacity = [case(m, "prefill", at, hw) for mib, hw in sorted(study.capacity_variants.items()) for m in study.models]
    flavour = [
        case(m, "prefill", at, study.hardware, replace(study.sweep, flavours=(f,)))
        for f in study.flavours
        for m in study.models
    ]
    gated = [
        case(m, "prefill", at, study.hardware, replace(study.sweep, **_gated_sweep(g)))
        for g in study.gated_leakage_fractions
        for m in study.models
    ]
    capacities = _repeat(sorted(study.capacity_variants), len(study.models))
    result = StudyResult(
        study,
        tuple(main),
        (
            Sensitivity("capacity_mib", tuple(zip(capacities, capacity, strict=True))),
            Sensitivity("flavour", tuple(zip(_repeat(study.flavours, len(study.models)), flavour, strict=True))),
            Sensitivity(
                "gated_leakage_fraction",
                tuple(zip(_repeat(study.gated_leakage_fractions, len(study.models)), gated, strict=True)),
            ),
        ),
    )
    with atomic_directory(out_dir) as staging:
        (staging / "study.json").write_text(result.to_json())
        atomic_write(staging / "study.csv", _csv(main).encode())
        _plot_scaling(main, study.models, staging / "scaling.png")
        for (model, phase, length, hardware), trace in traces.items():
            if hardware == str(study.hardware):
                trace.save(staging / "traces" / f"{model}_{phase}{length}.npz")
        (staging / "report.md").write_text(render_study_report(result))
    return result


def measure(base: Case, trace: OccupancyTrace, sweep: SweepSpec) -> Case:
    """A case's figures from its trace and an exploration of the sweep's memory, the memory all its figures are
    of."""
    m = trace.memory_index(sweep.memory)
    result = explore(trace, sweep, cacti_costs, stream_estimate_pj=stream_sram_energy_pj(trace, m))
    best = result.configs[result.best["energy"]]
    timeout = f" τ={best.timeout_cycles}" if best.timeout_cycles is not None else ""
    stream = result.stream_estimate_pj
    return replace(
        base,
        memory=result.memory,
        cycles=trace.cycles,
        stream_energy_pj=float(trace.metadata["stream_energy_pj"]),
        peak_needed_bytes=trace.peak(m, "needed")[0],
        peak_reserved_bytes=trace.peak(m, "reserved")[0],
        peak_needed_by_class={c: trace.peak(m, "needed", c)[0] for c in CLASSES},
        stream_sram_pj=stream,
        best_config=f"{best.bank_count} banks, {best.policy}{timeout}, {best.flavour}/{best.gating_mode}",
        best_total_pj=best.total_pj,
        best_saving=best.saving,
        best_vs_stream=best.total_pj / stream if stream else None,
    )


def _gated_sweep(fraction: float) -> dict[str, Any]:
    """The sweep keys of the gated-leakage sensitivity: retention mode on high-performance cells, whose leakage is
    large enough for the residual to matter."""
    return {"flavours": ("hp",), "gating_modes": ("retention",), "gated_leakage_fraction": fraction}


def _out_of_range(model: str, phase: str, length: int) -> str | None:
    """Why a model cannot run a step of this length, or None."""
    limit = preset(model).max_positions
    needed = length if phase == "prefill" else length + 1
    if needed > limit:
        return f"{model} has {limit} positions; {phase} at {length} needs {needed}"
    return None


def _decode_length(model: str, past: int) -> int:
    """The cache length of a decode step: ``past``, or the longest the model's positions allow."""
    return min(past, preset(model).max_positions - 1)


def _repeat(values: Sequence, times: int) -> list:
    return [v for v in values for _ in range(times)]


def _csv(cases: Sequence[Case]) -> str:
    text = io.StringIO()
    rows = [asdict(c) for c in cases]
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


def _plot_scaling(cases: Sequence[Case], models: Sequence[str], path: Path) -> None:
    """Peak needed bytes, cycles and best SRAM saving against the prefill length, one line per model, each axis from
    zero so that the lines' gaps read as ratios."""
    figure = Figure(figsize=(14, 4))
    axes = figure.subplots(1, 3)
    panels: list[tuple[str, Callable[[Case], float]]] = [
        (f"peak needed in {_memory(cases)} (MiB)", lambda c: c.peak_needed_bytes / 2**20),
        ("cycles (10⁹)", lambda c: c.cycles / 1e9),
        ("best SRAM saving vs always-on (%)", lambda c: 100 * c.best_saving),
    ]
    for axis, (label, value) in zip(axes, panels, strict=True):
        top = 0.0
        for model in models:
            points = [c for c in cases if c.model == model and c.phase == "prefill" and c.skipped is None]
            values = [value(c) for c in points]
            axis.plot([c.length for c in points], values, marker="o", label=model)
            top = max([top, *values])
        axis.set_xscale("log", base=2)
        axis.set_ylim(0, 1.1 * top or 1)
        axis.set_xlabel("prefill length L")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


_SENSITIVITY_TITLES = {
    "capacity_mib": "SRAM capacity (MiB)",
    "flavour": "cell and periphery flavour",
    "gated_leakage_fraction": "residual leakage of a gated bank (fraction of powered leakage; hp cells, retention)",
}


def render_study_report(result: StudyResult) -> str:
    """The study's ``report.md``."""
    models = result.study.models
    lines = [
        "# MHA against GQA on one accelerator",
        "",
        f"Accelerator `{result.study.hardware}`; models {', '.join(models)}, full depth, LM head over the last "
        "position, Stream's generic mapping with one fused group per operator. Occupancy and SRAM figures are of "
        f"memory `{_memory(result.cases)}`, the one the sweep explores.",
        "",
        "## Headline",
        "",
        _table(result.cases),
        "",
        _ratios(result.cases, models),
        "",
        "![scaling with the prefill length](scaling.png)",
        "",
        "## Sensitivity",
    ]
    for sensitivity in result.sensitivities:
        key = sensitivity.key
        lines += ["", f"### {_SENSITIVITY_TITLES[key]}", "", f"| {key} | " + _header()[2:], _rule(1)]
        lines += [f"| {value} " + _row(case) for value, case in sensitivity.rows]
    return "\n".join(lines) + "\n"


def _memory(cases: Sequence[Case]) -> str:
    """The memory the cases measure: the sweep's, the same in every case that ran."""
    return next((c.memory for c in cases if c.memory), "n/a")


def _header() -> str:
    return (
        "| model | step | cycles | peak needed (MiB) | peak reserved (MiB) | peak KV cache needed (MiB) | best SRAM "
        "| saving vs always-on | best / Stream's SRAM estimate |"
    )


def _rule(extra: int = 0) -> str:
    return "|" + "---|" * (9 + extra)


def _row(c: Case) -> str:
    step = f"{c.phase} {'L' if c.phase == 'prefill' else 'P'}={c.length}"
    if c.skipped:
        return f"| {c.model} | {step} | skipped: {c.skipped} | | | | | | |"
    kv = c.peak_needed_by_class["kv_cache"] / 2**20
    ratio = f"{c.best_vs_stream:.2f}" if c.best_vs_stream else "n/a"
    return (
        f"| {c.model} | {step} | {c.cycles:,} | {c.peak_needed_bytes / 2**20:.3f} "
        f"| {c.peak_reserved_bytes / 2**20:.3f} "
        f"| {kv:.3f} | {c.best_config} | {c.best_saving:.1%} | {ratio} |"
    )


def _table(cases: Sequence[Case]) -> str:
    return "\n".join([_header(), _rule(), *(_row(c) for c in cases)])


def _ratios(cases: Sequence[Case], models: Sequence[str]) -> str:
    """Per step, the first model's peak and cycles over the second's."""
    if len(models) != 2:
        return ""
    by = {(c.model, c.phase, c.length): c for c in cases if not c.skipped}
    lines = ["| step | peak needed ratio | peak reserved ratio | cycles ratio |", "|---|---:|---:|---:|"]
    steps = sorted({(c.phase, c.length) for c in cases}, key=lambda s: (s[0] != "prefill", s[1]))
    for phase, length in steps:
        a = by.get((models[0], phase, length)) or by.get((models[0], phase, length - 1))
        b = by.get((models[1], phase, length))
        if a and b:
            lines.append(
                f"| {phase} {length} | {a.peak_needed_bytes / b.peak_needed_bytes:.2f} "
                f"| {a.peak_reserved_bytes / b.peak_reserved_bytes:.2f} | {a.cycles / b.cycles:.2f} |"
            )
    return f"Ratios {models[0]} / {models[1]}:\n\n" + "\n".join(lines)
