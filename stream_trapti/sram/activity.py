"""Bank activity: which banks of a banked SRAM must be powered at each change point of an occupancy trace.

A memory of capacity ``C`` split into ``B`` banks has banks of ``C / B`` bytes. A bank is *busy* while it holds data
that is still needed; an idle bank holds nothing, so it may be gated (retention) or even switched off (power-off)
without losing data. Two allocators decide which banks are busy:

* **compacting** (:func:`compacting_activity`): live data is always packed into the lowest addresses, so exactly
  ``ceil(bytes / bank size)`` banks are busy and bank ``i`` (0-based) is busy whenever ``banks_on > i``. This is the
  best any allocator can do and needs only the trace's byte counts.
* **address-aware first fit** (:func:`first_fit_activity`): every allocation is placed at the lowest free address
  that fits and never moves, so freed holes fragment the address space and can keep extra banks busy. It needs the
  per-tensor lifetimes ``(start, end, bytes)``, which the occupancy trace does not carry: the Stage I tracker
  supplies them.

Both yield a :class:`BankActivity`, whose :meth:`~BankActivity.idle_intervals` are what the gating policies act on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from stream_trapti.trace import OccupancyTrace, View


class InfeasibleOrganisation(ValueError):
    """A bank organisation that cannot hold the trace: too small, not evenly divisible, or too fragmented."""


@dataclass(frozen=True)
class Allocation:
    """One tensor's stay in the memory: ``size`` bytes live over cycles ``[start, end)``."""

    start: int
    end: int
    size: int


@dataclass(frozen=True, eq=False)
class IdleSpans:
    """Idle intervals in run-length form: banks ``[low, high)`` are all idle over exactly ``[start, end)``.

    Where the compacting allocator's busy count drops from ``a`` to ``b`` and later first rises past a bank, every
    bank of ``[b, a)`` it rises past at once shares that interval, so a trace has far fewer distinct spans than
    intervals (GPT-2 XL prefill at L = 1024 on 64 banks: 80 906 spans for 442 342 intervals); the policies sort and
    total the spans, each weighted by how many banks it holds. For the compacting allocator ``busy_after`` holds the
    busy count once each span has ended: the banks woken at one cycle are consecutive, up to that count.
    """

    low: np.ndarray
    high: np.ndarray
    start: np.ndarray
    end: np.ndarray
    busy_after: np.ndarray | None = None

    def coarser(self, ratio: int) -> IdleSpans:
        """The spans of every ``ratio``-th bank, renumbered: bank ``j`` of the coarser organisation is bank
        ``j · ratio`` here, so ``[low, high)`` keeps ``[ceil(low / ratio), ceil(high / ratio))``."""
        low, high = ceil_div(self.low, ratio), ceil_div(self.high, ratio)
        keep = np.flatnonzero(high > low)
        busy_after = None if self.busy_after is None else ceil_div(self.busy_after[keep], ratio)
        return IdleSpans(low[keep], high[keep], self.start[keep], self.end[keep], busy_after)

    def where(self, keep: np.ndarray) -> IdleSpans:
        """The spans where the boolean array ``keep`` is true, in order."""
        keep = np.flatnonzero(keep)
        busy_after = None if self.busy_after is None else self.busy_after[keep]
        return IdleSpans(self.low[keep], self.high[keep], self.start[keep], self.end[keep], busy_after)


@dataclass(frozen=True, eq=False)
class IdleIntervals:
    """Every maximal idle interval ``[start, end)`` of every bank, held in run-length form (``spans``, each span one
    interval of each of its banks); :attr:`bank`, :attr:`start` and :attr:`end` list them one by one, sorted by bank
    then start.

    An interval starting at cycle 0 is *leading*: the bank has held nothing since the trace began. One ending at
    ``cycles`` is *trailing*: the bank is not used again, so leaving it needs no wake-up.

    ``nested`` says that a bank is busy only when every lower bank is (the compacting allocator): then a higher bank
    has been idle at least as long as a lower one at any cycle, which lets the stall pricing count instead of list
    (:func:`~stream_trapti.sram.policies.idle_profile`).
    """

    cycles: int
    bank_count: int
    spans: IdleSpans
    nested: bool = False

    def __post_init__(self) -> None:
        if self.nested and self.spans.busy_after is None:
            raise ValueError("nested IdleIntervals need their spans' busy_after")

    @cached_property
    def _listed(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        spans = self.spans
        bank, index = expand_ranges(spans.low, spans.high, np.arange(len(spans.low)))
        start, end = spans.start[index], spans.end[index]
        order = np.lexsort((start, bank))
        return bank[order], start[order], end[order]

    @property
    def bank(self) -> np.ndarray:
        """Each interval's bank."""
        return self._listed[0]

    @property
    def start(self) -> np.ndarray:
        """Each interval's first idle cycle."""
        return self._listed[1]

    @property
    def end(self) -> np.ndarray:
        """The cycle each interval ends at (exclusive)."""
        return self._listed[2]

    @property
    def length(self) -> np.ndarray:
        """Cycles each interval lasts."""
        return self.end - self.start

    @property
    def leading(self) -> np.ndarray:
        """Whether each interval starts at cycle 0."""
        return self.start == 0

    @property
    def wakes(self) -> np.ndarray:
        """Whether the bank is used again after each interval (so a gated bank must be woken)."""
        return self.end < self.cycles

    def coarser_ratio(self, bank_count: int) -> int:
        """How many of these banks make one of ``bank_count`` banks (1 for this organisation itself); a ValueError
        when :meth:`coarser` has no such organisation."""
        ratio, rest = divmod(self.bank_count, bank_count) if bank_count >= 1 else (0, 1)
        if rest or (ratio > 1 and not self.nested):
            raise ValueError(
                f"intervals of {self.bank_count} banks (nested={self.nested}) have no coarser organisation of "
                f"{bank_count} banks: it needs nested intervals and a bank count dividing {self.bank_count}"
            )
        return ratio

    def coarser(self, bank_count: int) -> IdleIntervals:
        """The idle intervals of the same memory split into ``bank_count`` banks, for nested intervals of a bank count
        ``bank_count`` divides.

        With ``r`` times as many banks of ``C / (r · bank_count)`` bytes each, bank ``j`` of the coarser organisation
        is busy exactly when this one's bank ``j · r`` is: both hold live data iff more than ``j · C / bank_count``
        bytes are live. So its intervals are those of every ``r``-th bank (:meth:`IdleSpans.coarser`).
        """
        ratio = self.coarser_ratio(bank_count)
        return IdleIntervals(self.cycles, bank_count, self.spans.coarser(ratio) if ratio > 1 else self.spans, True)


@dataclass(frozen=True, eq=False)
class BankActivity:
    """Busy banks of one bank organisation over ``[0, cycles)``, as a step function on ``times`` (K,).

    ``banks_on`` (K,) counts the busy banks. ``busy`` (B, K) says which banks are busy; it is ``None`` for the
    compacting allocator, where bank ``i`` is busy exactly when ``banks_on > i``.
    """

    cycles: int
    times: np.ndarray
    bank_count: int
    bank_bytes: int
    banks_on: np.ndarray
    busy: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.banks_on.shape != self.times.shape:
            raise ValueError(f"BankActivity.banks_on has shape {self.banks_on.shape}, expected {self.times.shape}")
        if self.busy is not None and self.busy.shape != (self.bank_count, len(self.times)):
            raise ValueError(
                f"BankActivity.busy has shape {self.busy.shape}, expected {(self.bank_count, len(self.times))}"
            )
        if len(self.banks_on) and int(self.banks_on.max()) > self.bank_count:
            raise ValueError(f"BankActivity needs {int(self.banks_on.max())} banks but has {self.bank_count}")

    def busy_matrix(self) -> np.ndarray:
        """(B, K) booleans: whether each bank is busy at each change point."""
        if self.busy is not None:
            return self.busy
        return self.banks_on[None, :] > np.arange(self.bank_count)[:, None]

    def idle_intervals(self) -> IdleIntervals:
        """Every bank's idle intervals, found from the step changes without looping over change points."""
        bounds = np.append(self.times, self.cycles)
        if self.busy is None:
            return IdleIntervals(
                self.cycles, self.bank_count, compacting_spans(self.banks_on, bounds, self.bank_count), True
            )
        padded = np.pad(self.busy.astype(np.int8), ((0, 0), (1, 1)), constant_values=1)
        step = np.diff(padded, axis=1)
        # np.nonzero walks row-major, so both lists come out sorted by bank, then time, and pair up in order.
        bank, falls = np.nonzero(step == -1)
        _, rises = np.nonzero(step == 1)
        bank = bank.astype(np.int64)
        return IdleIntervals(self.cycles, self.bank_count, IdleSpans(bank, bank + 1, bounds[falls], bounds[rises]))


def compacting_spans(banks_on: np.ndarray, bounds: np.ndarray, bank_count: int) -> IdleSpans:
    """The idle spans of the compacting allocator, whose ``banks_on`` busy banks (one count per change point) are
    the lowest ones, straight from the counts; ``bounds`` holds the change points' cycles and the trace's end.

    Where the count falls from ``a`` to ``b`` at change point ``p``, banks ``[b, a)`` fall idle; bank ``j`` of them
    wakes at the first later change point whose count exceeds ``j``. Walking from ``p`` to the next change point
    whose count is higher than the current one's (``rise``), and from there on, visits exactly those wake-ups in
    bank order: each step ends the span of banks ``[count here, min(count there, a))``. Before the trace and after
    it every bank counts as busy, so leading spans start at 0 and trailing ones end at ``cycles``.
    """
    # Counts padded with every bank busy before the trace and one more after it, so every walk stops by the end; in
    # the smallest type that holds them, as the jumps below read them over and over.
    padded = np.concatenate([[bank_count], banks_on, [bank_count + 1]])
    count = padded.astype(np.min_scalar_type(bank_count + 1))
    size = len(count)
    # rise[p]: the first q > p whose count exceeds count[p], by pointer jumping: rise[p] only ever moves to a point
    # with everything in between at most count[p], and each round jumps the unresolved ones along their pointers'.
    # The unresolved ones' pointers are carried along rather than read back each round.
    rise = np.arange(1, size + 1)
    rise[-1] = size - 1
    todo = np.flatnonzero(count[1:] <= count[:-1])  # the last point stays put: no walk goes past it
    level, pointer = count[todo], todo + 1
    while len(todo):
        rise[todo] = pointer = rise[pointer]
        unresolved = np.flatnonzero(count[pointer] <= level)
        todo, level, pointer = todo[unresolved], level[unresolved], pointer[unresolved]
    falls = np.flatnonzero(count[1:-1] < count[:-2]) + 1
    # One walk per fall, all advanced together: round r gives each walk still going its r-th span (its r-th lowest
    # banks). The spans are listed round by round, in order of start within a round.
    # (the point before the fall, the count there, from, to) of each round, after an empty one so that even no falls
    # concatenate.
    before, above = falls - 1, count[falls - 1]
    at, rounds = falls, [(falls[:0], above[:0], falls[:0], falls[:0])]
    while len(before):
        after = rise[at]
        rounds.append((before, above, at, after))
        going = np.flatnonzero(count[after] < above)
        before, above, at = before[going], above[going], after[going]
    before, above, at, after = (np.concatenate(column) for column in zip(*rounds, strict=True))
    # After the trace every bank counts as busy (not one more, as padded for the walks).
    busy_after = np.minimum(count[after], bank_count).astype(np.int64)
    low, high = count[at].astype(np.int64), np.minimum(busy_after, above)
    return IdleSpans(low, high, bounds[before], bounds[after - 1], busy_after)


def ceil_div(values: np.ndarray, ratio: int) -> np.ndarray:
    """``ceil(values / ratio)`` for non-negative integer ``values`` (banks, bytes), by a shift when ``ratio`` is a
    power of two (cheaper than a division)."""
    if ratio & (ratio - 1) == 0:
        return (values + (ratio - 1)) >> (ratio.bit_length() - 1)
    return -(-values // ratio)


def expand_ranges(low: np.ndarray, high: np.ndarray, at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every ``p`` with ``low[p] < high[p]``, the pairs ``(i, at[p])`` for every ``i`` in ``[low[p], high[p])``
    (e.g. banks, or indices into another array), ``p`` by ``p``."""
    counts = np.maximum(high - low, 0)
    total = int(counts.sum())
    first = np.repeat(low, counts)
    offset = np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(counts) - counts, counts)
    return first + offset, np.repeat(at, counts)


def bank_bytes(capacity_bytes: int, bank_count: int) -> int:
    """Bytes per bank; the capacity must split evenly."""
    if bank_count < 1:
        raise ValueError(f"bank count must be at least 1, got {bank_count}")
    if capacity_bytes < 1 or capacity_bytes % bank_count:
        raise InfeasibleOrganisation(f"capacity {capacity_bytes} B does not split into {bank_count} equal banks")
    return capacity_bytes // bank_count


def compacting_activity(
    trace: OccupancyTrace,
    memory: int | str,
    capacity_bytes: int,
    bank_count: int,
    view: View = "needed",
    *,
    occupancy: np.ndarray | None = None,
) -> BankActivity:
    """Busy banks when live data is packed at the lowest addresses: ``ceil(bytes / bank size)`` per change point.

    ``view`` picks the bytes that keep a bank busy: ``needed`` (written and not yet last read, the default) or
    ``reserved`` (what Stream's allocation sets aside). ``occupancy`` is ``trace.series(memory, view)`` when the
    caller has it already (it sums the tensor classes).
    """
    size = bank_bytes(capacity_bytes, bank_count)
    occupancy = trace.series(memory, view) if occupancy is None else occupancy
    peak = int(occupancy.max())
    if peak > capacity_bytes:
        raise InfeasibleOrganisation(
            f"memory {trace.memories[trace.memory_index(memory)].name!r} holds up to {peak} B ({view}), "
            f"more than the capacity {capacity_bytes} B"
        )
    return BankActivity(trace.cycles, trace.times, bank_count, size, ceil_div(occupancy, size))


def first_fit_activity(
    allocations: Sequence[Allocation], cycles: int, capacity_bytes: int, bank_count: int
) -> BankActivity:
    """Busy banks when each allocation takes the lowest free address range that fits and never moves.

    Allocations are placed in order of start cycle (ties in the given order), after freeing everything whose
    ``end`` is at or before that cycle. A bank is busy while any live allocation overlaps it. The change points are
    cycle 0 and every allocation start and end inside the trace.
    """
    size = bank_bytes(capacity_bytes, bank_count)
    table = _allocation_table(allocations, cycles)
    address = _first_fit_addresses(table, capacity_bytes)
    times = np.unique(np.concatenate([[0], table[:, :2].ravel()]))
    times = times[times < cycles]
    first_k = np.searchsorted(times, table[:, 0])
    last_k = np.searchsorted(times, table[:, 1])  # exclusive; ``end == cycles`` maps past the last change point
    first_bank = address // size
    last_bank = (address + table[:, 2] - 1) // size
    # A 2-D difference array: +1 where an allocation starts covering a bank, -1 where it stops.
    counts = last_bank - first_bank + 1
    banks, _ = expand_ranges(first_bank, last_bank + 1, np.zeros(len(table), dtype=np.int64))
    steps = np.zeros((bank_count, len(times) + 1), dtype=np.int64)
    np.add.at(steps, (banks, np.repeat(first_k, counts)), 1)
    np.add.at(steps, (banks, np.repeat(last_k, counts)), -1)
    busy = np.cumsum(steps, axis=1)[:, :-1] > 0
    return BankActivity(cycles, times, bank_count, size, busy.sum(axis=0), busy)


def _allocation_table(allocations: Sequence[Allocation], cycles: int) -> np.ndarray:
    """The allocations as an (N, 3) int64 array of start, end, size, after checking each one."""
    for index, item in enumerate(allocations):
        if not (0 <= item.start < item.end <= cycles) or item.size < 1:
            raise ValueError(
                f"allocation #{index} {item}: expected 0 <= start < end <= cycles ({cycles}) and size >= 1 byte"
            )
    return np.array([(a.start, a.end, a.size) for a in allocations], dtype=np.int64).reshape(-1, 3)


def _first_fit_addresses(table: np.ndarray, capacity_bytes: int) -> np.ndarray:
    """The base address first fit gives each allocation.

    Placement depends on every earlier placement, so this walks the allocation events in order; it runs once per
    tensor lifetime, not per change point or per configuration.
    """
    address = np.zeros(len(table), dtype=np.int64)
    live: list[tuple[int, int, int]] = []  # (base, size, end), sorted by base
    for index in np.argsort(table[:, 0], kind="stable"):
        start, end, size = (int(v) for v in table[index])
        live = [block for block in live if block[2] > start]
        base = 0
        for block_base, block_size, _ in live:
            if block_base - base >= size:
                break
            base = block_base + block_size
        if base + size > capacity_bytes:
            held = sum(block[1] for block in live)
            raise InfeasibleOrganisation(
                f"first fit cannot place allocation #{index} ({size} B at cycle {start}): {held} B are live in "
                f"{capacity_bytes} B and no free range is large enough"
            )
        address[index] = base
        live.append((base, size, end))
        live.sort()
    return address
