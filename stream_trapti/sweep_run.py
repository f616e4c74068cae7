"""A design sweep (:mod:`stream_trapti.design_sweep`) run end to end, on one machine or a Dask cluster.

1. **Plan**, on the client: every point's hardware (the SRAM resized, or generated from a template with other arrays
   or DRAM bandwidth: :mod:`stream_trapti.hardware_variants`, both cached) and
   inference (:func:`~stream_trapti.inference.plan_inference`: its steps, each a one-layer Stream solve with its
   workload written). A point that cannot run is kept, skipped, with the reason.
2. **Solve**: the distinct solves no cached point or solve covers, each one task
   (:class:`~stream_trapti.tracker.solve_task.SolveTask`), on the cluster (:mod:`stream_trapti.dispatch`). A 48-layer
   model is one solve per step, so a long decode spreads its steps over the workers. Each result is stored in the
   client's content-addressed solve cache as it arrives.
3. **Compose**, on the client, as soon as a point's solves are in: its trace from the cached solves
   (:func:`~stream_trapti.inference.trace_planned`), Stage II on the swept memory, and its row of figures, stored in
   the cache too (a point entry keyed by the point, its solves' keys and the Stage II sweep).
4. **Write** ``results.parquet``, ``results.csv``, plots and ``report.md``, the directory swapped in whole.

Stopped at any moment, a rerun finds the finished solves and points in the cache and does only the rest. The rows
do not depend on where or in which order anything ran, so a serial run (``--scheduler none``) and a run on any
cluster write the same bytes.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from importlib.metadata import version
from pathlib import Path
from typing import Any

from tqdm import tqdm

from stream_trapti import cache_entry
from stream_trapti.api import TraceOptions, with_fusion
from stream_trapti.atomic import check_output_directory
from stream_trapti.design_sweep import GENERATED_AXES, DesignSweep, Point, template_overrides
from stream_trapti.dispatch import Cluster, outcomes
from stream_trapti.errors import TraptiError, one_line
from stream_trapti.hardware_generator import load_template
from stream_trapti.hardware_variants import sram_capacity_variant, template_variant
from stream_trapti.inference import InferencePlan, Phases, plan_inference, trace_planned
from stream_trapti.provenance import file_identity, hardware_identity
from stream_trapti.reports.sweep_outputs import table_row, write_sweep_outputs
from stream_trapti.residency import DEFAULT_KV_BUDGET
from stream_trapti.scratch import scratch_directory, scratch_root
from stream_trapti.sram.sweep_config import SweepSpec, check_sweep_memory, load_sweep_spec
from stream_trapti.study import measured_figures
from stream_trapti.trace import CLASSES
from stream_trapti.tracker import cache
from stream_trapti.tracker.inputs import hardware_memories
from stream_trapti.tracker.solve import options_key
from stream_trapti.tracker.solve_task import SolveOutcome, SolveTask
from stream_trapti.workloads.config import preset

POINT_FORMAT = 2
"""The version of a point entry's row; bump it when a column changes meaning or name."""
POINT_SCHEMA = f"sweep point {POINT_FORMAT}"


@dataclass(frozen=True)
class PlannedPoint:
    """A point made ready: its inference ``plan`` (None when ``skipped`` says why it cannot run), the cache key of
    each step's solve, the tasks that would solve them, and the key of its row in the point cache."""

    index: int
    point: Point
    axes: dict[str, Any]
    plan: InferencePlan | None = None
    tasks: tuple[SolveTask, ...] = ()
    key: str | None = None
    skipped: str | None = None


@dataclass(frozen=True)
class SweepStats:
    """How a run went (never written to its outputs, which must not depend on it): points and distinct solves, how
    many of each the cache held before, the seconds each solve took where it ran (by key, in the order the tasks
    were submitted), the solves each point composed waited for, the seconds the client spent on each point it
    composed, the planning and the whole run."""

    points: int
    cached_points: int
    solves: int
    cached_solves: int
    solve_seconds: dict[str, float]
    point_solves: dict[int, tuple[str, ...]]
    compose_seconds: dict[int, float]
    plan_seconds: float
    wall_seconds: float


@dataclass(frozen=True)
class SweepResult:
    """A sweep's rows, in point order (the table written), and how the run went."""

    rows: tuple[dict[str, Any], ...]
    stats: SweepStats


def run_sweep(
    sweep: DesignSweep, cluster: Cluster | None = None, options: TraceOptions | None = None, progress: bool = True
) -> SweepResult:
    """Run every point of ``sweep`` on ``cluster`` (default: a local Dask cluster) and write its directory (replaced
    whole, once written). ``options.solve`` are Stream's options, ``options.cache_dir`` the solve and point cache."""
    start = time.perf_counter()
    cluster = cluster or Cluster()
    options = options or TraceOptions()
    spec = _sram_sweep(sweep)
    check_output_directory(sweep.directory, _inputs(sweep))
    with plan_sweep(sweep, spec, options, progress) as planned:
        plan_seconds = time.perf_counter() - start
        cache_dir = _cache_dir(options)
        rows: dict[int, dict[str, Any]] = {}
        for p in planned:
            if p.skipped is not None:
                rows[p.index] = _row(p, skipped=p.skipped)
            elif (hit := cache_entry.load(_point_path(cache_dir, p.key), POINT_SCHEMA, json.loads)) is not None:
                rows[p.index] = hit
        cached_points = len(rows) - sum(p.skipped is not None for p in planned)
        todo = [p for p in planned if p.index not in rows]
        tasks = list({t.key: t for p in todo for t in p.tasks if not cache.has_groups(cache_dir, t.key)}.values())
        solves = {t.key for p in planned for t in p.tasks}
        order = {t.key: i for i, t in enumerate(tasks)}
        point_solves = {p.index: tuple(t.key for t in p.tasks if t.key in order) for p in todo}
        cached_solves = len(solves) - len(tasks)
        stats = SweepStats(len(planned), cached_points, len(solves), cached_solves, {}, point_solves, {}, 0, 0)
        _solve_and_compose(todo, tasks, cluster, options, spec, rows, stats, progress)
    ordered = tuple(rows[i] for i in range(len(planned)))
    write_sweep_outputs(sweep, ordered, _inputs(sweep))
    solve_seconds = dict(sorted(stats.solve_seconds.items(), key=lambda item: order[item[0]]))
    stats = replace(
        stats, solve_seconds=solve_seconds, plan_seconds=plan_seconds, wall_seconds=time.perf_counter() - start
    )
    return SweepResult(ordered, stats)


def dry_run(sweep: DesignSweep, options: TraceOptions | None = None, progress: bool = True) -> str:
    """What :func:`run_sweep` would do, as text: every point with its solves and how many the cache holds (or why it
    is skipped), and the totals. Plans the sweep (hardware variants are made, CACTI may run) but solves nothing."""
    options = options or TraceOptions()
    cache_dir = _cache_dir(options)
    lines = []
    with plan_sweep(sweep, _sram_sweep(sweep), options, progress) as planned:
        keys = {t.key for p in planned for t in p.tasks}
        held = {k for k in keys if cache.has_groups(cache_dir, k)}
        done = {p.index for p in planned if p.key is not None and _point_path(cache_dir, p.key).is_file()}
        for p in planned:
            if p.skipped is not None:
                state = f"skipped: {p.skipped}"
            elif p.index in done:
                state = "done (row cached)"
            else:
                state = f"{sum(t.key in held for t in p.tasks)} of {len(p.tasks)} solves cached"
            lines.append(f"{p.index:4d}  {p.point.label()}: {state}")
        lines.append(
            f"{len(planned)} points ({len(done)} done, {sum(p.skipped is not None for p in planned)} skipped); "
            f"{len(keys)} distinct solves, {len(held)} cached, {len(keys) - len(held)} to run"
        )
    return "\n".join(lines)


@contextmanager
def plan_sweep(
    sweep: DesignSweep, spec: SweepSpec, options: TraceOptions, progress: bool = True
) -> Iterator[list[PlannedPoint]]:
    """Every point of ``sweep`` planned, its workloads in a scratch directory that lasts as long as the context. The
    Stage II sweep ``spec`` is checked against every hardware a point runs on, before anything is solved."""
    points = sweep.expand()
    variants: dict[tuple, Path | TraptiError] = {}
    identities: dict[tuple[Path, bool], str] = {}
    planned = []
    with scratch_directory(scratch_root(), "sweep") as work:
        for index, point in enumerate(tqdm(points, desc="planning", unit="point", disable=not progress)):
            if (point.hardware, point.generated) not in identities:
                identities[point.hardware, point.generated] = _identity(point)
            axes = {**asdict(point), "hardware": identities[point.hardware, point.generated], **_generated_axes(point)}
            base = PlannedPoint(index, point, axes)
            hardware = _hardware(point, spec, sweep, variants)
            if isinstance(hardware, TraptiError):
                planned.append(replace(base, skipped=one_line(hardware)))
                continue
            try:
                plan = _plan(point, hardware, work / f"point{index}")
            except TraptiError as error:
                planned.append(replace(base, skipped=one_line(error)))
                continue
            labels = [f"{point.model}-{step.label}" for step in plan.steps]
            solve = with_fusion(options, point.fusion).solve  # the scope is in the options, so in the solve's key
            tasks = tuple(SolveTask.of(job, solve, label) for job, label in zip(plan.jobs, labels, strict=True))
            key = _point_key(axes, tasks, spec, options)
            planned.append(replace(base, plan=plan, tasks=tasks, key=key))
        yield planned


def _plan(point: Point, hardware: Path, root: Path) -> InferencePlan:
    phases = Phases(point.prefill, point.decode_steps, point.decode_from)
    return plan_inference(
        hardware,
        point.model,
        phases,
        root,
        layers=point.layers,
        precision_bits=point.precision_bits,
        kv_residency=point.kv_residency,
        kv_budget=point.kv_budget if point.kv_budget is not None else DEFAULT_KV_BUDGET,
    )


def _identity(point: Point) -> str:
    """The ``hardware`` column: the accelerator file by name and content, or the template a point's accelerator is
    generated from (its array and DRAM columns say with what)."""
    if point.generated:
        return f"template {file_identity(point.hardware)}"
    return hardware_identity(point.hardware)


def _generated_axes(point: Point) -> dict[str, Any]:
    """The array and DRAM axes of a point whose accelerator is generated, those it leaves to the template resolved
    (as ``layers`` is), so its row says what ran; nothing for a point on a hardware file."""
    if not point.generated:
        return {}
    template = load_template(point.hardware, _overrides(point))
    return {
        "array": f"{template.arrays.rows}x{template.arrays.columns}",
        "array_count": template.arrays.count,
        "dram_gbps": min(template.dram.port_bits, template.dram.link_bits) / 8 * template.clock_ghz,
    }


def _overrides(point: Point) -> dict[str, Any]:
    """The template keys a generated point's axes set (checked when the sweep was loaded)."""
    return template_overrides(point, load_template(point.hardware))


def _hardware(
    point: Point, spec: SweepSpec, sweep: DesignSweep, variants: dict[tuple, Path | TraptiError]
) -> Path | TraptiError:
    """The hardware ``point`` runs on: its file, a variant with the SRAM resized (made once per capacity), or the
    accelerator generated from the template, with the Stage II sweep checked against it; a variant or accelerator
    CACTI cannot price is the error, for the point to report."""
    if point.generated:
        return _generated(point, spec, sweep, variants)
    at = (point.hardware, point.sram_mib)
    if at not in variants:
        source = str(sweep.sram_sweep or "the default Stage II sweep")
        swept = check_sweep_memory(spec, hardware_memories(point.hardware), source)
        capacity = None if point.sram_mib is None else round(point.sram_mib * 2**20)
        if capacity is None or capacity == swept.capacity_bytes:
            variants[at] = point.hardware
        else:
            try:
                variants[at] = sram_capacity_variant(point.hardware, capacity)
            except TraptiError as error:
                variants[at] = error
                return error
            check_sweep_memory(spec, hardware_memories(variants[at]), f"{source} (with sram_mib {point.sram_mib:g})")
    return variants[at]


def _generated(
    point: Point, spec: SweepSpec, sweep: DesignSweep, variants: dict[tuple, Path | TraptiError]
) -> Path | TraptiError:
    """:func:`_hardware` of a point whose accelerator is generated from its template (cached, so workers and reruns
    get the same files, and the same solve keys)."""
    at = (point.hardware, point.sram_mib, *(getattr(point, axis) for axis in GENERATED_AXES))
    if at not in variants:
        capacity = None if point.sram_mib is None else round(point.sram_mib * 2**20)
        try:
            variants[at] = template_variant(point.hardware, _overrides(point), capacity)
        except TraptiError as error:
            variants[at] = error
            return error
        source = str(sweep.sram_sweep or "the default Stage II sweep")
        check_sweep_memory(spec, hardware_memories(variants[at]), f"{source} (on {point.label()})")
    return variants[at]


def _solve_and_compose(
    todo: Sequence[PlannedPoint],
    tasks: Sequence[SolveTask],
    cluster: Cluster,
    options: TraceOptions,
    spec: SweepSpec,
    rows: dict[int, dict[str, Any]],
    stats: SweepStats,
    progress: bool,
) -> None:
    """Solve ``tasks`` on ``cluster`` and compose each point of ``todo`` into ``rows`` once its solves are in."""
    cache_dir = _cache_dir(options)
    waiting = {p.index: set(stats.point_solves[p.index]) for p in todo}
    failed: dict[str, str] = {}

    def finish(p: PlannedPoint) -> None:
        start = time.perf_counter()
        rows[p.index] = _compose(p, options, spec, failed, cache_dir)
        stats.compose_seconds[p.index] = time.perf_counter() - start

    with outcomes(tasks, cluster) as finished:
        bar = tqdm(total=len(tasks), desc="solving", unit="solve", disable=not progress or not tasks)
        for p in todo:
            if not waiting[p.index]:
                finish(p)
        for outcome in finished:
            _record(outcome, cache_dir, failed, stats)
            bar.update()
            for p in todo:
                if outcome.key in waiting[p.index]:
                    waiting[p.index].discard(outcome.key)
                    if not waiting[p.index]:
                        finish(p)
            bar.set_postfix_str(f"{len(rows)} of {stats.points} points")
        bar.close()


def _record(outcome: SolveOutcome, cache_dir: Path, failed: dict[str, str], stats: SweepStats) -> None:
    stats.solve_seconds[outcome.key] = outcome.seconds
    if outcome.payload is not None:
        cache.store_encoded(cache_dir, outcome.key, outcome.payload)
    else:
        failed[outcome.key] = outcome.error or "unknown"


def _compose(
    p: PlannedPoint, options: TraceOptions, spec: SweepSpec, failed: dict[str, str], cache_dir: Path
) -> dict[str, Any]:
    """The row of a planned point whose solves are all in (or failed), stored in the point cache. A point with a
    failed solve is skipped, naming the step."""
    assert p.plan is not None and p.key is not None
    steps = zip(p.plan.steps, p.tasks, strict=True)
    reasons = [f"step {step.label}: {failed[task.key]}" for step, task in steps if task.key in failed]
    if reasons:
        row = _row(p, skipped=reasons[0])
    else:
        composing = replace(options, progress=False, workers=1, cache_dir=cache_dir, use_cache=True)
        try:
            result = trace_planned(p.plan, composing, p.point.fusion)
        except TraptiError as error:
            row = _row(p, skipped=one_line(error))
        else:
            row = _row(p, figures=measured_figures(result, spec))
    text = json.dumps(row)
    cache_entry.store(_point_path(cache_dir, p.key), text.encode(), POINT_SCHEMA)
    return json.loads(text)  # as a rerun reads it back, so both give the same table


def _row(p: PlannedPoint, figures: dict[str, Any] | None = None, skipped: str | None = None) -> dict[str, Any]:
    """A point's row: its axes (the hardware by content, the depth resolved), its solves, and its figures or the
    reason it was skipped."""
    figures = dict(figures or {})
    by_class = figures.pop("peak_needed_by_class", None) or {}
    layers = p.point.layers if p.point.layers is not None else preset(p.point.model).layers
    values = {
        "point": p.index,
        **{**p.axes, "layers": layers},
        "solves": len(p.tasks),
        "skipped": skipped,
        **{f"peak_needed_{c}_bytes": by_class.get(c) for c in CLASSES},
        **figures,
    }
    return table_row(values)


def _point_key(axes: dict[str, Any], tasks: Sequence[SolveTask], spec: SweepSpec, options: TraceOptions) -> str:
    """The hash of everything a point's row depends on: its axes (hardware by content), its solves (by their keys,
    which cover every input file and version), Stream's options, the Stage II sweep, this row's format."""
    record = {
        "format": POINT_FORMAT,
        "stream-trapti": version("stream-trapti"),
        "axes": {k: str(v) if isinstance(v, Path) else v for k, v in axes.items()},
        "solves": [t.key for t in tasks],
        "solve_options": options_key(options.solve),
        "sram_sweep": repr(spec),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def _point_path(cache_dir: Path, key: str) -> Path:
    return cache_dir / "sweep-points" / f"{key}.json"


def _cache_dir(options: TraceOptions) -> Path:
    """The solve cache of a sweep: it is how solves reach the client, so it is never off."""
    return replace(options, use_cache=True).cache()


def _sram_sweep(sweep: DesignSweep) -> SweepSpec:
    return load_sweep_spec(sweep.sram_sweep) if sweep.sram_sweep else SweepSpec()


def _inputs(sweep: DesignSweep) -> tuple[Path, ...]:
    """The files a sweep reads: its output directory must not hold any of them."""
    hardware = {p.hardware for p in sweep.expand()}
    return (*sorted(hardware), *((sweep.sram_sweep,) if sweep.sram_sweep else ()))
