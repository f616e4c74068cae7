"""Power-gating policies, applied to every bank's idle intervals.

Each policy decides, per idle interval of length ``L`` cycles, how many of those cycles the bank spends gated and
whether it must be woken at the end. Conventions (the same for every policy, so they compare fairly):

* Power-up at boot is not counted. A *leading* interval (the bank has held nothing since cycle 0) may be spent
  gated from cycle 0: a bank that never held data has nothing to wait for.
* A *trailing* interval (the bank is not used again) ends without a wake-up.
* Only idle banks (holding no data that is still needed) are gated. That is what makes full power-off legal, and it
  is the same busy/idle split in retention mode; the modes differ only in their costs (residual leakage, wake-up).
  (Retention could also drowse banks that hold data between accesses, but the trace has no per-bank access times.)

Policies:

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
sorted entry per (wake event, other used bank idle across it), listed once per bank organisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_trapti.sram.activity import IdleIntervals, expand_ranges

POLICIES: tuple[str, ...] = ("always_on", "immediate", "timeout", "offline_optimal")
GATING_MODES: tuple[str, ...] = ("retention", "power_off")

# Larger than any timeout: marks the idle length of a leading interval, which every on-demand policy gates.
_ALWAYS_GATED = np.iinfo(np.int64).max


@dataclass(frozen=True, eq=False)
class SortedLengths:
    """Interval lengths sorted ascending, with prefix sums, to total the lengths above any threshold."""

    lengths: np.ndarray
    prefix: np.ndarray

    @classmethod
    def of(cls, lengths: np.ndarray) -> SortedLengths:
        """Sort ``lengths`` and precompute their prefix sums."""
        ordered = np.sort(np.asarray(lengths, dtype=np.int64))
        return cls(ordered, np.concatenate([[0], np.cumsum(ordered)]))

    @property
    def total(self) -> int:
        """Sum of all lengths."""
        return int(self.prefix[-1])

    def above(self, threshold: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each threshold: how many lengths exceed it, and their sum."""
        first = np.searchsorted(self.lengths, threshold, side="right")
        return len(self.lengths) - first, self.prefix[-1] - self.prefix[first]


@dataclass(frozen=True, eq=False)
class SortedKeys:
    """Values sorted ascending, to count those above any threshold (no sums: the values may be _ALWAYS_GATED)."""

    values: np.ndarray

    @classmethod
    def of(cls, values: np.ndarray) -> SortedKeys:
        """Sort ``values``."""
        return cls(np.sort(np.asarray(values, dtype=np.int64)))

    def count_above(self, threshold: np.ndarray) -> np.ndarray:
        """For each threshold: how many values exceed it."""
        return len(self.values) - np.searchsorted(self.values, threshold, side="right")


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
    length, leading, wakes = intervals.length, intervals.leading, intervals.wakes
    # The stall a wake event causes depends on whether any bank woken at that cycle was gated, i.e. on the
    # longest idle interval ending there.
    key = np.where(leading, _ALWAYS_GATED, length)[wakes]
    ends = intervals.end[wakes]
    order = np.argsort(ends, kind="stable")
    first = np.flatnonzero(np.diff(ends[order], prepend=-1))
    event_key = np.maximum.reduceat(key[order], first) if len(order) else key
    return IdleProfile(
        cycles=intervals.cycles,
        bank_count=intervals.bank_count,
        leading_wake=SortedLengths.of(length[leading & wakes]),
        interior=SortedLengths.of(length[~leading & wakes]),
        trailing=SortedLengths.of(length[~leading & ~wakes]),
        unused_banks=int(np.count_nonzero(leading & ~wakes)),
        wake_events=SortedKeys.of(event_key),
        bystanders=SortedKeys.of(_bystanders(intervals, ends[order][first], event_key)),
    )


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


def gating_outcome(
    profile: IdleProfile,
    policy: str,
    timeouts: np.ndarray | None = None,
    wake_cycles: int = 0,
    break_even_cycles: float = np.inf,
) -> GatingOutcome:
    """Apply ``policy`` to ``profile``.

    ``timeouts`` (cycles) is required for ``timeout`` and gives one outcome per entry; the other policies give one.
    ``wake_cycles`` and ``break_even_cycles`` only matter to ``offline_optimal``.
    """
    if policy == "timeout":
        if timeouts is None or np.size(timeouts) == 0:
            raise ValueError("policy 'timeout' needs at least one timeout in cycles")
        tau = np.asarray(timeouts, dtype=np.int64).reshape(-1)
        if np.any(tau < 0):
            raise ValueError(f"timeouts must be non-negative cycle counts, got {tau[tau < 0].tolist()}")
        return _on_demand(profile, tau)
    if policy == "immediate":
        return _on_demand(profile, np.zeros(1, dtype=np.int64))
    if policy == "always_on":
        zero = np.zeros(1, dtype=np.int64)
        return GatingOutcome(zero, zero, zero, zero)
    if policy == "offline_optimal":
        return _offline_optimal(profile, wake_cycles, break_even_cycles)
    raise ValueError(f"unknown gating policy {policy!r}; expected one of {POLICIES}")


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
    wakes = len(profile.leading_wake.lengths) + interior_count
    return GatingOutcome(gated, wakes, stalls, gated_bank_stalls)


def _offline_optimal(profile: IdleProfile, wake_cycles: int, break_even_cycles: float) -> GatingOutcome:
    """Gate exactly the intervals worth a wake-up, waking ``wake_cycles`` early; never stalls."""
    if wake_cycles < 0 or not break_even_cycles >= 0:
        raise ValueError(
            f"offline_optimal needs wake_cycles >= 0 and break_even_cycles >= 0, got {wake_cycles}, {break_even_cycles}"
        )
    threshold = np.array([wake_cycles + break_even_cycles])
    leading_count, leading_sum = profile.leading_wake.above(threshold)
    interior_count, interior_sum = profile.interior.above(threshold)
    wakes = leading_count + interior_count
    gated = leading_sum + interior_sum - wake_cycles * wakes + profile.trailing.total + profile.unused_bank_cycles
    zero = np.zeros(1, dtype=np.int64)
    return GatingOutcome(gated, wakes, zero, zero)


def gated_spans(
    intervals: IdleIntervals,
    policy: str,
    timeout: int | None = None,
    wake_cycles: int = 0,
    break_even_cycles: float = np.inf,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``(bank, start, end)`` cycle ranges during which ``policy`` keeps banks gated, per interval.

    This is the per-interval form of :func:`gating_outcome` (same rules, one timeout), for plots and checks; the
    spans' total length equals the outcome's ``gated_bank_cycles``.
    """
    length, leading, wakes = intervals.length, intervals.leading, intervals.wakes
    if policy == "always_on":
        keep = np.zeros(len(length), dtype=bool)
        begin, stop = intervals.start, intervals.end
    elif policy in ("immediate", "timeout"):
        tau = 0 if policy == "immediate" else timeout
        if tau is None or tau < 0:
            raise ValueError(f"policy 'timeout' needs a non-negative timeout in cycles, got {timeout}")
        begin = np.where(leading, intervals.start, intervals.start + tau)
        stop = intervals.end
        keep = begin < stop
    elif policy == "offline_optimal":
        begin = intervals.start
        stop = np.where(wakes, intervals.end - wake_cycles, intervals.end)
        keep = ~wakes | (length > wake_cycles + break_even_cycles)
    else:
        raise ValueError(f"unknown gating policy {policy!r}; expected one of {POLICIES}")
    return intervals.bank[keep], begin[keep], stop[keep]
