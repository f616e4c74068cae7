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

On-demand wake-ups stall the schedule for ``wake_cycles`` once per *wake event*: all banks woken at the same cycle
wake in parallel. The offline-optimal policy never stalls.

Everything is evaluated from sorted interval lengths and prefix sums (:class:`IdleProfile`), so a policy costs a few
binary searches however long the trace, and is vectorised over any number of timeouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream_trapti.sram.activity import IdleIntervals

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
class IdleProfile:
    """What the policies need to know about one bank organisation's idle intervals.

    ``leading_wake``: lengths of leading intervals followed by a use; ``interior``: intervals between two uses;
    ``trailing``: non-leading intervals up to the end of the trace; ``unused_bank_cycles``: cycles of banks never
    used at all; ``wake_events``: per cycle at which banks are woken, the longest idle length among them
    (leading ones count as always gated).
    """

    cycles: int
    bank_count: int
    leading_wake: SortedLengths
    interior: SortedLengths
    trailing: SortedLengths
    unused_bank_cycles: int
    wake_events: SortedLengths

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
        unused_bank_cycles=int(length[leading & ~wakes].sum()),
        wake_events=SortedLengths.of(event_key),
    )


@dataclass(frozen=True, eq=False)
class GatingOutcome:
    """One policy's effect, one entry per evaluated timeout: bank-cycles gated, bank wake-ups, and stalls (wake
    events the schedule has to wait for)."""

    gated_bank_cycles: np.ndarray
    wakes: np.ndarray
    stalls: np.ndarray


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
        return GatingOutcome(zero, zero, zero)
    if policy == "offline_optimal":
        return _offline_optimal(profile, wake_cycles, break_even_cycles)
    raise ValueError(f"unknown gating policy {policy!r}; expected one of {POLICIES}")


def _on_demand(profile: IdleProfile, tau: np.ndarray) -> GatingOutcome:
    """Gate after ``tau`` idle cycles (leading intervals at once), wake when the bank is next used."""
    interior_count, interior_sum = profile.interior.above(tau)
    trailing_count, trailing_sum = profile.trailing.above(tau)
    stalls, _ = profile.wake_events.above(tau)
    gated = (
        profile.leading_wake.total
        + profile.unused_bank_cycles
        + interior_sum
        - tau * interior_count
        + trailing_sum
        - tau * trailing_count
    )
    wakes = len(profile.leading_wake.lengths) + interior_count
    return GatingOutcome(gated, wakes, stalls)


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
    return GatingOutcome(gated, wakes, np.zeros(1, dtype=np.int64))


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
