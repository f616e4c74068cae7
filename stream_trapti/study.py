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

from stream_trapti.api import TraceOptions, TraceResult, explore_result
from stream_trapti.atomic import atomic_directory, atomic_write
from stream_trapti.errors import SolveError
from stream_trapti.experiment import jsonable
from stream_trapti.fusion import Fusion
from stream_trapti.hardware_variants import sram_capacity_variant
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.provenance import hardware_identity
from stream_trapti.reports.trace_outputs import write_trace_outputs
from stream_trapti.residency import KvResidency
from stream_trapti.sram.energy import cacti_costs
from stream_trapti.sram.explore import explore
from stream_trapti.sram.sweep_config import SweepSpec, check_sweep_memory
from stream_trapti.trace import CLASSES, stream_sram_energy_pj
from stream_trapti.tracker.inputs import hardware_memories
from stream_trapti.workloads.analytics import kv_cache_bytes
from stream_trapti.workloads.config import preset


@dataclass(frozen=True)
class Growth:
    """A decode traced step by step with its cache resident, for the plots of occupancy and banks over time: ``model``
    from a cache of ``past`` positions for ``steps`` steps, on ``hardware``'s SRAM resized to ``capacity_mib``; its
    banks are explored with high-performance cells, whose leakage makes gating pay."""

    model: str
    past: int
    steps: int
    capacity_mib: float


@dataclass(frozen=True)
class Study:
    """What the study runs. Every model runs every decode cache length on ``hardware`` and on ``hardware``'s SRAM
    resized to each of ``capacities_mib`` (variants priced by CACTI), and every prefill length on those of
    ``prefill_capacities_mib`` (None: the same), under each KV residency policy; ``growth`` is traced step by step
    for the plots. Each step of ``schedule_steps`` (phase, length) also runs on ``hardware`` under every fused
    schedule of ``schedules`` (:mod:`stream_trapti.fusion`) and policy of ``schedule_policies``. The flavour and
    gated-leakage sensitivities run at ``sensitivity_prefill`` on ``hardware`` with the cache streamed."""

    hardware: Path
    models: tuple[str, ...]
    prefill_lengths: tuple[int, ...]
    decode_past: tuple[int, ...]
    sweep: SweepSpec
    sensitivity_prefill: int
    policies: tuple[KvResidency, ...] = ("streamed", "resident", "fit")
    capacities_mib: tuple[float, ...] = ()
    prefill_capacities_mib: tuple[float, ...] | None = None
    growth: Growth | None = None
    flavours: tuple[str, ...] = ("hp", "lstp")
    gated_leakage_fractions: tuple[float, ...] = (0.1, 0.3, 0.6, 0.9)
    schedules: tuple[Fusion, ...] = ()
    schedule_steps: tuple[tuple[str, int], ...] = ()
    schedule_policies: tuple[KvResidency, ...] = ("streamed", "resident")


@dataclass(frozen=True)
class Case:
    """One measured point: a model, a KV residency policy, an SRAM capacity, a step (prefill L or decode P), the
    fused schedule (``fusion``), and its figures, all of one memory: the one the sweep explores (``memory``, by
    name). ``skipped`` says why a case could not run (then the figures are absent). ``total_energy_pj`` is Stream's
    energy plus the static part (leakage, wake-ups, stalls) of the best SRAM organisation."""

    model: str
    policy: str
    capacity_mib: float
    phase: str
    length: int
    hardware: str
    fusion: str = "committed"
    skipped: str | None = None
    memory: str | None = None
    cycles: int | None = None
    stream_energy_pj: float | None = None
    dram_bytes: int | None = None
    dram_kv_bytes: int | None = None
    peak_needed_bytes: int | None = None
    peak_reserved_bytes: int | None = None
    peak_needed_by_class: dict[str, int] | None = None
    stream_sram_pj: float | None = None
    best_config: str | None = None
    best_total_pj: float | None = None
    best_saving: float | None = None
    best_vs_stream: float | None = None
    total_energy_pj: float | None = None

    @property
    def point(self) -> tuple[str, float, str, str]:
        """Where the case sits in the grid, whatever the model and length: policy, capacity, phase and schedule."""
        return (self.policy, self.capacity_mib, self.phase, self.fusion)


@dataclass(frozen=True)
class Sensitivity:
    """One sensitivity of the study: the setting it varies (``key``, as in ``study.json``) and, per value of it, the
    case of each model."""

    key: str
    rows: tuple[tuple[int | float | str, Case], ...]


@dataclass(frozen=True)
class StudyResult:
    """What a study measured: the main cases (every model, policy, capacity and step), the sensitivities, and the
    cases of the fused schedules (``schedule``), in the order they are reported."""

    study: Study
    cases: tuple[Case, ...]
    sensitivities: tuple[Sensitivity, ...]
    schedule: tuple[Case, ...] = ()

    def to_json(self) -> str:
        """``study.json``: the study's settings, the cases, and per sensitivity its cases with the value varied."""
        return json.dumps(
            {
                "study": jsonable(asdict(self.study)),
                "cases": [asdict(c) for c in self.cases],
                "sensitivity": {s.key: [asdict(c) | {s.key: value} for value, c in s.rows] for s in self.sensitivities},
                "schedule": [asdict(c) for c in self.schedule],
            },
            indent=1,
        )


def run_study(study: Study, out_dir: str | Path, options: TraceOptions | None = None) -> StudyResult:
    """Run every case of ``study`` and write its outputs into ``out_dir`` (replaced whole once written)."""
    options = options or TraceOptions()
    swept = check_sweep_memory(study.sweep, hardware_memories(study.hardware), "the study's sweep")
    base_mib = swept.capacity_bytes / 2**20
    traces: dict[tuple[str, str, float, str, int, str], TraceResult] = {}
    variants = {base_mib: study.hardware} | {
        mib: sram_capacity_variant(study.hardware, round(mib * 2**20))
        for mib in study.capacities_mib
        if mib != base_mib
    }

    def case(
        model: str,
        policy: str,
        mib: float,
        phase: str,
        length: int,
        sweep: SweepSpec = study.sweep,
        fusion: Fusion = "committed",
    ) -> Case:
        hardware = variants[mib]
        base = Case(model, policy, mib, phase, length, hardware_identity(hardware), fusion)
        if reason := _out_of_range(model, phase, length):
            return replace(base, skipped=reason)
        key = (model, policy, mib, phase, length, fusion)
        if key not in traces:
            phases = Phases(length) if phase == "prefill" else Phases(0, 1, decode_from=length)
            try:
                traced = trace_inference(hardware, model, phases, kv_residency=policy, fusion=fusion, options=options)
                traces[key] = replace(traced, groups=())  # the trace and Stream's figures are all a case reads
            except SolveError as error:
                return replace(base, skipped=str(error))
        return measure(base, traces[key], sweep)

    main = [
        case(m, policy, mib, "prefill", n)
        for n in study.prefill_lengths
        for mib in sorted(variants)
        if study.prefill_capacities_mib is None or mib in (base_mib, *study.prefill_capacities_mib)
        for policy in study.policies
        for m in study.models
    ]
    main += [
        case(m, policy, mib, "decode", _decode_length(m, p))
        for p in study.decode_past
        for mib in sorted(variants)
        for policy in study.policies
        for m in study.models
    ]
    schedule = [
        case(m, policy, base_mib, phase, _decode_length(m, n) if phase == "decode" else n, fusion=fusion)
        for phase, n in study.schedule_steps
        for fusion in study.schedules
        for policy in study.schedule_policies
        for m in study.models
    ]
    at = study.sensitivity_prefill
    flavour = [
        case(m, "streamed", base_mib, "prefill", at, replace(study.sweep, flavours=(f,)))
        for f in study.flavours
        for m in study.models
    ]
    gated = [
        case(m, "streamed", base_mib, "prefill", at, replace(study.sweep, **_gated_sweep(g)))
        for g in study.gated_leakage_fractions
        for m in study.models
    ]
    growth = _trace_growth(study, options) if study.growth else None
    result = StudyResult(
        study,
        tuple(main),
        (
            Sensitivity("flavour", tuple(zip(_repeat(study.flavours, len(study.models)), flavour, strict=True))),
            Sensitivity(
                "gated_leakage_fraction",
                tuple(zip(_repeat(study.gated_leakage_fractions, len(study.models)), gated, strict=True)),
            ),
        ),
        tuple(schedule),
    )
    with atomic_directory(out_dir) as staging:
        (staging / "study.json").write_text(result.to_json())
        atomic_write(staging / "study.csv", _csv([*main, *schedule]).encode())
        _plot_scaling([c for c in main if c.capacity_mib == base_mib], study.models, staging / "scaling.png")
        _plot_ratio(main, study.models, staging / "ratio.png")
        for (model, policy, mib, phase, length, fusion), traced in traces.items():
            if mib == base_mib:
                scope = "" if fusion == "committed" else f"_{fusion}"
                traced.trace.save(staging / "traces" / f"{model}_{policy}_{phase}{length}{scope}.npz")
        if growth is not None:
            write_trace_outputs(growth, staging / "growth" / "trace")
            explore_result(growth, replace(study.sweep, flavours=("hp",)), staging / "growth" / "sram")
        (staging / "report.md").write_text(render_study_report(result, growth is not None))
    return result


def _trace_growth(study: Study, options: TraceOptions) -> TraceResult:
    """The study's growth decode, traced with its cache resident."""
    assert study.growth is not None
    g = study.growth
    hardware = sram_capacity_variant(study.hardware, round(g.capacity_mib * 2**20))
    phases = Phases(0, g.steps, decode_from=g.past)
    return trace_inference(hardware, g.model, phases, kv_residency="resident", options=options)


def measure(base: Case, result: TraceResult, sweep: SweepSpec) -> Case:
    """A case's figures from its trace and an exploration of the sweep's memory, the memory all its figures are
    of."""
    return replace(base, **measured_figures(result, sweep))


def measured_figures(result: TraceResult, sweep: SweepSpec) -> dict[str, Any]:
    """The figures of a :class:`Case` (its fields from ``memory`` on) of a traced inference: Stream's, the peaks of
    the sweep's memory, and the best organisation of an exploration of that memory."""
    trace = result.trace
    m = trace.memory_index(sweep.memory)
    explored = explore(trace, sweep, cacti_costs, stream_estimate_pj=stream_sram_energy_pj(trace, m))
    best = explored.configs[explored.best["energy"]]
    timeout = f" τ={best.timeout_cycles}" if best.timeout_cycles is not None else ""
    stream = explored.stream_estimate_pj
    return dict(
        memory=explored.memory,
        cycles=trace.cycles,
        stream_energy_pj=result.stream.energy_pj,
        dram_bytes=result.stream.dram_total_bytes,
        dram_kv_bytes=sum(result.stream.dram_bytes["kv_cache"]),
        peak_needed_bytes=trace.peak(m, "needed")[0],
        peak_reserved_bytes=trace.peak(m, "reserved")[0],
        peak_needed_by_class={c: trace.peak(m, "needed", c)[0] for c in CLASSES},
        stream_sram_pj=stream,
        best_config=f"{best.bank_count} banks, {best.policy}{timeout}, {best.flavour}/{best.gating_mode}",
        best_total_pj=best.total_pj,
        best_saving=best.saving,
        best_vs_stream=best.total_pj / stream if stream else None,
        total_energy_pj=result.stream.energy_pj + best.total_pj - best.dynamic_pj,
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
    """Peak needed bytes, cycles and best SRAM saving against the prefill length, one line per model and policy (one
    SRAM capacity in ``cases``), each axis from zero so that the lines' gaps read as ratios."""
    figure = Figure(figsize=(14, 4))
    axes = figure.subplots(1, 3)
    panels: list[tuple[str, Callable[[Case], float]]] = [
        (f"peak needed in {_memory(cases)} (MiB)", lambda c: c.peak_needed_bytes / 2**20),
        ("cycles (10⁹)", lambda c: c.cycles / 1e9),
        ("best SRAM saving vs always-on (%)", lambda c: 100 * c.best_saving),
    ]
    policies = list(dict.fromkeys(c.policy for c in cases))
    for axis, (label, value) in zip(axes, panels, strict=True):
        top = 0.0
        for model in models:
            for policy in policies:
                points = [
                    c for c in cases if (c.model, c.policy, c.phase) == (model, policy, "prefill") and not c.skipped
                ]
                values = [value(c) for c in points]
                axis.plot([c.length for c in points], values, marker="o", label=f"{model}, {policy}")
                top = max([top, *values])
        axis.set_xscale("log", base=2)
        axis.set_ylim(0, 1.1 * top or 1)
        axis.set_xlabel("prefill length L")
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _plot_ratio(cases: Sequence[Case], models: Sequence[str], path: Path) -> None:
    """The first model's peak needed over the second's against the decode cache length: one panel per policy, one
    line per capacity, and the ratio of the two models' caches per token for reference."""
    series = _ratio_series(cases, models)
    policies = list(dict.fromkeys(policy for policy, _ in series)) or ["streamed"]
    figure = Figure(figsize=(5 * len(policies), 4.2))
    axes = figure.subplots(1, len(policies), squeeze=False, sharey=True)[0]
    capacities = sorted({mib for _, mib in series})
    for axis, policy in zip(axes, policies, strict=True):
        for (of, mib), points in series.items():
            if of == policy:  # one colour per capacity across the panels
                colour = f"C{capacities.index(mib)}"
                axis.plot(*zip(*points, strict=True), marker="o", color=colour, label=f"{mib:g} MiB")
        if len(models) == 2:
            per_token = [preset(m).layers * kv_cache_bytes(preset(m), 1) for m in models]
            axis.axhline(per_token[0] / per_token[1], color="grey", linestyle=":", label="caches per token")
        axis.axhline(1, color="black", linewidth=0.6)
        axis.set_xscale("log", base=2)
        axis.set_yscale("log", base=2)
        axis.set_title(f"KV cache {policy}")
        axis.set_xlabel("decode cache length P")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    axes[0].set_ylabel(f"peak needed, {' / '.join(models[:2])}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _ratio_series(
    cases: Sequence[Case], models: Sequence[str], phase: str = "decode"
) -> dict[tuple[str, float], list[tuple[int, float]]]:
    """Per policy and capacity, (L or P, ratio of peak needed) of every length of ``phase`` both models ran."""
    series: dict[tuple[str, float], list[tuple[int, float]]] = {}
    for c in cases:
        if c.phase == phase and c.model == models[0] and (ratio := _peak_ratio(cases, models, c)) is not None:
            series.setdefault((c.policy, c.capacity_mib), []).append((c.length, ratio))
    return series


def _peak_ratio(cases: Sequence[Case], models: Sequence[str], case: Case) -> float | None:
    """The first model's peak needed over the second's at ``case``'s point of the grid (a decode P of the first
    model pairs with the second's nearest P: GPT-2 XL stops at 1023), or None when either did not run."""
    if len(models) != 2:
        return None
    found = {}
    for c in cases:
        if c.skipped is None and c.point == case.point and abs(c.length - case.length) <= (c.phase == "decode"):
            found.setdefault(c.model, c)
    if len(found) != 2 or not (a := found.get(models[0])) or not (b := found.get(models[1])):
        return None
    return a.peak_needed_bytes / b.peak_needed_bytes


_SENSITIVITY_TITLES = {
    "flavour": "cell and periphery flavour",
    "gated_leakage_fraction": "residual leakage of a gated bank (fraction of powered leakage; hp cells, retention)",
}


def render_study_report(result: StudyResult, growth: bool = False) -> str:
    """The study's ``report.md``."""
    study, cases, models = result.study, result.cases, result.study.models
    prefill = [c for c in cases if c.phase == "prefill"]
    decode = [c for c in cases if c.phase == "decode"]
    lines = [
        "# MHA against GQA on one accelerator",
        "",
        f"Accelerator `{study.hardware}`; models {', '.join(models)}, full depth, LM head over the last position, "
        "Stream's generic mapping with one fused group per operator. KV residency policies "
        f"{', '.join(study.policies)} (see the README's *KV-cache residency*). Occupancy and SRAM figures are of "
        f"memory `{_memory(cases)}`, the one the sweep explores. The ratio column is {models[0]} over "
        f"{models[-1]}'s peak needed at the same policy, capacity and step. Total energy is Stream's plus the static "
        "part (leakage, wake-ups, stalls) of the best SRAM organisation.",
        "",
        "## Prefill",
        "",
        _table(prefill, cases, models),
        "",
        "### The peak-needed ratio",
        "",
        _ratio_pivot(prefill, models, "prefill"),
        "",
        "![scaling with the prefill length](scaling.png)",
        "",
        "## Decode across SRAM capacities",
        "",
        _table(decode, cases, models),
        "",
        "### The peak-needed ratio",
        "",
        _ratio_pivot(decode, models),
        "",
        "![ratio against P](ratio.png)",
        "",
        "### The smallest SRAM that keeps the cache resident",
        "",
        _smallest_resident(decode, models),
        "",
        "### What residency saves",
        "",
        _residency_savings(cases),
    ]
    if growth and study.growth:
        g = study.growth
        lines += [
            "",
            f"## A decode with its cache resident: {g.model}, P = {g.past}…{g.past + g.steps - 1}, "
            f"{g.capacity_mib:g} MiB",
            "",
            "![occupancy](growth/trace/occupancy.png)",
            "",
            "Banks of the best organisation with high-performance cells (whose leakage makes gating pay), busy and "
            "powered, as the cache grows:",
            "",
            "![banks](growth/sram/bank_heatmap.png)",
        ]
    if result.schedule:
        lines += ["", "## Fused schedules", "", _SCHEDULES_TEXT, "", "| schedule | " + _header()[2:], _rule(1)]
        lines += [f"| {c.fusion} " + _row(c, result.schedule, models) for c in result.schedule]
        lines += ["", _ratio_by_schedule(result.schedule, models)]
    lines += ["", "## Sensitivity"]
    for sensitivity in result.sensitivities:
        key = sensitivity.key
        lines += ["", f"### {_SENSITIVITY_TITLES[key]}", "", f"| {key} | " + _header()[2:], _rule(1)]
        lines += [f"| {value} " + _row(case, cases, models) for value, case in sensitivity.rows]
    return "\n".join(lines) + "\n"


_SCHEDULES_TEXT = (
    "Each step under each fused schedule of the run's `fusion` key (the README's *Fused schedules*): `committed` is "
    "Stream's generic mapping, one group per operator; `attention` fuses each layer's attention block; `layer` each "
    "whole decoder layer. A schedule that cannot fit says why, in one line."
)


def _ratio_by_schedule(cases: Sequence[Case], models: Sequence[str]) -> str:
    """The peak-needed ratio per step and policy (rows) and schedule (columns)."""
    fusions = list(dict.fromkeys(c.fusion for c in cases))
    rows: dict[tuple[str, int, str], dict[str, float]] = {}
    for c in cases:
        if c.model == models[0] and (ratio := _peak_ratio(cases, models, c)) is not None:
            rows.setdefault((c.phase, c.length, c.policy), {})[c.fusion] = ratio
    if not rows:
        return "No fused schedule ran for both models."
    lines = ["| step | policy | " + " | ".join(fusions) + " |", "|---|---|" + "---:|" * len(fusions)]
    for (phase, length, policy), at in rows.items():
        ratios = " | ".join(f"{at[f]:.2f}" if f in at else "" for f in fusions)
        lines.append(f"| {_step(phase, length)} | {policy} | {ratios} |")
    return "\n".join(lines)


def _symbol(phase: str) -> str:
    """The length's letter: L tokens of a prefill, a decode's cache of P."""
    return "L" if phase == "prefill" else "P"


def _step(phase: str, length: int) -> str:
    return f"{phase} {_symbol(phase)}={length}"


def _memory(cases: Sequence[Case]) -> str:
    """The memory the cases measure: the sweep's, the same in every case that ran."""
    return next((c.memory for c in cases if c.memory), "n/a")


def _header() -> str:
    return (
        "| model | policy | SRAM (MiB) | step | cycles | DRAM (MiB) | peak reserved (MiB) | peak needed (MiB) "
        "| KV needed (MiB) | ratio | best SRAM | saving vs always-on | total energy (µJ) |"
    )


_COLUMNS = 13


def _rule(extra: int = 0) -> str:
    return "|" + "---|" * (_COLUMNS + extra)


def _row(c: Case, cases: Sequence[Case], models: Sequence[str]) -> str:
    head = f"| {c.model} | {c.policy} | {c.capacity_mib:g} | {_step(c.phase, c.length)} "
    if c.skipped:
        return head + f"| skipped: {c.skipped} " + "| " * (_COLUMNS - 5) + "|"
    ratio = _peak_ratio(cases, models, c)
    return head + (
        f"| {c.cycles:,} | {c.dram_bytes / 2**20:,.2f} | {c.peak_reserved_bytes / 2**20:.3f} "
        f"| {c.peak_needed_bytes / 2**20:.3f} | {c.peak_needed_by_class['kv_cache'] / 2**20:.3f} "
        f"| {'n/a' if ratio is None else f'{ratio:.2f}'} | {c.best_config} | {c.best_saving:.1%} "
        f"| {c.total_energy_pj / 1e6:,.1f} |"
    )


def _table(rows: Sequence[Case], cases: Sequence[Case], models: Sequence[str]) -> str:
    return "\n".join([_header(), _rule(), *(_row(c, cases, models) for c in rows)])


def _ratio_pivot(cases: Sequence[Case], models: Sequence[str], phase: str = "decode") -> str:
    """The peak-needed ratio per policy and capacity (rows) and prefill or decode length (columns)."""
    series = _ratio_series(cases, models, phase)
    if not series:
        return f"No {phase} length ran for both models."
    lengths = sorted({p for points in series.values() for p, _ in points})
    lines = [
        "| policy | SRAM (MiB) | " + " | ".join(f"{_symbol(phase)}={p}" for p in lengths) + " |",
        "|---|---|" + "---:|" * len(lengths),
    ]
    for (policy, mib), points in series.items():
        at = dict(points)
        lines.append(f"| {policy} | {mib:g} | " + " | ".join(f"{at[p]:.2f}" if p in at else "" for p in lengths) + " |")
    return "\n".join(lines)


def _smallest_resident(decode: Sequence[Case], models: Sequence[str]) -> str:
    """Per model and decode length: the whole cache after the step, and the smallest capacity of the grid on which
    the resident run fit."""
    lines = ["| model | P | whole cache (MiB) | smallest SRAM that ran resident (MiB) |", "|---|---:|---:|---:|"]
    for model in models:
        config = preset(model)
        for length in sorted({c.length for c in decode if c.model == model}):
            resident = [c for c in decode if (c.model, c.length, c.policy) == (model, length, "resident")]
            ran = [c.capacity_mib for c in resident]
            fit = [c.capacity_mib for c in resident if not c.skipped]
            cache = config.layers * kv_cache_bytes(config, length + 1) / 2**20
            smallest = f"{min(fit):g}" if fit else f"none up to {max(ran):g}" if ran else "not run"
            lines.append(f"| {model} | {length} | {cache:,.2f} | {smallest} |")
    return "\n".join(lines)


def _residency_savings(cases: Sequence[Case]) -> str:
    """Per resident or fit case, the DRAM bytes, cycles and total energy it saves against the streamed case of the
    same model, capacity and step."""
    streamed = {
        (c.model, c.capacity_mib, c.phase, c.length): c for c in cases if c.policy == "streamed" and not c.skipped
    }
    lines = [
        "| model | policy | SRAM (MiB) | step | DRAM saved (MiB) | cycles saved | total energy saved |",
        "|---|---|---:|---|---:|---:|---:|",
    ]
    for c in cases:
        base = streamed.get((c.model, c.capacity_mib, c.phase, c.length))
        if c.policy == "streamed" or c.skipped or base is None:
            continue
        lines.append(
            f"| {c.model} | {c.policy} | {c.capacity_mib:g} | {c.phase} {c.length} "
            f"| {(base.dram_bytes - c.dram_bytes) / 2**20:,.2f} | {base.cycles - c.cycles:,} "
            f"| {1 - c.total_energy_pj / base.total_energy_pj:.1%} |"
        )
    return "\n".join(lines)
