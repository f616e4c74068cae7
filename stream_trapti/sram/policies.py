"""Power-gating policies, applied to every bank's idle intervals.

Each policy decides, per idle interval of length ``L`` cycles, how many of those cycles the bank spends gated and
whether it must be woken at the end. Conventions (the same for every policy, so they compare fairly):

* Power-up at boot is not counted. A *leading* interval (the bank has held nothing since cycle 0) may be spent
  gated from cycle 0: a bank that never held data has nothing to wait for.
* A *trailing* interval (the bank is not used again) ends without a wake-up.
* Only idle banks (holding no data that is still needed) are gated. That is what makes full power-off legal, and it
  is the same busy/idle split in retention mode; the modes differ only in their costs (residual leakage, wake-up).
  (Retention could also drowse banks that hold data between accesses, but the trace has no per-bank access times.)

Policies are :class:`GatingPolicy` objects, each giving both its vectorised outcome (:meth:`GatingPolicy.outcome`, for
the energy) and the spans it gates (:meth:`GatingPolicy.spans`, for the plots), registered by name in
:data:`GATING_POLICIES`; the sweep, the exploration and the plots read that registry. The built-in ones:

* ``always_on``: the baseline, never gates.
* ``immediate``: gates a bank as soon as it falls idle and wakes it on demand (``timeout`` with τ = 0).
* ``timeout``: gates after τ idle cycles (interval ``L > τ`` is gated for ``L − τ`` cycles), wakes on demand.
  Leading intervals are gated from cycle 0.
* ``offline_optimal``: knows the future. It gates an interval exactly when the leakage it saves pays for the wake-up,
  i.e. when ``L − wake_cycles > break_even`` with ``break_even = wake energy / (P_on − P_gated)`` in cycles, and
  starts the wake-up ``wake_cycles`` early so the schedule never waits; those cycles count as powered. Trailing
  intervals are always gated (no wake-up to pay).

**Stalls.** An on-demand policy finds a gated bank needed at cycle ``t`` and stalls the schedule for
``wake_cycles`` while it wakes, once per *wake event*: all banks woken at the same cycle wake in parallel. The stall
is priced, not only reported: it lengthens the run by ``wake_cycles``, and during it every bank keeps the state it
had in cycle ``t − 1`` (busy banks powered, idle banks powered or gated as the policy had them, timers frozen),
except that the banks being woken are powered. :class:`GatingOutcome` counts the stalls and the *gated bank-stalls*
(stalls × banks gated during them), from which :func:`~stream_trapti.sram.energy.evaluate_energy` prices them.

**Why offline_optimal is the cheapest.** With ``P_on ≥ P_gated``, cost one idle interval of length ``L`` on its own:
powered throughout, ``P_on · L``; or gated with an early wake, ``P_gated · (L − w) + P_on · w + E_wake`` (needs
``L ≥ w``). ``offline_optimal`` takes the cheaper of the two for every interval (the threshold above is where they
cross), and no other schedule of one interval is cheaper: gating later only adds powered cycles, and waking on
demand instead of early keeps the woken bank powered for the same ``w`` cycles during the stall, plus what every
other bank and the routing network leak while the run is stalled. An on-demand policy pays, per interval it gates,
``P_on · τ + P_gated · (L − τ) + E_wake`` plus ``P_on · w`` for that bank in the stall, at least the cheaper option
above; however many wake-ups share one stall, each woken bank is charged its own ``w`` powered cycles. Leading and
trailing intervals compare the same way. So for equal bank costs ``offline_optimal ≤`` every other policy, and it
never stalls. (:mod:`~stream_trapti.sram.explore` also lets it omit the sleep transistors when never gating wins.)

Everything is evaluated from sorted interval lengths and prefix sums (:class:`IdleProfile`), so a policy costs a few
binary searches however long the trace, and is vectorised over any number of timeouts. Pricing the stalls needs one
sorted entry per (wake event, other used bank idle across it), listed once per bank organisation; when banks nest
(the compacting allocator: a bank is busy only when every lower one is) those entries all carry their event's key, so
each event is listed once with how many banks sit out its stall.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from stream_trapti.sram.activity import IdleIntervals, IdleSpans, ceil_div, expand_ranges

GATING_MODES: tuple[str, ...] = ("retention", "power_off")

# Larger than any timeout: marks the idle length of a leading interval, which every on-demand policy gates.
_ALWAYS_GATED = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class SortedLengths:
    """Interval lengths sorted ascending, each counted ``weight`` times, with running counts and sums (0 first), to
    count and total the lengths above any threshold."""

    lengths: np.ndarray
    counted: np.ndarray
    prefix: np.ndarray

    @classmethod
    def of_sorted(cls, ordered: np.ndarray, weights: np.ndarray) -> SortedLengths:
        """Lengths already sorted ascending, each counted ``weights`` times, with their running counts and sums."""
        return cls(ordered, _running(weights), _running(ordered * weights))

    @property
    def count(self) -> int:
        """How many lengths, with their weights."""
        return int(self.counted[-1])

    @property
    def total(self) -> int:
        """Sum of all lengths, with their weights."""
        return int(self.prefix[-1])

    def above(self, threshold: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """For each threshold: how many lengths exceed it, and their sum (numpy scalars for one scalar threshold)."""
        first = np.searchsorted(self.lengths, threshold, side="right")
        return self.counted[-1] - self.counted[first], self.prefix[-1] - self.prefix[first]


@dataclass(frozen=True, eq=False)
class SortedKeys:
    """Values sorted ascending, each counted ``weight`` times (once by default), to count those above any threshold
    (no sums: the values may be _ALWAYS_GATED). ``counted`` holds the running count, 0 first."""

    values: np.ndarray
    counted: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> SortedKeys:
        """Sort ``values``, each counted once."""
        values = np.asarray(values, dtype=np.int64)
        # A stable sort: numpy's default (introsort) takes ~40x longer on keys repeating as a replicated trace's do.
        return cls(np.sort(values, kind="stable"), np.arange(len(values) + 1, dtype=np.int64))

    def count_above(self, threshold: np.ndarray) -> np.ndarray:
        """For each threshold: how many values exceed it."""
        return self.counted[-1] - self.counted[np.searchsorted(self.values, threshold, side="right")]


@dataclass(frozen=True, eq=False)
class IdleProfile:
    """What the policies need to know about one bank organisation's idle intervals.

    ``leading_wake``: lengths of leading intervals followed by a use; ``interior``: intervals between two uses;
    ``trailing``: non-leading intervals up to the end of the trace; ``unused_banks``: banks never used at all;
    ``wake_events``: per cycle at which banks are woken, the longest idle length among them (leading ones count as
    always gated), so an on-demand policy with timeout τ stalls at the events above τ; ``bystanders``: per wake event
    and other used bank idle across it, the smaller of the event's value and how long that bank has been idle
    (leading: always gated), so the values above τ count the gated bank-stalls (unused banks are gated through
    every stall).
    """

    cycles: int
    bank_count: int
    leading_wake: SortedLengths
    interior: SortedLengths
    trailing: SortedLengths
    unused_banks: int
    wake_events: SortedKeys
    bystanders: SortedKeys

    @property
    def unused_bank_cycles(self) -> int:
        """Bank-cycles of the banks never used."""
        return self.unused_banks * self.cycles

    @property
    def idle_bank_cycles(self) -> int:
        """Bank-cycles spent idle, summed over banks."""
        return self.leading_wake.total + self.interior.total + self.trailing.total + self.unused_bank_cycles


def idle_profile(intervals: IdleIntervals) -> IdleProfile:
    """Sort one organisation's idle intervals into the classes the policies treat differently."""
    return idle_profiles(intervals, (intervals.bank_count,))[intervals.bank_count]


def idle_profiles(intervals: IdleIntervals, bank_counts: Iterable[int]) -> dict[int, IdleProfile]:
    """:func:`idle_profile` of ``intervals.coarser(count)`` for each of ``bank_counts`` (``intervals``' own count
    giving ``intervals`` themselves), sorting ``intervals`` only once: a coarser organisation's intervals are a subset
    of them (:meth:`~stream_trapti.sram.activity.IdleIntervals.coarser`), and a subset of a sorted list is sorted.
    The intervals are sorted in run-length form (:class:`~stream_trapti.sram.activity.IdleSpans`), each span
    weighted by how many of an organisation's banks it holds; an organisation's spans are picked from those of the
    finer organisation it nests in, so the coarser ones, holding fewer spans, cost less."""
    ratios = sorted({intervals.coarser_ratio(count): count for count in set(bank_counts)}.items())
    spans = intervals.spans
    length = spans.end - spans.start
    # Nearly every span is interior: a bank has at most one leading and one trailing interval, so the other spans
    # are few. One sort puts the interior ones first, by length, the others keyed past every length; those are
    # sorted and split by class apart.
    ends = np.flatnonzero((spans.start == 0) | (spans.end == intervals.cycles))
    key = length.copy()
    key[ends] = intervals.cycles + 1
    interior = np.argsort(key, kind="stable")[: len(key) - len(ends)]
    ends = ends[np.argsort(length[ends], kind="stable")]
    leading, wakes = spans.start[ends] == 0, spans.end[ends] < intervals.cycles
    # Nested, the banks woken at one cycle are consecutive up to busy_after, which tells which span holds the
    # highest bank a coarser organisation keeps.
    top = spans.busy_after if intervals.nested else spans.high
    # Bank numbers in the smallest signed type from −2B to 2B − 1 (ceil_div adds up to a ratio less one to a bank
    # number; int8 for 64 banks): they are coarsened and compared for every organisation, and a narrow type is
    # cheaper to stream than int64.
    small = np.min_scalar_type(-2 * intervals.bank_count)
    low, high, top = (banks.astype(small) for banks in (spans.low, spans.high, top))
    held = {
        1: tuple(
            _Held(low[at], high[at], top[at], length[at])
            for at in (ends[leading & wakes], interior, ends[~leading & ~wakes], ends[leading & ~wakes])
        )
    }
    profiles = {}
    for ratio, count in ratios:
        finer = max(r for r in held if ratio % r == 0)
        held[ratio] = tuple(group.coarser(ratio // finer) for group in held[finer])
        profiles[count] = _profile(intervals, count, *held[ratio])
    return dict(sorted(profiles.items(), reverse=True))


@dataclass(frozen=True, eq=False)
class _Held:
    """Spans of one class that an organisation holds, sorted by length, in its own bank numbers: each holds banks
    ``[low, high)`` (an organisation ``r`` times coarser holds bank ``j · r`` as its bank ``j``) and, nested, ends
    with ``top`` banks busy."""

    low: np.ndarray
    high: np.ndarray
    top: np.ndarray
    length: np.ndarray

    @property
    def weight(self) -> np.ndarray:
        """How many of the organisation's banks each span holds."""
        return self.high - self.low

    def coarser(self, ratio: int) -> _Held:
        """Those of the spans the organisation ``ratio`` times coarser holds, renumbered (``ceil(ceil(x / a) / b)``
        is ``ceil(x / (a · b))``, so numbers already coarsened coarsen further)."""
        if ratio == 1:
            return self
        low, high = ceil_div(self.low, ratio), ceil_div(self.high, ratio)
        keep = np.flatnonzero(high > low)
        return _Held(low[keep], high[keep], ceil_div(self.top[keep], ratio), self.length[keep])


def _profile(
    intervals: IdleIntervals,
    count: int,
    leading_wake: _Held,
    interior: _Held,
    trailing: _Held,
    unused: _Held,
) -> IdleProfile:
    """The profile of the organisation of ``count`` banks (nested in that of ``intervals``, or that one) from the
    spans it holds of each class."""
    unused_banks = int(unused.weight.sum())
    if intervals.nested:
        # Of the spans ending at one cycle, the one holding the organisation's highest bank woken there starts first,
        # is the longest and so gives the wake event its key. The used banks idle across the event are those above
        # it, each idle at least as long (nested), so each pair's value is the event's key. Interior keys are their
        # lengths, in order; leading ones count as always gated, after them.
        event = [np.flatnonzero(group.high == group.top) for group in (interior, leading_wake)]
        keys = np.concatenate([interior.length[event[0]], np.full(len(event[1]), _ALWAYS_GATED)])
        above = count - unused_banks - np.concatenate([interior.high[event[0]], leading_wake.high[event[1]]])
        wake_events = SortedKeys(keys, np.arange(len(keys) + 1))
        bystanders = SortedKeys(keys, _running(above))
    else:
        spans = intervals.spans
        wakes = spans.end < intervals.cycles
        at = np.flatnonzero(wakes)
        at = at[np.argsort(spans.end[at], kind="stable")]
        first = np.flatnonzero(np.diff(spans.end[at], prepend=-1))  # where each run of one end cycle begins
        key = np.where(spans.start[at] == 0, _ALWAYS_GATED, spans.end[at] - spans.start[at])
        event_key = np.maximum.reduceat(key, first) if len(at) else key
        wake_events = SortedKeys.of(event_key)
        bystanders = SortedKeys.of(_bystanders(intervals, spans.end[at][first], event_key))
    return IdleProfile(
        cycles=intervals.cycles,
        bank_count=count,
        leading_wake=SortedLengths.of_sorted(leading_wake.length, leading_wake.weight),
        interior=SortedLengths.of_sorted(interior.length, interior.weight),
        trailing=SortedLengths.of_sorted(trailing.length, trailing.weight),
        unused_banks=unused_banks,
        wake_events=wake_events,
        bystanders=bystanders,
    )


def _running(values: np.ndarray) -> np.ndarray:
    """The running sums of the integers ``values``, 0 first (written in place: no copy to prepend the 0)."""
    sums = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, dtype=np.int64, out=sums[1:])
    return sums


def _bystanders(intervals: IdleIntervals, event_at: np.ndarray, event_key: np.ndarray) -> np.ndarray:
    """For each wake event (at the sorted cycles ``event_at``) and each interval of a used bank idle across it, i.e.
    idle both in the cycle before and from the event on: ``min(event key, cycles idle so far)``, idle so far
    counting as always gated for leading intervals.

    With timeout τ the event stalls iff its key exceeds τ, and the interval's bank was gated in the cycle before the
    event (so stays gated through the stall) iff it had been idle more than τ cycles; both hold iff the minimum does.
    Banks never used would add one pair per event; :func:`gating_outcome` counts them without listing them.
    """
    used = ~(intervals.leading & ~intervals.wakes)
    start, leading = intervals.start[used], intervals.leading[used]
    first = np.searchsorted(event_at, start, side="right")  # events after the interval starts ...
    last = np.searchsorted(event_at, intervals.end[used], side="left")  # ... and before it ends (ending there: woken)
    event, interval = expand_ranges(first, last, np.arange(len(start)))
    idle_so_far = np.where(leading[interval], _ALWAYS_GATED, event_at[event] - start[interval])
    return np.minimum(event_key[event], idle_so_far)


@dataclass(frozen=True, eq=False)
class GatingOutcome:
    """One policy's effect, one entry per evaluated timeout: bank-cycles gated (in the trace's own cycles), bank
    wake-ups, stalls (wake events the schedule has to wait for), and gated bank-stalls (summed over stalls, the
    banks that stay gated through them)."""

    gated_bank_cycles: np.ndarray
    wakes: np.ndarray
    stalls: np.ndarray
    gated_bank_stalls: np.ndarray


class GatingPolicy(ABC):
    """A power-gating policy, the one place its rules are written: :meth:`outcome` applies them to a whole
    organisation at once (sorted lengths and prefix sums, vectorised over timeouts), :meth:`spans` interval by
    interval; the spans' total length equals the outcome's ``gated_bank_cycles``. ``wake_cycles`` and
    ``break_even_cycles`` are the bank's wake-up time and the idle cycles a gated bank needs to pay one wake-up
    (:meth:`~stream_trapti.sram.energy.BankCosts.break_even_cycles`)."""

    name: ClassVar[str]
    sleep_transistors: ClassVar[bool] = True
    """Whether the macro needs sleep transistors (whose area and slightly dearer accesses the policy then pays)."""
    takes_timeouts: ClassVar[bool] = False
    """Whether the policy is evaluated at every timeout of the sweep, one outcome per timeout."""
    knows_the_trace: ClassVar[bool] = False
    """Whether the policy is chosen knowing the trace, before the macro is built: it then also takes the macro without
    sleep transistors, never gating, when that costs less."""
    outcome_uses_costs: ClassVar[bool] = True
    """Whether :meth:`outcome` reads ``wake_cycles`` or ``break_even_cycles``; when it does not, the exploration
    computes it once per bank organisation for every flavour and gating mode."""

    @abstractmethod
    def outcome(
        self, profile: IdleProfile, timeouts: np.ndarray | None, wake_cycles: int, break_even_cycles: float
    ) -> GatingOutcome:
        """The policy's effect on ``profile``: one entry per timeout if it :attr:`takes_timeouts`, else one."""

    @abstractmethod
    def spans(
        self, intervals: IdleIntervals, timeout: int | None, wake_cycles: int, break_even_cycles: float
    ) -> IdleSpans:
        """The cycle ranges during which the policy keeps banks gated, per idle span of ``intervals`` (the same for
        each of its banks), at one ``timeout``."""


class AlwaysOn(GatingPolicy):
    """The baseline: never gates, so its macro has no sleep transistors."""

    name = "always_on"
    sleep_transistors = False
    outcome_uses_costs = False

    def outcome(
        self, profile: IdleProfile, timeouts: np.ndarray | None, wake_cycles: int, break_even_cycles: float
    ) -> GatingOutcome:
        zero = np.zeros(1, dtype=np.int64)
        return GatingOutcome(zero, zero, zero, zero)

    def spans(
        self, intervals: IdleIntervals, timeout: int | None, wake_cycles: int, break_even_cycles: float
    ) -> IdleSpans:
        none = np.zeros(0, dtype=np.int64)
        return IdleSpans(none, none, none, none)


class Timeout(GatingPolicy):
    """Gates a bank after τ idle cycles (leading intervals at once) and wakes it when it is next used."""

    name = "timeout"
    takes_timeouts = True
    outcome_uses_costs = False

    def outcome(
        self, profile: IdleProfile, timeouts: np.ndarray | None, wake_cycles: int, break_even_cycles: float
    ) -> GatingOutcome:
        if timeouts is None or np.size(timeouts) == 0:
            raise ValueError(f"policy {self.name!r} needs at least one timeout in cycles")
        tau = np.asarray(timeouts, dtype=np.int64).reshape(-1)
        if np.any(tau < 0):
            raise ValueError(f"timeouts must be non-negative cycle counts, got {tau[tau < 0].tolist()}")
        return _on_demand(profile, tau)

    def spans(
        self, intervals: IdleIntervals, timeout: int | None, wake_cycles: int, break_even_cycles: float
    ) -> IdleSpans:
        if timeout is None or timeout < 0:
            raise ValueError(f"policy {self.name!r} needs a non-negative timeout in cycles, got {timeout}")
        return _on_demand_spans(intervals, timeout)


class Immediate(GatingPolicy):
    """Gates a bank as soon as it falls idle and wakes it on demand: :class:`Timeout` with τ = 0."""

    name = "immediate"
    outcome_uses_costs = False

    def outcome(
        self, profile: IdleProfile, timeouts: np.ndarray | None, wake_cycles: int, break_even_cycles: float
    ) -> GatingOutcome:
        return _on_demand(profile, np.zeros(1, dtype=np.int64))

    def spans(
        self, intervals: IdleIntervals, timeout: int | None, wake_cycles: int, break_even_cycles: float
    ) -> IdleSpans:
        return _on_demand_spans(intervals, 0)


class OfflineOptimal(GatingPolicy):
    """Gates exactly the intervals worth a wake-up (longer than ``wake_cycles + break_even_cycles``), waking
    ``wake_cycles`` early so it never stalls; trailing intervals always."""

    name = "offline_optimal"
    knows_the_trace = True

    def outcome(
        self, profile: IdleProfile, timeouts: np.ndarray | None, wake_cycles: int, break_even_cycles: float
    ) -> GatingOutcome:
        _check_wake(wake_cycles, break_even_cycles)
        # One threshold: numpy scalars, made arrays at the end (each step on a one-entry array costs several times
        # as much, and the exploration asks this once per organisation, flavour and gating mode).
        threshold = wake_cycles + break_even_cycles
        leading_count, leading_sum = profile.leading_wake.above(threshold)
        interior_count, interior_sum = profile.interior.above(threshold)
        wakes = leading_count + interior_count
        gated = leading_sum + interior_sum - wake_cycles * wakes + profile.trailing.total + profile.unused_bank_cycles
        zero = np.zeros(1, dtype=np.int64)
        return GatingOutcome(np.array([gated]), np.array([wakes]), zero, zero)

    def spans(
        self, intervals: IdleIntervals, timeout: int | None, wake_cycles: int, break_even_cycles: float
    ) -> IdleSpans:
        _check_wake(wake_cycles, break_even_cycles)
        spans = intervals.spans
        wakes = spans.end < intervals.cycles
        stop = np.where(wakes, spans.end - wake_cycles, spans.end)
        keep = ~wakes | (spans.end - spans.start > wake_cycles + break_even_cycles)
        return replace(spans, end=stop).where(keep)


def _on_demand(profile: IdleProfile, tau: np.ndarray) -> GatingOutcome:
    """Gate after ``tau`` idle cycles (leading intervals at once), wake when the bank is next used."""
    interior_count, interior_sum = profile.interior.above(tau)
    trailing_count, trailing_sum = profile.trailing.above(tau)
    stalls = profile.wake_events.count_above(tau)
    gated_bank_stalls = profile.bystanders.count_above(tau) + profile.unused_banks * stalls
    gated = (
        profile.leading_wake.total
        + profile.unused_bank_cycles
        + interior_sum
        - tau * interior_count
        + trailing_sum
        - tau * trailing_count
    )
    wakes = profile.leading_wake.count + interior_count
    return GatingOutcome(gated, wakes, stalls, gated_bank_stalls)


def _on_demand_spans(intervals: IdleIntervals, tau: int) -> IdleSpans:
    """The spans of :func:`_on_demand`: each interval from ``tau`` cycles in (leading ones from their start)."""
    spans = intervals.spans
    begin = np.where(spans.start == 0, spans.start, spans.start + tau)
    return replace(spans, start=begin).where(begin < spans.end)


def _check_wake(wake_cycles: int, break_even_cycles: float) -> None:
    if wake_cycles < 0 or not break_even_cycles >= 0:
        raise ValueError(
            f"offline_optimal needs wake_cycles >= 0 and break_even_cycles >= 0, got {wake_cycles}, {break_even_cycles}"
        )


GATING_POLICIES: dict[str, GatingPolicy] = {
    policy.name: policy for policy in (AlwaysOn(), Immediate(), Timeout(), OfflineOptimal())
}
"""Every gating policy by name, in sweep order: the one registry the sweep, the exploration and the plots read.
A new policy is a :class:`GatingPolicy` added here."""


def policy_names() -> tuple[str, ...]:
    """The registered policies' names, in registry order (the sweep's default)."""
    return tuple(GATING_POLICIES)


def gating_policy(name: str) -> GatingPolicy:
    """The registered policy called ``name``."""
    try:
        return GATING_POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown gating policy {name!r}; expected one of {policy_names()}") from None


def gating_outcome(
    profile: IdleProfile,
    policy: str,
    timeouts: np.ndarray | None = None,
    wake_cycles: int = 0,
    break_even_cycles: float = np.inf,
) -> GatingOutcome:
    """Apply the policy called ``policy`` to ``profile`` (:meth:`GatingPolicy.outcome`).

    ``timeouts`` (cycles) is required for a policy that takes timeouts and gives one outcome per entry; the other
    policies give one. ``wake_cycles`` and ``break_even_cycles`` matter to the policies that use them.
    """
    return gating_policy(policy).outcome(profile, timeouts, wake_cycles, break_even_cycles)


def gated_spans(
    intervals: IdleIntervals,
    policy: str,
    timeout: int | None = None,
    wake_cycles: int = 0,
    break_even_cycles: float = np.inf,
) -> IdleSpans:
    """The cycle ranges during which the policy called ``policy`` keeps banks gated, per idle span (banks
    ``[low, high)`` gated over ``[start, end)``; :meth:`GatingPolicy.spans`, one timeout), for plots and checks; the
    spans' total bank-cycles equal :func:`gating_outcome`'s ``gated_bank_cycles``."""
    return gating_policy(policy).spans(intervals, timeout, wake_cycles, break_even_cycles)
