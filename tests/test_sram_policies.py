"""Bank activity, gating policies and the energy model on hand-built traces: exact numbers and sanity laws."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream_trapti.sram.activity import (
    Allocation,
    BankActivity,
    IdleSpans,
    InfeasibleOrganisation,
    compacting_activity,
    expand_ranges,
    first_fit_activity,
)
from stream_trapti.sram.energy import AccessCounts, BankCosts, access_counts, evaluate_energy
from stream_trapti.sram.policies import gated_spans, gating_outcome, idle_profile, idle_profiles, policy_names

from conftest import HAND, HAND_COSTS, make_trace, random_trace


def hand_profile():
    return idle_profile(compacting_activity(make_trace(**HAND), "sram", 400, 4).idle_intervals())


# ------------------------------------------------------------------------------------------------ activity
def test_compacting_banks_on_and_idle_intervals_by_hand():
    activity = compacting_activity(make_trace(**HAND), "sram", 400, 4)
    assert activity.bank_bytes == 100
    assert activity.banks_on.tolist() == [0, 2, 1, 4, 0]
    idle = activity.idle_intervals()
    assert idle.bank.tolist() == [0, 0, 1, 1, 1, 2, 2, 3, 3]
    assert idle.start.tolist() == [0, 80, 0, 30, 80, 0, 80, 0, 80]
    assert idle.end.tolist() == [10, 100, 10, 60, 100, 60, 100, 60, 100]
    # Busy bank-cycles = Σ banks_on · duration, so idle = B·T − that.
    assert idle.length.sum() == 4 * 100 - (activity.banks_on * make_trace(**HAND).durations()).sum()


def test_reserved_view_is_selectable():
    trace = make_trace(**{**HAND, "reserved": [400, 400, 400, 400, 400]})
    assert compacting_activity(trace, 0, 400, 4, view="reserved").banks_on.tolist() == [4] * 5
    assert compacting_activity(trace, 0, 400, 4).banks_on.tolist() == [0, 2, 1, 4, 0]


@pytest.mark.parametrize("seed", range(5))
def test_compacting_fast_path_matches_the_busy_matrix_path(seed):
    activity = compacting_activity(random_trace(seed), 0, 1 << 16, 16)
    fast = activity.idle_intervals()
    general = BankActivity(
        activity.cycles, activity.times, 16, activity.bank_bytes, activity.banks_on, activity.busy_matrix()
    ).idle_intervals()
    for name in ("bank", "start", "end"):
        assert np.array_equal(getattr(fast, name), getattr(general, name))


def by_start(spans: IdleSpans) -> IdleSpans:
    """``spans`` in order of start, then bank (compacting_spans lists them round by round)."""
    order = np.lexsort((spans.low, spans.start))
    return IdleSpans(*(getattr(spans, name)[order] for name in ("low", "high", "start", "end", "busy_after")))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), bank_count=st.integers(1, 12))
def test_compacting_spans_are_the_busy_matrix_intervals_in_runs(data, bank_count):
    """The compacting allocator's spans, read straight off the busy-bank counts, are the per-bank idle intervals of
    its busy matrix (bank i busy iff more than i banks are) in runs: consecutive banks idle over the same
    [start, end), by start then bank, each run as long as it goes; with the busy count each one ends at."""
    banks_on = data.draw(st.lists(st.integers(0, bank_count), min_size=1, max_size=40))
    durations = data.draw(st.lists(st.integers(1, 50), min_size=len(banks_on), max_size=len(banks_on)))
    times = np.concatenate([[0], np.cumsum(durations[:-1])]).astype(np.int64)
    activity = BankActivity(int(sum(durations)), times, bank_count, 1, np.array(banks_on, dtype=np.int64))
    spans = by_start(activity.idle_intervals().spans)
    general = replace(activity, busy=activity.busy_matrix()).idle_intervals()
    order = np.lexsort((general.bank, general.start))
    bank, start, end = general.bank[order], general.start[order], general.end[order]
    new_run = np.ones(len(bank), dtype=bool)
    new_run[1:] = (start[1:] != start[:-1]) | (end[1:] != end[:-1]) | (bank[1:] != bank[:-1] + 1)
    first = np.flatnonzero(new_run)
    last = np.append(first[1:], len(bank))[: len(first)] - 1
    for got, want in ((spans.low, bank[first]), (spans.high, bank[last] + 1), (spans.start, start[first])):
        assert got.tolist() == want.tolist()
    assert spans.end.tolist() == end[first].tolist()
    # The busy count once each span has ended (every bank after the trace).
    after = np.append(banks_on, bank_count)[np.searchsorted(np.append(times, activity.cycles), spans.end)]
    assert spans.busy_after.tolist() == after.tolist()


def test_infeasible_organisations_are_refused():
    trace = make_trace(**HAND)
    with pytest.raises(InfeasibleOrganisation, match="holds up to 350 B.*capacity 300 B"):
        compacting_activity(trace, 0, 300, 2)
    with pytest.raises(InfeasibleOrganisation, match="does not split into 3"):
        compacting_activity(trace, 0, 400, 3)


FRAGMENTING = [
    Allocation(0, 100, 50),  # A at [0, 50): bank 0
    Allocation(0, 40, 100),  # B at [50, 150): banks 0-1
    Allocation(0, 100, 60),  # C at [150, 210): banks 1-2
    Allocation(40, 100, 30),  # D fills B's hole at [50, 80): bank 0
]


def test_first_fit_exposes_fragmentation_and_never_beats_compacting():
    first_fit = first_fit_activity(FRAGMENTING, 100, 400, 4)
    assert first_fit.times.tolist() == [0, 40]
    assert first_fit.busy.astype(int).tolist() == [[1, 1], [1, 1], [1, 1], [0, 0]]
    live = [210, 140]  # bytes live at cycles 0 and 40
    compacting = compacting_activity(make_trace([0, 40], live, 100, 400), 0, 400, 4)
    assert compacting.banks_on.tolist() == [3, 2]
    assert first_fit.banks_on.tolist() == [3, 3]
    assert np.all(first_fit.banks_on >= compacting.banks_on)


def test_first_fit_never_beats_compacting_on_random_lifetimes():
    rng = np.random.default_rng(7)
    starts = rng.integers(0, 900, 200)
    allocations = [Allocation(int(s), int(s + rng.integers(1, 100)), int(rng.integers(1, 60))) for s in starts]
    first_fit = first_fit_activity(allocations, 1000, 1 << 14, 64)
    # Live bytes per change point, as the trace's "needed" view would hold them.
    table = np.array([(a.start, a.end, a.size) for a in allocations])
    live = [(table[:, 2] * ((table[:, 0] <= t) & (table[:, 1] > t))).sum() for t in first_fit.times]
    compacting = compacting_activity(make_trace(first_fit.times, live, 1000, 1 << 14), 0, 1 << 14, 64)
    assert np.all(first_fit.banks_on >= compacting.banks_on)
    assert np.any(first_fit.banks_on > compacting.banks_on)


def test_first_fit_reports_what_does_not_fit():
    with pytest.raises(InfeasibleOrganisation, match=r"allocation #2 \(60 B at cycle 0\)"):
        first_fit_activity(FRAGMENTING[:3], 100, 200, 2)
    with pytest.raises(ValueError, match=r"allocation #0 .*start < end"):
        first_fit_activity([Allocation(5, 5, 10)], 100, 200, 2)


# ------------------------------------------------------------------------------------------------ policies
def test_hand_energies_per_policy():
    profile = hand_profile()
    counts = access_counts(make_trace(**HAND), 0, 128)
    assert counts == AccessCounts(reads=4, writes=2)  # 64 B and 32 B through a 16-byte port

    def run(policy, timeouts=None):
        return evaluate_energy(profile, policy, HAND_COSTS, counts, 1.0, timeouts)

    always = run("always_on")
    assert always.total_pj.tolist() == [8 + 400]
    # Immediate: all 250 idle bank-cycles gated, 5 wake-ups (4 leading + 1 interior), 2 wake events × 2 cycles.
    # Stall at cycle 10: banks 0 and 1 wake (powered), banks 2 and 3 stay gated (idle since 0); stall at 60: banks
    # 1-3 wake and bank 0 is busy, all powered. So 2 × (2 · 1 + 2 · 0.25) + 2 × 4 · 1 = 13 pJ.
    immediate = run("immediate")
    assert immediate.gated_bank_cycles.tolist() == [250]
    assert immediate.wakes.tolist() == [5]
    assert immediate.penalty_cycles.tolist() == [4]
    assert immediate.stall_pj.tolist() == [13.0]
    assert immediate.total_pj.tolist() == [8 + 150 + 62.5 + 50 + 13]
    # τ = 25 gates 5 cycles of the 30-cycle interior interval; τ = 40 gates only the leading intervals. Both stall at
    # 10 and 60 (banks 2 and 3 are woken from the leading intervals there), with the same bank states as above.
    timeout = run("timeout", np.array([25, 40]))
    assert timeout.gated_bank_cycles.tolist() == [145, 140]
    assert timeout.wakes.tolist() == [5, 4]
    assert timeout.penalty_cycles.tolist() == [4, 4]
    assert timeout.stall_pj.tolist() == [13.0, 13.0]
    assert timeout.total_pj.tolist() == [8 + 255 + 36.25 + 50 + 13, 8 + 260 + 35 + 40 + 13]
    # Offline: break-even 10 pJ / 0.75 mW = 13.3 cycles, + 2 wake cycles: the 10-cycle leading intervals stay
    # powered; the two 60-cycle ones and the 30-cycle one are gated minus 2 cycles each; the trailing ones fully.
    offline = run("offline_optimal")
    assert offline.gated_bank_cycles.tolist() == [2 * 58 + 28 + 4 * 20]
    assert offline.wakes.tolist() == [3]
    assert offline.penalty_cycles.tolist() == [0] and offline.stall_pj.tolist() == [0.0]
    assert offline.total_pj.tolist() == [8 + 176 + 56 + 30]


def test_network_leaks_once_and_through_the_stalls():
    """The hand example with a 0.5 mW network between the banks: 0.5 × 100 cycles always, plus 0.5 × 4 stalled
    cycles for the on-demand policies."""
    profile = hand_profile()
    costs = BankCosts(**{**HAND_COSTS.__dict__, "network_mw": 0.5})
    counts = AccessCounts(reads=4, writes=2)
    always = evaluate_energy(profile, "always_on", costs, counts, 1.0)
    assert always.leakage_on_pj.tolist() == [400.0] and always.network_pj.tolist() == [50.0]
    assert always.total_pj.tolist() == [8 + 400 + 50]
    immediate = evaluate_energy(profile, "immediate", costs, counts, 1.0)
    assert immediate.network_pj.tolist() == [50.0] and immediate.stall_pj.tolist() == [13 + 0.5 * 4]
    offline = evaluate_energy(profile, "offline_optimal", costs, counts, 1.0)
    assert offline.total_pj.tolist() == [8 + 176 + 56 + 30 + 50]


def test_clock_converts_cycles_to_time():
    profile = hand_profile()
    at_2ghz = evaluate_energy(profile, "always_on", HAND_COSTS, AccessCounts(0, 0), 2.0)
    assert at_2ghz.leakage_on_pj.tolist() == [200.0]  # 400 bank-cycles of 0.5 ns at 1 mW


def test_gated_spans_total_equals_the_outcome():
    for seed in range(3):
        intervals = compacting_activity(random_trace(seed), 0, 1 << 16, 32).idle_intervals()
        profile = idle_profile(intervals)
        for policy in policy_names():
            for timeout in [0, 37, 500] if policy == "timeout" else [None]:
                outcome = gating_outcome(profile, policy, None if timeout is None else [timeout], 3, 41.5)
                spans = gated_spans(intervals, policy, timeout, 3, 41.5)
                bank_cycles = ((spans.end - spans.start) * (spans.high - spans.low)).sum()
                assert bank_cycles == outcome.gated_bank_cycles[0], (policy, timeout)
                assert np.all(spans.end > spans.start) and np.all(spans.high > spans.low)


def test_policy_errors_name_the_problem():
    profile = hand_profile()
    with pytest.raises(ValueError, match="unknown gating policy 'sleepy'"):
        gating_outcome(profile, "sleepy")
    with pytest.raises(ValueError, match="needs at least one timeout"):
        gating_outcome(profile, "timeout")
    with pytest.raises(ValueError, match="non-negative"):
        gating_outcome(profile, "timeout", np.array([-1]))
    with pytest.raises(ValueError, match="gated_mw .* exceeds leakage_mw"):
        BankCosts(1, 1, leakage_mw=1.0, gated_mw=2.0, wake_energy_pj=0, wake_cycles=0, area_mm2=1)
    with pytest.raises(ValueError, match="BankCosts.read_pj must be a finite non-negative"):
        BankCosts(-1, 1, 1, 0, 0, 0, 1)


# ------------------------------------------------------------------------------------------------ sanity laws
def reference_stalls(intervals, timeout: int) -> tuple[int, int]:
    """Stalls and gated bank-stalls of an on-demand policy, by brute force over a (banks, cycles) state matrix:
    the documented rules, written out independently of :mod:`~stream_trapti.sram.policies`."""
    gated = np.zeros((intervals.bank_count, intervals.cycles), dtype=bool)
    for bank, start, end in zip(intervals.bank, intervals.start, intervals.end, strict=True):
        gated[bank, start if start == 0 else start + timeout : end] = True
    ends = intervals.end[intervals.wakes]
    stalls = gated_bank_stalls = 0
    for cycle in np.unique(ends):
        woken = intervals.bank[intervals.wakes][ends == cycle]
        if gated[woken, cycle - 1].any():
            stalls += 1
            gated_bank_stalls += int(gated[:, cycle - 1].sum() - gated[woken, cycle - 1].sum())
    return stalls, gated_bank_stalls


@pytest.mark.parametrize("capacity", [1 << 16, 1 << 17])  # the larger one leaves half the banks unused
@pytest.mark.parametrize("seed", range(3))
def test_stalls_match_a_brute_force_simulation(seed, capacity):
    trace = random_trace(seed, points=120)
    timeouts = [0, 5, 60, 400]
    for banks in (1, 4, 32):
        intervals = compacting_activity(trace, 0, capacity, banks).idle_intervals()
        outcome = gating_outcome(idle_profile(intervals), "timeout", np.array(timeouts))
        reference = [reference_stalls(intervals, tau) for tau in timeouts]
        assert outcome.stalls.tolist() == [r[0] for r in reference], banks
        assert outcome.gated_bank_stalls.tolist() == [r[1] for r in reference], banks
        assert any(r[1] for r in reference) or banks == 1


CAPACITY = 1 << 12
occupancy_steps = st.lists(st.tuples(st.integers(1, 300), st.integers(0, CAPACITY)), min_size=1, max_size=40)
bank_costs = st.builds(
    lambda leak, kept, wake_pj, wake_cycles, network: BankCosts(
        read_pj=3.0,
        write_pj=4.0,
        leakage_mw=leak,
        gated_mw=leak * kept,
        wake_energy_pj=wake_pj,
        wake_cycles=wake_cycles,
        area_mm2=1.0,
        network_mw=network,
    ),
    st.floats(0.01, 10),
    st.floats(0, 1),
    st.floats(0, 2000),
    st.integers(0, 40),
    st.floats(0, 5),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    steps=occupancy_steps,
    costs=bank_costs,
    clock_ghz=st.sampled_from([0.5, 1.0, 2.0]),
    timeouts=st.lists(st.integers(0, 2000), min_size=1, max_size=5),
)
def test_offline_optimal_is_the_cheapest_policy(steps, costs, clock_ghz, timeouts):
    """On any trace and bank costs: offline_optimal ≤ immediate, every timeout and always_on at every bank count, and
    always_on leaks B · P_on · T plus the network · T."""
    durations, needed = zip(*steps, strict=True)
    times = np.concatenate([[0], np.cumsum(durations[:-1])])
    trace = make_trace(times, needed, int(sum(durations)), CAPACITY, read_bytes=640, write_bytes=320)
    counts = access_counts(trace, 0, 128)
    for banks in (1, 2, 4, 16, 64):
        profile = idle_profile(compacting_activity(trace, 0, CAPACITY, banks).idle_intervals())

        def total(policy, taus=None, profile=profile):
            return evaluate_energy(profile, policy, costs, counts, clock_ghz, taus).total_pj

        offline = total("offline_optimal")[0]
        others = np.concatenate([total("always_on"), total("immediate"), total("timeout", np.array(timeouts))])
        assert np.all(offline <= others * (1 + 1e-12)), banks
        always = evaluate_energy(profile, "always_on", costs, counts, clock_ghz)
        assert always.leakage_on_pj[0] == pytest.approx(banks * costs.leakage_mw * trace.cycles / clock_ghz)
        assert always.network_pj[0] == pytest.approx(costs.network_mw * trace.cycles / clock_ghz)
        assert always.total_pj[0] == pytest.approx(
            always.dynamic_pj[0] + (banks * costs.leakage_mw + costs.network_mw) * trace.cycles / clock_ghz
        )


@pytest.mark.parametrize("policy", ["immediate", "offline_optimal"])
@pytest.mark.parametrize("seed", range(4))
def test_more_banks_never_leak_more_when_wakes_are_free(policy, seed):
    trace = random_trace(seed)
    capacity = 1 << 16
    leakage = []
    for banks in (1, 2, 4, 8, 16, 32, 64):
        # Leakage proportional to the bank's bytes, wake-ups free: finer banks can only switch off more bytes.
        costs = BankCosts(
            1, 1, leakage_mw=2.0 / banks, gated_mw=0.6 * 2.0 / banks, wake_energy_pj=0, wake_cycles=0, area_mm2=1
        )
        profile = idle_profile(compacting_activity(trace, 0, capacity, banks).idle_intervals())
        energy = evaluate_energy(profile, policy, costs, AccessCounts(0, 0), 1.0)
        leakage.append(float(energy.leakage_on_pj[0] + energy.gated_residual_pj[0]))
    assert np.all(np.diff(leakage) <= 1e-9 * leakage[0])
    assert leakage[-1] < leakage[0]


@pytest.mark.parametrize("banks", [1, 4, 64])
def test_empty_trace_gates_every_bank_for_the_whole_trace(banks):
    trace = make_trace([0], [0], 1000, 1 << 12)
    intervals = compacting_activity(trace, 0, 1 << 12, banks).idle_intervals()
    profile = idle_profile(intervals)
    costs = HAND_COSTS
    for policy, timeouts in (("immediate", None), ("timeout", np.array([0, 10, 10**6])), ("offline_optimal", None)):
        energy = evaluate_energy(profile, policy, costs, AccessCounts(0, 0), 1.0, timeouts)
        assert np.all(energy.gated_bank_cycles == banks * 1000), policy
        assert np.all(energy.wakes == 0) and np.all(energy.penalty_cycles == 0)
        assert np.all(energy.leakage_on_pj == 0)
        assert np.allclose(energy.total_pj, banks * 1000 * costs.gated_mw)
    always = evaluate_energy(profile, "always_on", costs, AccessCounts(0, 0), 1.0)
    assert always.gated_bank_cycles.tolist() == [0]


def test_power_off_residual_is_zero_and_split_is_the_same():
    profile = hand_profile()
    retention = evaluate_energy(profile, "immediate", HAND_COSTS, AccessCounts(0, 0), 1.0)
    power_off = evaluate_energy(
        profile, "immediate", BankCosts(**{**HAND_COSTS.__dict__, "gated_mw": 0.0}), AccessCounts(0, 0), 1.0
    )
    assert power_off.gated_bank_cycles.tolist() == retention.gated_bank_cycles.tolist()
    assert power_off.gated_residual_pj.tolist() == [0.0]
    # 250 gated bank-cycles, and 2 banks gated through one 2-cycle stall (see test_hand_energies_per_policy).
    assert retention.total_pj[0] - power_off.total_pj[0] == pytest.approx(0.25 * 250 + 0.25 * 2 * 2)


@pytest.mark.parametrize(
    ("seed", "capacity", "counts"),
    [(seed, 1 << 16, (1, 2, 4, 8, 16, 32, 64)) for seed in range(6)] + [(6, 12 << 12, (1, 3, 4, 6, 12))],
)
def test_nested_organisations_profile_as_each_one_on_its_own(seed, capacity, counts):
    """The compacting allocator's coarser organisations read off the finest one (IdleIntervals.coarser, profiled
    together by idle_profiles, stalls' bystanders counted per wake event) are exactly what extracting each one and
    listing every (wake event, idle bank) pair gives: the same intervals, sorted lengths and policy outcomes. Bank
    counts need not be powers of two (12 -> 6 -> 4: not every ratio divides the next)."""
    trace = random_trace(seed, capacity=capacity, empty_share=0.1 * seed)
    finest = compacting_activity(trace, 0, capacity, counts[-1]).idle_intervals()
    profiles = idle_profiles(finest, counts)
    taus = np.array([0, 1, 7, 50, 300, 5000, 10**9])
    for banks in counts:
        own = compacting_activity(trace, 0, capacity, banks).idle_intervals()
        coarser = finest.coarser(banks)
        for name in ("bank", "start", "end"):
            assert np.array_equal(getattr(coarser, name), getattr(own, name)), (banks, name)
        # The run-length form: the same spans read off the finest organisation as extracted, each (start, end) once,
        # and its banks expanded are exactly the intervals.
        for name in ("low", "high", "start", "end"):
            assert np.array_equal(getattr(by_start(coarser.spans), name), getattr(by_start(own.spans), name))
        spans = own.spans
        assert len(np.unique(np.stack([spans.start, spans.end]), axis=1).T) == len(spans.start)
        bank, index = expand_ranges(spans.low, spans.high, np.arange(len(spans.low)))
        order = np.lexsort((spans.start[index], bank))
        for got, want in ((bank, own.bank), (spans.start[index], own.start), (spans.end[index], own.end)):
            assert np.array_equal(got[order], want), banks
        listed = idle_profile(replace(own, nested=False))  # every pair listed, as for first fit
        for policy, timeouts in (("immediate", None), ("timeout", taus), ("offline_optimal", None)):
            got, want = (gating_outcome(p, policy, timeouts, 3, 40.0) for p in (profiles[banks], listed))
            for name in ("gated_bank_cycles", "wakes", "stalls", "gated_bank_stalls"):
                assert np.array_equal(getattr(got, name), getattr(want, name)), (banks, policy, name)
        assert listed.bystanders.count_above(taus).tolist() == profiles[banks].bystanders.count_above(taus).tolist()
    with pytest.raises(ValueError, match="no coarser organisation of 5 banks"):
        finest.coarser(5)
