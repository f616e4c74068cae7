"""Stage II exploration: sweep SRAM capacity × bank count × gating policy × flavour × gating mode on one trace.

Each configuration gets its energy breakdown (:mod:`~stream_trapti.sram.energy`), area and latency penalty, and its
saving against the monolithic (1 bank) always-on SRAM of the same capacity, flavour and gating mode. The result
holds the Pareto front over (energy, area, latency penalty), the best configuration per objective, and a slot for
Stream's own estimate of the same SRAM (monolithic, dynamic energy only) to set beside them.

``always_on`` organisations are built without sleep transistors; the gating policies with. ``offline_optimal``
knows the trace before the macro is built, so it also takes the organisation without sleep transistors (never
gating) when that costs less: then no configuration of the same capacity, bank count, flavour and gating mode costs
less than it. Wake-up stalls are added to the schedule (``latency_cycles``); with ``max_latency_penalty_cycles`` in
the spec, configurations that stall longer are rejected instead.

The idle intervals of each bank organisation are extracted once, in run-length form
(:class:`~stream_trapti.sram.activity.IdleSpans`); every policy, timeout, flavour and mode is then a handful of binary
searches on them (:class:`~stream_trapti.sram.policies.IdleProfile`). With the compacting allocator the organisations
nest, so only the one with the most banks is extracted, straight from its busy-bank counts
(:func:`~stream_trapti.sram.activity.compacting_spans`), and its spans are sorted once for all of them
(:func:`~stream_trapti.sram.policies.idle_profiles`). No Python object is made per configuration: a policy's outcome
is computed once per organisation (per flavour and mode too only when it reads the bank's costs), every row is priced
in one vectorised pass (:func:`~stream_trapti.sram.energy.price`), and the rows are columns (:class:`ConfigTable`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import NamedTuple, overload

import numpy as np

from stream_trapti.errors import ConfigError
from stream_trapti.sram.activity import (
    Allocation,
    BankActivity,
    IdleIntervals,
    IdleSpans,
    InfeasibleOrganisation,
    compacting_activity,
    first_fit_activity,
)
from stream_trapti.sram.energy import (
    AccessCounts,
    BankCosts,
    BankQuery,
    CostColumns,
    CostsProvider,
    access_counts,
    evaluate_energy,
    price,
)
from stream_trapti.sram.policies import (
    GATING_POLICIES,
    GatingOutcome,
    GatingPolicy,
    IdleProfile,
    gated_spans,
    idle_profile,
    idle_profiles,
)
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.trace import OccupancyTrace

OBJECTIVES: tuple[str, ...] = ("total_pj", "area_mm2", "penalty_cycles")


@dataclass(frozen=True)
class ConfigResult:
    """One evaluated configuration. Energies in pJ over the whole run; ``timeout_cycles`` is set only for the
    ``timeout`` policy; ``sleep_transistors`` says whether the macro has them; ``latency_cycles`` is the trace's
    cycles plus ``penalty_cycles`` of wake-up stalls; ``gated_fraction`` is of the trace's bank-cycles; ``saving`` is
    ``1 − total / baseline`` against the monolithic always-on SRAM."""

    capacity_bytes: int
    bank_count: int
    policy: str
    timeout_cycles: int | None
    flavour: str
    gating_mode: str
    sleep_transistors: bool
    dynamic_pj: float
    leakage_on_pj: float
    gated_residual_pj: float
    network_pj: float
    wake_pj: float
    stall_pj: float
    total_pj: float
    area_mm2: float
    penalty_cycles: int
    latency_cycles: int
    wakes: int
    gated_fraction: float
    baseline_pj: float
    saving: float


_COLUMNS: tuple[str, ...] = tuple(item.name for item in fields(ConfigResult))


class ConfigTable(Sequence[ConfigResult]):
    """Evaluated configurations held as columns, one array per :class:`ConfigResult` field, in row order: the
    exploration computes them without a Python object per configuration. Indexing or iterating gives the rows as
    :class:`ConfigResult`; :meth:`column` gives one field for every row."""

    def __init__(self, columns: dict[str, np.ndarray]):
        if tuple(columns) != _COLUMNS or len({len(column) for column in columns.values()}) != 1:
            raise ValueError(f"ConfigTable needs equally long columns {_COLUMNS}, got {tuple(columns)}")
        self._columns = columns

    def __len__(self) -> int:
        return len(self._columns[_COLUMNS[0]])

    @overload
    def __getitem__(self, index: int) -> ConfigResult: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[ConfigResult]: ...
    def __getitem__(self, index: int | slice) -> ConfigResult | Sequence[ConfigResult]:
        if isinstance(index, slice):
            return tuple(self)[index]
        row = range(len(self))[index]  # an IndexError past the end, and negative indices counted from it
        return ConfigResult(*(column[row : row + 1].tolist()[0] for column in self._columns.values()))

    def __iter__(self) -> Iterator[ConfigResult]:
        return map(ConfigResult, *(column.tolist() for column in self._columns.values()))

    def column(self, name: str) -> np.ndarray:
        """The field ``name`` of every row (read-only)."""
        column = self._columns[name].view()
        column.flags.writeable = False
        return column

    def where(self, keep: np.ndarray) -> ConfigTable:
        """The rows where the boolean array ``keep`` is true, in order."""
        return ConfigTable({name: column[keep] for name, column in self._columns.items()})


@dataclass(frozen=True, eq=False)
class Heatmap:
    """Per bank and time bin (``edges`` in cycles): the fraction of the bin the bank is busy, and powered, under
    the configuration named by ``label``."""

    label: str
    edges: np.ndarray
    busy: np.ndarray
    powered: np.ndarray


@dataclass(frozen=True, eq=False)
class ExplorationResult:
    """All evaluated configurations of one sweep on one memory of one trace.

    ``configs`` gives each row as a :class:`ConfigResult` and each field as an array (:meth:`ConfigTable.column`).
    ``pareto`` and ``best`` (objective → configuration) index ``configs``; ``skipped`` lists the organisations that
    cannot hold the trace, with why; ``rejected`` counts the configurations left out for stalling longer than the
    spec's ``max_latency_penalty_cycles``; ``stream_estimate_pj`` is Stream's own estimate when one was given;
    ``heatmap`` shows the lowest-energy configuration.
    """

    spec: SweepSpec
    memory: str
    cycles: int
    peak_bytes: int
    port_bits: int
    accesses: AccessCounts
    configs: ConfigTable
    pareto: tuple[int, ...]
    best: dict[str, int]
    skipped: tuple[tuple[int, int, str], ...]
    rejected: int = 0
    stream_estimate_pj: float | None = None
    heatmap: Heatmap | None = None


def explore(
    trace: OccupancyTrace,
    spec: SweepSpec,
    costs_provider: CostsProvider,
    *,
    allocations: Sequence[Allocation] | None = None,
    stream_estimate_pj: float | None = None,
    heatmap_bins: int = 400,
) -> ExplorationResult:
    """Evaluate every configuration of ``spec`` on ``trace``.

    ``costs_provider`` maps a :class:`BankQuery` to :class:`BankCosts` (e.g. the CACTI adapter); it is asked once
    per capacity, bank count, flavour, gating mode and with or without sleep transistors (``always_on`` rows and the
    monolithic baseline are costed without, ``offline_optimal`` both ways). ``allocations`` are the tracker's
    per-tensor lifetimes, required by the ``first_fit`` allocator. ``stream_estimate_pj`` is carried into the result
    for comparison.
    """
    index = trace.memory_index(spec.memory)
    info = trace.memories[index]
    if spec.allocator == "first_fit" and allocations is None:
        raise ConfigError(
            "allocator 'first_fit' needs the tracker's per-tensor allocations (start, end, bytes), which a trace file "
            "does not hold: run the sweep in an experiment (stream-trapti run) or pass allocations= to explore()"
        )
    port_bits = _port_bits(spec, info.read_port_bits, info.write_port_bits, info.name)
    counts = access_counts(trace, index, port_bits)
    occupancy = trace.series(index, spec.view)  # read by every organisation of the compacting allocator
    capacities = spec.capacities_bytes or (info.capacity_bytes,)
    costs_cache: dict[tuple[int, int, str, str, bool], BankCosts] = {}

    def costs(capacity: int, banks: int, flavour: str, mode: str, gated: bool = True) -> BankCosts:
        key = (capacity, banks, flavour, mode, gated)
        if key not in costs_cache:
            costs_cache[key] = costs_provider(
                BankQuery(
                    capacity_bytes=capacity,
                    bank_count=banks,
                    port_bits=port_bits,
                    flavour=flavour,
                    technology_nm=spec.technology_nm,
                    temperature_k=spec.temperature_k,
                    gating_mode=mode,
                    clock_ghz=spec.clock_ghz,
                    power_gating=gated,
                    gated_leakage_fraction=spec.gated_leakage_fraction,
                    off_leakage_fraction=spec.off_leakage_fraction,
                )
            )
        return costs_cache[key]

    def activity(capacity: int, banks: int) -> BankActivity:
        if spec.allocator == "first_fit":
            return first_fit_activity(allocations, trace.cycles, capacity, banks)
        return compacting_activity(trace, index, capacity, banks, spec.view, occupancy=occupancy)

    # The compacting allocator's organisations nest (IdleIntervals.coarser): per capacity, the one with the most
    # banks splitting it evenly is extracted once, and the coarser ones are read off it.
    finest: dict[int, tuple[int, IdleIntervals | InfeasibleOrganisation | None]] = {}

    def nesting(capacity: int) -> tuple[int, IdleIntervals | InfeasibleOrganisation | None]:
        """The bank count and idle intervals (or why it cannot hold the trace) of the finest organisation of
        ``capacity`` that the others nest in; 0 and None for the first-fit allocator, whose organisations do not."""
        if capacity not in finest:
            even = [b for b in (*spec.banks, 1) if capacity % b == 0] if spec.allocator == "compacting" else []
            banks = max(even, default=0)
            finest[capacity] = (banks, _idle_intervals(lambda: activity(capacity, banks)) if banks else None)
        return finest[capacity]

    def intervals(capacity: int, banks: int) -> IdleIntervals:
        count, nest = nesting(capacity)
        if isinstance(nest, IdleIntervals) and count % banks == 0:
            return nest.coarser(banks)
        return activity(capacity, banks).idle_intervals()

    blocks: list[_Block] = []
    skipped: list[tuple[int, int, str]] = []
    timeouts = np.array(spec.timeouts_cycles, dtype=np.int64)
    outcomes: dict[tuple[object, ...], GatingOutcome] = {}

    def outcome(capacity: int, profile: IdleProfile, policy: GatingPolicy, bank_costs: BankCosts) -> GatingOutcome:
        """The policy's outcome, computed once per organisation when it does not depend on the bank's costs."""
        key = (capacity, profile.bank_count, policy.name)
        if policy.outcome_uses_costs:
            key += (bank_costs.wake_cycles, bank_costs.break_even_cycles(spec.clock_ghz))
        if key not in outcomes:
            wake, break_even = bank_costs.wake_cycles, bank_costs.break_even_cycles(spec.clock_ghz)
            outcomes[key] = policy.outcome(profile, timeouts if policy.takes_timeouts else None, wake, break_even)
        return outcomes[key]

    for capacity in capacities:
        count, nest = nesting(capacity)
        bank_counts = sorted(set(spec.banks) | {1})
        nested = [banks for banks in bank_counts if count and count % banks == 0]
        profiles: dict[int, IdleProfile] = {}
        reasons: dict[int, str] = {}
        if isinstance(nest, InfeasibleOrganisation):
            reasons |= dict.fromkeys(nested, str(nest))  # the trace's peak exceeds the capacity, whatever the banks
        elif nest is not None:
            profiles |= idle_profiles(nest, nested)
        for banks in (b for b in bank_counts if b not in nested):
            try:
                profiles[banks] = idle_profile(activity(capacity, banks).idle_intervals())
            except InfeasibleOrganisation as reason:
                reasons[banks] = str(reason)
        skipped.extend((capacity, banks, reasons[banks]) for banks in sorted(reasons))
        if 1 not in profiles:
            continue  # the monolithic baseline cannot hold the trace, so no organisation of this capacity can
        for flavour in spec.flavours:
            for mode in spec.gating_modes:
                # The baseline, like every always-on organisation, is built without sleep transistors.
                baseline = float(
                    evaluate_energy(
                        profiles[1], "always_on", costs(capacity, 1, flavour, mode, False), counts, spec.clock_ghz
                    ).total_pj[0]
                )
                for banks in spec.banks:
                    if banks not in profiles:
                        continue
                    setting = _Setting(capacity, banks, flavour, mode, baseline)
                    for policy in (GATING_POLICIES[name] for name in spec.policies):
                        # A policy that knows the trace is built with sleep transistors and gating, or without and
                        # never gating, whichever costs less (the sleep transistors' dearer accesses can outweigh
                        # what gating saves): both are priced, as rivals, and the dearer dropped.
                        ways = (
                            ((True, policy, 1), (False, GATING_POLICIES["always_on"], -1))
                            if policy.knows_the_trace
                            else ((policy.sleep_transistors, policy, 0),)
                        )
                        for sleep, rule, rival in ways:
                            bank_costs = costs(capacity, banks, flavour, mode, sleep)
                            result = outcome(capacity, profiles[banks], rule, bank_costs)
                            taken = timeouts if rule.takes_timeouts else None
                            blocks.append(_Block(setting, policy.name, sleep, bank_costs, result, rival, taken))
    skipped = [s for s in skipped if s[1] in spec.banks]
    if not blocks:
        raise ConfigError(f"no configuration of the sweep can hold memory {info.name!r}: {skipped}")
    configs = _table(blocks, trace.cycles, counts, spec.clock_ghz)
    limit = spec.max_latency_penalty_cycles
    evaluated = len(configs)
    if limit is not None:
        configs = configs.where(configs.column("penalty_cycles") <= limit)
        if not len(configs):
            raise ConfigError(
                f"every configuration of the sweep stalls the run longer than max_latency_penalty_cycles={limit}"
            )
    table = np.column_stack([configs.column(o).astype(np.float64) for o in OBJECTIVES])
    best = {
        "energy": _lexmin(table, (0, 1, 2)),
        "area": _lexmin(table, (1, 0, 2)),
        "latency": _lexmin(table, (2, 0, 1)),
    }
    heatmap = _heatmap(configs[best["energy"]], intervals, costs, spec.clock_ghz, heatmap_bins)
    return ExplorationResult(
        spec=spec,
        memory=info.name,
        cycles=trace.cycles,
        peak_bytes=int(occupancy.max()),
        port_bits=port_bits,
        accesses=counts,
        configs=configs,
        pareto=tuple(int(i) for i in pareto_front(table)),
        best=best,
        skipped=tuple(skipped),
        rejected=evaluated - len(configs),
        stream_estimate_pj=stream_estimate_pj,
        heatmap=heatmap,
    )


def _idle_intervals(activity: Callable[[], BankActivity]) -> IdleIntervals | InfeasibleOrganisation:
    """The idle intervals of ``activity()``, or why that organisation cannot hold the trace."""
    try:
        return activity().idle_intervals()
    except InfeasibleOrganisation as reason:
        return reason


def _port_bits(spec: SweepSpec, read_bits: int, write_bits: int, memory: str) -> int:
    """The banks' port width: the spec's, or the memory's when its read and write ports agree."""
    if spec.port_bits is not None:
        return spec.port_bits
    if read_bits != write_bits:
        raise ConfigError(
            f"memory {memory!r} has {read_bits}-bit read and {write_bits}-bit write ports; set port_bits in the sweep"
        )
    return read_bits


@dataclass(frozen=True)
class _Setting:
    """What the rows of one bank organisation share: its key and the baseline energy."""

    capacity: int
    banks: int
    flavour: str
    mode: str
    baseline_pj: float


class _Block(NamedTuple):
    """The rows of one organisation under one policy: one per entry of ``outcome`` (one per timeout of
    ``timeouts``, or one). ``rival`` pairs the two ways a policy that knows the trace can be built: +1 for the
    block with sleep transistors, -1 for the one without that follows it, of which the cheaper stays; 0 otherwise.
    A named tuple, as one is made per block and policy (a frozen dataclass takes five times as long to make)."""

    setting: _Setting
    policy: str
    sleep_transistors: bool
    costs: BankCosts
    outcome: GatingOutcome
    rival: int = 0
    timeouts: np.ndarray | None = None


def _table(blocks: Sequence[_Block], cycles: int, counts: AccessCounts, clock_ghz: float) -> ConfigTable:
    """The rows of ``blocks``, one after the other, as columns, priced all at once (:func:`price`): numpy calls per
    column, not per row or block. Of each pair of rival blocks the dearer is dropped (the one with sleep
    transistors when they tie)."""
    rows = np.array([len(block.outcome.gated_bank_cycles) for block in blocks])

    def each(values: list[object], dtype: type = object) -> np.ndarray:
        return np.repeat(np.array(values, dtype=dtype), rows)

    def joined(name: str) -> np.ndarray:
        # Every array of a block's outcome has one entry per row.
        column = np.concatenate([getattr(block.outcome, name) for block in blocks])
        if len(column) != total_rows:
            raise ValueError(f"the blocks' {name} have {len(column)} entries in all, expected {total_rows}")
        return column

    total_rows = int(rows.sum())
    settings = [block.setting for block in blocks]
    banks = each([s.banks for s in settings], np.int64)
    outcome = GatingOutcome(*(joined(f.name) for f in fields(GatingOutcome)))
    bank_costs = CostColumns.of([block.costs for block in blocks], rows)
    energy = price(outcome, banks, cycles, bank_costs, counts, clock_ghz)
    total = energy.total_pj
    penalty = energy.penalty_cycles.astype(np.int64)
    baseline = each([s.baseline_pj for s in settings], np.float64)
    saving = np.zeros_like(total)
    np.divide(total, baseline, out=saving, where=baseline > 0)
    timeout = np.full(total_rows, None, dtype=object)
    with_timeouts = [(i, block.timeouts) for i, block in enumerate(blocks) if block.timeouts is not None]
    if with_timeouts:
        first = np.cumsum(rows) - rows
        at = np.concatenate([np.arange(first[i], first[i] + rows[i]) for i, _ in with_timeouts])
        timeout[at] = np.concatenate([t for _, t in with_timeouts]).astype(object)
    table = ConfigTable(
        {
            "capacity_bytes": each([s.capacity for s in settings], np.int64),
            "bank_count": banks,
            "policy": each([block.policy for block in blocks]),
            "timeout_cycles": timeout,
            "flavour": each([s.flavour for s in settings]),
            "gating_mode": each([s.mode for s in settings]),
            "sleep_transistors": each([block.sleep_transistors for block in blocks], np.bool_),
            "dynamic_pj": energy.dynamic_pj,
            "leakage_on_pj": energy.leakage_on_pj,
            "gated_residual_pj": energy.gated_residual_pj,
            "network_pj": energy.network_pj,
            "wake_pj": energy.wake_pj,
            "stall_pj": energy.stall_pj,
            "total_pj": total,
            "area_mm2": bank_costs.area_mm2,
            "penalty_cycles": penalty,
            "latency_cycles": cycles + penalty,
            "wakes": energy.wakes.astype(np.int64),
            "gated_fraction": energy.gated_bank_cycles / np.maximum(banks * cycles, 1),
            "baseline_pj": baseline,
            "saving": np.where(baseline > 0, 1.0 - saving, 0.0),
        }
    )
    # A rival pair's blocks have one row each, the one with sleep transistors first.
    rival = each([block.rival for block in blocks], np.int64)
    gating = np.flatnonzero(rival == 1)
    if not len(gating):
        return table
    keep = np.ones(total_rows, dtype=bool)
    cheaper = total[gating] <= total[gating + 1]
    keep[gating[~cheaper]] = False
    keep[gating[cheaper] + 1] = False
    return table.where(keep)


def pareto_front(objectives: np.ndarray, chunk: int = 128, peel: int = 32) -> np.ndarray:
    """Indices of the rows of ``objectives`` (N, D; all minimised) that no other row dominates, ascending.

    Exact duplicates do not dominate each other, so all of them stay on the front. Up to ``peel`` distinct rows of
    the front are found one pass over the rows each, the rest by comparing chunks of ``chunk`` rows.
    """
    values = np.asarray(objectives, dtype=np.float64)
    # In lexicographic order every dominator comes before the rows it dominates, and dominance is transitive: the
    # first row left is on the front, and so are its duplicates, and every row it dominates can go. A front is
    # usually short, so up to ``peel`` of its rows are peeled off that way, a pass over the rows left each.
    order = np.lexsort(values.T[::-1])
    rest = values[order]
    front = []
    for _ in range(peel):
        if not len(order):
            break
        head = rest[0]
        front.append(order[np.all(rest == head, axis=1)])
        left = ~np.all(rest >= head, axis=1)  # neither the duplicates nor the rows they dominate
        order, rest = order[left], rest[left]
    front = np.concatenate([np.empty(0, dtype=np.int64), *front])
    # The rest in chunks: each only needs checking against the front found so far and itself.
    for first in range(0, len(order), chunk):
        block = order[first : first + chunk]
        rivals = np.concatenate([front, block])
        # One objective at a time: (chunk, rivals) planes, not a (chunk, rivals, D) cube reduced over its short axis.
        no_worse = np.ones((len(block), len(rivals)), dtype=bool)
        better = np.zeros((len(block), len(rivals)), dtype=bool)
        for column in values.T:
            mine, theirs = column[block][:, None], column[rivals][None, :]
            no_worse &= theirs <= mine
            better |= theirs < mine
        front = np.concatenate([front, block[~np.any(no_worse & better, axis=1)]])
    return np.sort(front)


def _lexmin(table: np.ndarray, order: tuple[int, ...]) -> int:
    """The row minimising the columns in ``order``, earlier columns first (the first such row on a tie)."""
    rows = np.arange(len(table))
    for column in order:
        values = table[rows, column]
        rows = rows[values == values.min()]
    return int(rows[0])


def _heatmap(
    config: ConfigResult,
    idle_intervals: Callable[[int, int], IdleIntervals],
    costs: Callable[[int, int, str, str, bool], BankCosts],
    clock_ghz: float,
    bins: int,
) -> Heatmap:
    """Busy and powered fractions per bank and time bin for ``config``."""
    intervals = idle_intervals(config.capacity_bytes, config.bank_count)
    bank_costs = costs(
        config.capacity_bytes, config.bank_count, config.flavour, config.gating_mode, config.sleep_transistors
    )
    # Without sleep transistors nothing is gated, whatever the policy's name (offline_optimal may omit them).
    policy = config.policy if config.sleep_transistors else "always_on"
    spans = gated_spans(
        intervals, policy, config.timeout_cycles, bank_costs.wake_cycles, bank_costs.break_even_cycles(clock_ghz)
    )
    edges = _edges(intervals.cycles, bins)
    width = np.diff(edges)
    idle = _coverage(intervals.spans, config.bank_count, edges)
    gated = _coverage(spans, config.bank_count, edges)
    timeout = f", τ={config.timeout_cycles}" if config.timeout_cycles is not None else ""
    label = (
        f"{config.capacity_bytes / 1024:g} KiB, {config.bank_count} banks, {config.policy}{timeout}, "
        f"{config.flavour}, {config.gating_mode}"
    )
    return Heatmap(label, edges, 1.0 - idle / width, 1.0 - gated / width)


def _edges(cycles: int, bins: int) -> np.ndarray:
    """The heatmap's bin edges: ``bins`` evenly spaced bins over ``[0, cycles]``, rounded to cycles (fewer when
    there are fewer cycles)."""
    return np.unique(np.linspace(0, cycles, bins + 1).round().astype(np.int64))


def _coverage(spans: IdleSpans, banks: int, edges: np.ndarray) -> np.ndarray:
    """(banks, bins) cycles of each bin (between consecutive ``edges``) covered by ``spans``, disjoint per bank."""
    # Up to an edge e, one bank's spans cover e · (its starts − its ends before e) − (those starts' cycles − those
    # ends' cycles). Each start or end is counted at the first edge past it and summed along the edges, for banks
    # [low, high) at once: +1 at row low and −1 at row high, summed down the banks.
    at = np.concatenate([spans.start, spans.end])
    edge = _edge_index(edges, at)
    columns = len(edges) + 1
    size = (banks + 1) * columns
    # Flat indices into (banks + 1, edges + 1) arrays, one axis being much cheaper to scatter on than two: a span
    # counts +1 at (low, its start) and (high, its end), −1 at (low, its end) and (high, its start).
    rows = np.concatenate([spans.low, spans.high]) * columns
    up, down = rows + edge, rows + np.roll(edge, len(spans.start))
    count = np.bincount(up, minlength=size) - np.bincount(down, minlength=size)
    cycles = np.zeros(size, dtype=np.int64)
    np.add.at(cycles, up, at)
    np.subtract.at(cycles, down, np.roll(at, len(spans.start)))
    count, cycles = (a.reshape(banks + 1, -1).cumsum(axis=0).cumsum(axis=1)[:banks, :-1] for a in (count, cycles))
    return np.diff(edges * count - cycles, axis=1).astype(np.float64)


def _edge_index(edges: np.ndarray, at: np.ndarray) -> np.ndarray:
    """``np.searchsorted(edges, at, side="right")`` for the heatmap's ``edges`` (:func:`_edges`) and ``at`` between
    the first and the last, found arithmetically where that is exact (the binary search costs more).
    Bins of width ``w = cycles / bins`` put every edge within ½ of ``i · w``: with ``w ≥ 2``, the edges up to
    ``g = floor(at / w)`` − 1 are at or before ``at`` and those from ``g + 2`` on past it, so two comparisons settle
    it (in integers, with ``at · bins`` kept far inside float and int64 precision)."""
    bins, cycles = len(edges) - 1, int(edges[-1])
    if bins < 1 or cycles < 2 * bins or cycles * bins >= 2**50:
        return np.searchsorted(edges, at, side="right")
    guess = at * bins // cycles
    return guess + (edges[guess] <= at) + (np.append(edges, cycles + 1)[guess + 1] <= at)
