"""The sweep spec, the exploration (rows, baselines, Pareto front, best picks) and its written outputs."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import astuple, fields, replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_trapti.errors import ConfigError
from stream_trapti.reports.exploration_outputs import write_exploration_outputs
from stream_trapti.reports.sram_plots import _pareto
from stream_trapti.sram.activity import Allocation
from stream_trapti.sram.energy import BankCosts, BankQuery
from stream_trapti.sram.explore import ConfigResult, _edge_index, _edges, _lexmin, explore, pareto_front
from stream_trapti.sram.policies import GATING_POLICIES, GatingOutcome, GatingPolicy, policy_names
from stream_trapti.sram.sweep_config import SweepSpec, load_sweep_spec, parse_sweep_spec

from conftest import HAND, HAND_COSTS, make_trace, random_trace


def table_costs(query: BankQuery) -> BankCosts:
    """Hand-given costs: per-bank leakage proportional to bank bytes (1 mW per 100 B), cheaper accesses to smaller
    banks, a network between banks leaking 0.5 mW per bank beyond the first, area growing with the bank count and with
    sleep transistors; "lstp" leaks 10× less. Retention keeps 25 %, power-off the given share; without sleep
    transistors nothing is gated."""
    share = query.bank_bytes / 100
    leak = share * (0.1 if query.flavour == "lstp" else 1.0)
    fraction = 0.25 if query.gating_mode == "retention" else query.off_leakage_fraction
    return BankCosts(
        read_pj=1.0 * share,
        write_pj=2.0 * share,
        leakage_mw=leak,
        gated_mw=leak * fraction if query.power_gating else leak,
        wake_energy_pj=10.0 * share if query.power_gating else 0.0,
        wake_cycles=2,
        area_mm2=1.0 + 0.1 * query.bank_count + (0.5 if query.power_gating else 0.0),
        network_mw=0.5 * (query.bank_count - 1),
    )


# ------------------------------------------------------------------------------------------------ sweep spec
def test_spec_defaults_and_conversions(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("capacities_kib: [0.5, 4]\nbanks: [1, 4]\nflavours: [hp, lstp]\nmemory: sram\n")
    spec = load_sweep_spec(path)
    assert spec.capacities_bytes == (512, 4096)
    assert spec.banks == (1, 4) and spec.flavours == ("hp", "lstp") and spec.memory == "sram"
    assert spec.policies == policy_names() and spec.view == "needed" and spec.clock_ghz == 1.0
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_sweep_spec(empty) == SweepSpec()
    assert SweepSpec().banks == (1, 2, 4, 8, 16, 32, 64)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"bankz": [1]}, r"sweep.yaml: unknown key\(s\) \['bankz'\]; allowed keys are \[.*'banks'"),
        ({"banks": [3]}, r"sweep.yaml: key 'banks\[0\]': expected a power of two from 1 to 64, got 3"),
        ({"banks": [128]}, r"key 'banks\[0\]': expected a power of two from 1 to 64, got 128"),
        ({"banks": 4}, r"key 'banks': expected a list, got 4"),
        ({"banks": [2, 2]}, r"key 'banks': expected each entry once"),
        ({"policies": ["sometimes"]}, r"key 'policies\[0\]': expected 'always_on', .* got 'sometimes'"),
        ({"timeouts_cycles": [-5]}, r"key 'timeouts_cycles\[0\]': expected a value greater than or equal to 0"),
        ({"timeouts_cycles": []}, r"key 'timeouts_cycles': must not be empty when policy 'timeout'"),
        ({"capacities_bytes": [1024], "capacities_kib": [1]}, r"not both"),
        ({"capacities_kib": [0.0001]}, r"key 'capacities_kib\[0\]': expected a whole number of bytes"),
        ({"clock_ghz": 0}, r"key 'clock_ghz': expected a value greater than 0, got 0"),
        ({"gated_leakage_fraction": 1.5}, r"key 'gated_leakage_fraction': expected a value less than or equal to 1"),
        ({"technology_nm": True}, r"key 'technology_nm': expected 22, 32, 45, 65 or 90, got True"),
        ({"gating_modes": ["drowsy"]}, r"key 'gating_modes\[0\]': expected 'retention' or 'power_off'"),
        ({"view": "peak"}, r"key 'view': expected 'reserved' or 'needed', got 'peak'"),
        ({"port_bits": 0}, r"key 'port_bits': expected a value greater than or equal to 8, got 0"),
        (
            {"max_latency_penalty_cycles": -1},
            r"key 'max_latency_penalty_cycles': expected a value greater than or equal",
        ),
    ],
)
def test_spec_errors_name_the_file_and_key(data, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep_spec(data, source="sweep.yaml")


def test_spec_must_be_a_mapping(tmp_path):
    path = tmp_path / "list.yaml"
    path.write_text("- banks\n")
    with pytest.raises(ConfigError, match="list.yaml: expected a mapping"):
        load_sweep_spec(path)


# ------------------------------------------------------------------------------------------------ exploration
HAND_SPEC = SweepSpec(
    banks=(1, 2, 4), timeouts_cycles=(25, 40), flavours=("hp", "lstp"), gating_modes=("retention", "power_off")
)


GOLDEN_TRACE = dict(seed=7, capacity=1 << 16, points=300)
_GOLDEN_SWEEP = dict(
    capacities_bytes=(1 << 16, (1 << 16) + 32, 1 << 17, 1024),
    banks=(1, 4, 16, 64),
    timeouts_cycles=(0, 30, 500),
    flavours=("hp",),
    gating_modes=("retention", "power_off"),
)
GOLDEN_SPECS = {
    "free": SweepSpec(**_GOLDEN_SWEEP),
    "limited": SweepSpec(**_GOLDEN_SWEEP, max_latency_penalty_cycles=40),
}
GOLDEN = Path(__file__).parent / "data" / "explore_golden.json"


@pytest.mark.parametrize("name", GOLDEN_SPECS)
def test_explore_reproduces_the_row_by_row_implementation_exactly(name):
    """tests/data/explore_golden.json was written by explore() as it was before it became columnar (commit 4d6dfbc:
    a ConfigResult per row, every organisation extracted and profiled on its own, stalls' bystanders listed pair by
    pair): capacities that split into 64 banks, into 32 at most (so 64 is skipped and 16 is the finest), twice the
    trace's, and one below its peak. Every row, the front, the best picks, the skipped and rejected counts and the
    heatmap (by its hash) are identical, floats bit for bit."""
    golden = json.loads(GOLDEN.read_text())[name]
    result = explore(random_trace(**GOLDEN_TRACE), GOLDEN_SPECS[name], table_costs)
    assert [field.name for field in fields(ConfigResult)] == golden["fields"]
    assert [list(astuple(c)) for c in result.configs] == golden["rows"]
    assert list(result.pareto) == golden["pareto"] and result.best == golden["best"]
    assert [list(s) for s in result.skipped] == golden["skipped"] and result.rejected == golden["rejected"]
    assert result.heatmap.label == golden["heatmap"]["label"]
    fractions = result.heatmap.busy.tobytes() + result.heatmap.powered.tobytes()
    assert hashlib.sha256(fractions).hexdigest() == golden["heatmap"]["sha256"]


def test_rows_cover_the_sweep_with_hand_numbers():
    trace = make_trace(**HAND)
    result = explore(trace, HAND_SPEC, table_costs)
    per_organisation = len(policy_names()) - 1 + 2  # the timeout policy contributes one row per timeout
    assert len(result.configs) == 3 * 2 * 2 * per_organisation
    assert result.port_bits == 128 and result.peak_bytes == 350
    # 4 × 100-byte banks, hp, retention: table_costs equals HAND_COSTS there plus a 1.5 mW network, so the hand
    # numbers of test_sram_policies reappear with 1.5 mW × 100 cycles added, and 1.5 mW × 4 stalled cycles.
    hand = replace(HAND_COSTS, area_mm2=1.9, network_mw=1.5)
    assert table_costs(BankQuery(400, 4, 128, "hp", 22, 300, "retention", 1.0)) == hand
    rows = {
        (c.policy, c.timeout_cycles): c
        for c in result.configs
        if (c.bank_count, c.flavour, c.gating_mode) == (4, "hp", "retention")
    }
    assert rows["always_on", None].total_pj == 408.0 + 150
    assert rows["always_on", None].area_mm2 == 1.4 and rows["immediate", None].area_mm2 == 1.9  # sleep transistors
    assert not rows["always_on", None].sleep_transistors and rows["immediate", None].sleep_transistors
    immediate = rows["immediate", None]
    assert (immediate.network_pj, immediate.stall_pj) == (150.0, 13 + 6)
    assert immediate.total_pj == 283.5 + 150 + 6 and immediate.penalty_cycles == 4
    assert immediate.latency_cycles == 104
    assert [rows["timeout", t].total_pj for t in (25, 40)] == [362.25 + 156, 356.0 + 156]
    offline = rows["offline_optimal", None]
    assert offline.total_pj == 270.0 + 150 and offline.penalty_cycles == 0 and offline.latency_cycles == 100
    assert offline.sleep_transistors
    # Baseline: one 400-byte bank always on = 4 reads × 4 pJ + 2 writes × 8 pJ + 4 mW × 100 ns; no network.
    assert offline.baseline_pj == 16 + 16 + 400
    assert offline.saving == pytest.approx(1 - 420 / 432)


def assert_offline_optimal_is_never_beaten(result):
    """No configuration costs less than offline_optimal at the same capacity, bank count, flavour and mode."""
    offline = {
        (c.capacity_bytes, c.bank_count, c.flavour, c.gating_mode): c.total_pj
        for c in result.configs
        if c.policy == "offline_optimal"
    }
    for config in result.configs:
        key = (config.capacity_bytes, config.bank_count, config.flavour, config.gating_mode)
        assert offline[key] <= config.total_pj * (1 + 1e-12), (config.policy, config.timeout_cycles, key)


@pytest.mark.parametrize("seed", range(3))
def test_monolithic_always_on_saves_nothing_and_offline_is_never_beaten(seed):
    spec = SweepSpec(timeouts_cycles=(0, 10, 1000), flavours=("hp", "lstp"), gating_modes=("retention", "power_off"))
    result = explore(random_trace(seed), spec, table_costs)
    assert any(c.stall_pj > 0 for c in result.configs)
    assert_offline_optimal_is_never_beaten(result)
    for config in result.configs:
        if config.bank_count == 1 and config.policy == "always_on":
            assert config.saving == 0.0 and config.total_pj == config.baseline_pj
        parts = (
            config.dynamic_pj
            + config.leakage_on_pj
            + config.gated_residual_pj
            + config.network_pj
            + config.wake_pj
            + config.stall_pj
        )
        assert config.total_pj == pytest.approx(parts)
        assert config.latency_cycles == result.cycles + config.penalty_cycles


def test_offline_optimal_leaves_out_sleep_transistors_that_do_not_pay():
    """When sleep transistors make every access 1 % dearer and retention saves nothing, the offline optimum is the
    organisation without them, always on."""

    def dear_gating(query: BankQuery) -> BankCosts:
        costs = table_costs(query)
        if not query.power_gating:
            return costs
        return replace(costs, read_pj=1.01 * costs.read_pj, gated_mw=costs.leakage_mw)

    spec = replace(HAND_SPEC, flavours=("hp",), gating_modes=("retention",))
    result = explore(make_trace(**HAND), spec, dear_gating)
    assert_offline_optimal_is_never_beaten(result)
    for banks in spec.banks:
        rows = {c.policy: c for c in result.configs if c.bank_count == banks and c.timeout_cycles is None}
        offline, always = rows["offline_optimal"], rows["always_on"]
        assert not offline.sleep_transistors and offline.wakes == 0 and offline.gated_fraction == 0
        assert replace(offline, policy="always_on") == always


def test_latency_limit_rejects_stalling_configurations():
    trace = make_trace(**HAND)
    free = explore(trace, HAND_SPEC, table_costs)
    limited = explore(trace, replace(HAND_SPEC, max_latency_penalty_cycles=3), table_costs)
    # Every on-demand row of 2 or 4 banks stalls twice for 2 cycles; one bank stalls once (at cycle 10).
    assert {c.penalty_cycles for c in free.configs if c.bank_count > 1 and c.sleep_transistors} == {0, 4}
    assert tuple(limited.configs) == tuple(c for c in free.configs if c.penalty_cycles <= 3)
    assert limited.rejected == len(free.configs) - len(limited.configs) > 0 and free.rejected == 0
    assert max(c.penalty_cycles for c in limited.configs) <= 3


def test_best_and_pareto_are_consistent():
    result = explore(random_trace(1), SweepSpec(timeouts_cycles=(10, 100, 1000, 10_000)), table_costs)
    values = np.array([[c.total_pj, c.area_mm2, c.penalty_cycles] for c in result.configs])
    best = result.best
    assert values[best["energy"], 0] == values[:, 0].min()
    assert values[best["area"], 1] == values[:, 1].min()
    assert values[best["latency"], 2] == values[:, 2].min()
    # Among the zero-penalty configurations the latency pick has the least energy.
    assert values[best["latency"], 0] == values[values[:, 2] == values[:, 2].min(), 0].min()
    for pick in best.values():
        assert pick in result.pareto
    assert np.array_equal(np.array(result.pareto), brute_force_front(values))


def brute_force_front(values: np.ndarray) -> np.ndarray:
    dominated = [any(np.all(other <= row) and np.any(other < row) for other in values) for row in values]
    return np.flatnonzero(~np.array(dominated))


@pytest.mark.parametrize("seed", range(3))
def test_pareto_front_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 12, (700, 3)).astype(float)  # small integers: many ties and duplicates
    front = brute_force_front(values)
    assert len(np.unique(values[front], axis=0)) > 2  # peeling two leaves some of the front to the chunks
    for peel in (0, 2, len(values)):  # all in chunks, peeled then chunked, all peeled
        assert np.array_equal(pareto_front(values, chunk=64, peel=peel), front)
    assert pareto_front(np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0]])).tolist() == [0, 1, 3]


@settings(max_examples=150, deadline=None)
@given(
    values=st.integers(1, 40).flatmap(
        lambda n: st.lists(st.lists(st.integers(0, 5), min_size=3, max_size=3), min_size=n, max_size=n)
    ),
    chunk=st.integers(1, 16),
    peel=st.integers(0, 12),
)
def test_pareto_front_and_lexmin_against_brute_force(values, chunk, peel):
    """The front, peeled and chunked anyhow, is the brute-force one (duplicates kept), and a best pick is the first
    row of a stable lexicographic sort."""
    table = np.array(values, dtype=np.float64)
    assert np.array_equal(pareto_front(table, chunk=chunk, peel=peel), brute_force_front(table))
    for order in ((0, 1, 2), (1, 0, 2), (2, 0, 1)):
        assert _lexmin(table, order) == np.lexsort(tuple(table[:, c] for c in reversed(order)))[0]


@settings(max_examples=300, deadline=None)
@given(
    cycles=st.one_of(st.integers(1, 5_000), st.integers(1, 10**13)),
    bins=st.integers(1, 600),
    data=st.data(),
)
def test_heatmap_edge_index_is_the_binary_search(cycles, bins, data):
    """The heatmap's arithmetic bin lookup agrees with the binary search it replaces, on the bins' edges, next to
    them and anywhere between 0 and the trace's cycles."""
    edges = _edges(cycles, bins)
    near = np.clip(np.concatenate([edges - 1, edges, edges + 1]), 0, cycles)
    anywhere = np.array(data.draw(st.lists(st.integers(0, cycles), max_size=50)), dtype=np.int64)
    at = np.concatenate([near, anywhere, [0, cycles]])
    assert np.array_equal(_edge_index(edges, at), np.searchsorted(edges, at, side="right"))


def test_small_capacities_are_skipped_with_a_reason():
    trace = make_trace(**HAND)
    result = explore(trace, replace(HAND_SPEC, capacities_bytes=(256, 400, 1024)), table_costs)
    assert {c.capacity_bytes for c in result.configs} == {400, 1024}
    assert {(c, b) for c, b, _ in result.skipped} == {(256, 1), (256, 2), (256, 4)}
    assert "holds up to 350 B" in result.skipped[0][2]
    with pytest.raises(ConfigError, match="no configuration of the sweep can hold memory 'sram'"):
        explore(trace, replace(HAND_SPEC, capacities_bytes=(256,)), table_costs)


def test_first_fit_allocator_through_explore():
    allocations = [Allocation(0, 100, 50), Allocation(0, 40, 100), Allocation(0, 100, 60), Allocation(40, 100, 30)]
    trace = make_trace([0, 40], [210, 140], 100, 400)
    spec = replace(HAND_SPEC, allocator="first_fit", flavours=("hp",), gating_modes=("retention",))
    with pytest.raises(ConfigError, match="allocator 'first_fit' needs the tracker's per-tensor allocations"):
        explore(trace, spec, table_costs)
    first_fit = explore(trace, spec, table_costs, allocations=allocations)
    compacting = explore(trace, replace(spec, allocator="compacting"), table_costs)
    for fit, packed in zip(first_fit.configs, compacting.configs, strict=True):
        assert (fit.bank_count, fit.policy, fit.timeout_cycles) == (
            packed.bank_count,
            packed.policy,
            packed.timeout_cycles,
        )
        assert fit.gated_fraction <= packed.gated_fraction
    # With 4 banks the hole B leaves keeps a third bank busy from cycle 40 on: 60 fewer bank-cycles to gate.
    fit, packed = (
        next(c for c in r.configs if (c.bank_count, c.policy) == (4, "immediate")) for r in (first_fit, compacting)
    )
    assert (packed.gated_fraction - fit.gated_fraction) * 4 * 100 == pytest.approx(60)


def test_port_width_must_be_unambiguous():
    trace = make_trace(**HAND)
    memory = replace(trace.memories[0], write_port_bits=64)
    trace = replace(trace, memories=(memory,))
    with pytest.raises(ConfigError, match="128-bit read and 64-bit write ports; set port_bits"):
        explore(trace, HAND_SPEC, table_costs)
    assert explore(trace, replace(HAND_SPEC, port_bits=64), table_costs).accesses.reads == 8


def test_write_exploration_outputs(tmp_path):
    trace = random_trace(2)
    result = explore(
        trace, SweepSpec(timeouts_cycles=(10, 1000), flavours=("hp", "lstp")), table_costs, stream_estimate_pj=1.5e6
    )
    paths = write_exploration_outputs(result, tmp_path / "out")
    with paths["csv"].open() as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(result.configs)
    assert rows[0]["timeout_cycles"] == "" and float(rows[0]["total_pj"]) == result.configs[0].total_pj
    summary = json.loads(paths["json"].read_text())
    assert summary["stream_estimate_pj"] == 1.5e6
    assert summary["best"]["energy"]["index"] == result.best["energy"]
    assert summary["spec"]["flavours"] == ["hp", "lstp"]
    assert len(summary["configs"]) == len(result.configs)
    for name in ("heatmap", "breakdown", "pareto"):
        assert paths[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heatmap = result.heatmap
    assert (
        heatmap.busy.shape
        == heatmap.powered.shape
        == (result.configs[result.best["energy"]].bank_count, len(heatmap.edges) - 1)
    )
    # A bank can only be gated while idle: powered ≥ busy in every bin.
    assert np.all(heatmap.powered >= heatmap.busy - 1e-12)
    assert np.all((heatmap.busy >= 0) & (heatmap.busy <= 1))
    # The bins add back up to the configuration's bank-cycles: busy = Σ banks_on · duration, gated as evaluated.
    best = result.configs[result.best["energy"]]
    width = np.diff(heatmap.edges)
    busy_cycles = (np.ceil(trace.series(0) / (best.capacity_bytes // best.bank_count)) * trace.durations()).sum()
    assert (heatmap.busy * width).sum() == pytest.approx(busy_cycles)
    gated_cycles = ((1 - heatmap.powered) * width).sum()
    assert gated_cycles == pytest.approx(best.gated_fraction * best.bank_count * trace.cycles)
    assert best.gated_fraction > 0


# ------------------------------------------------------------------------------------------------ real CACTI
def test_exploration_with_real_cacti_costs():
    from stream_trapti.sram.cacti import cacti_process_count
    from stream_trapti.sram.cacti_build import CactiBuildError, ensure_cacti
    from stream_trapti.sram.energy import cacti_costs, sram_config

    try:
        ensure_cacti()
    except CactiBuildError as error:
        pytest.skip(f"CACTI cannot be built here: {error}")
    trace = make_trace(
        [0, 1000, 3000, 6000, 8000],
        [0, 3000, 1000, 7000, 0],
        10_000,
        8192,
        read_bytes=64_000,
        write_bytes=32_000,
        port_bits=64,
    )
    spec = SweepSpec(
        banks=(1, 2, 4), timeouts_cycles=(100,), flavours=("hp", "lstp/hp"), gating_modes=("retention", "power_off")
    )
    result = explore(trace, spec, cacti_costs)
    assert sram_config(BankQuery(8192, 4, 64, "lstp/hp", 22, 360, "retention", 1.0)).periphery_flavor == "hp"
    runs = cacti_process_count()
    again = explore(trace, spec, cacti_costs)
    assert cacti_process_count() == runs  # every figure came from the disk cache
    assert [c.total_pj for c in again.configs] == [c.total_pj for c in result.configs]
    assert_offline_optimal_is_never_beaten(result)
    by_key = {(c.flavour, c.gating_mode, c.bank_count, c.policy): c for c in result.configs}
    for flavour in spec.flavours:
        for mode in spec.gating_modes:
            monolithic = by_key[flavour, mode, 1, "always_on"]
            assert monolithic.saving == 0.0 and monolithic.leakage_on_pj > 0 and monolithic.dynamic_pj > 0
            for banks in spec.banks:
                gated, plain = (by_key[flavour, mode, banks, policy] for policy in ("immediate", "always_on"))
                assert gated.area_mm2 > plain.area_mm2  # sleep transistors cost area
            assert by_key[flavour, mode, 4, "always_on"].area_mm2 > monolithic.area_mm2  # more bank periphery
    # High-performance cells leak so much that switching off the 60 % of bank-cycles this trace leaves empty must
    # pay, although four banks leak more in total than one macro (retention alone need not, nor need low-leakage
    # cells, whose energy is mostly the slightly dearer banked accesses).
    assert by_key["hp", "power_off", 4, "offline_optimal"].saving > 0.2
    costs = cacti_costs(BankQuery(8192, 2, 64, "hp", 22, 360, "retention", 1.0))
    assert 0 < costs.gated_mw < costs.leakage_mw and costs.wake_energy_pj > 0 and costs.wake_cycles >= 1
    off = cacti_costs(BankQuery(8192, 2, 64, "hp", 22, 360, "power_off", 1.0))
    assert off.gated_mw == 0.0 and off.leakage_mw == costs.leakage_mw


def test_cacti_costs_by_hand():
    """The 4 MiB, 4-bank, 512-bit, 45 nm hp macro of the default hardware, from CACTI's printed figures: "Total
    leakage power of a bank" 1484.69 + gate 40.6717 mW, of which the routing to the banks (our patch's lines)
    43.6618 + 2.44152 mW; gated ("Standby leakage per bank") 1173.93 mW, routing in that run 43.977 + 2.45915 mW.
    Wake-up: Sub-array 0.396916 nJ in 0.0997883 ns, WL 0.0165674 nJ in 0.152671 ns, for 1 active mat of 2 × 8
    sub-arrays / 4 per mat = 4 mats per bank. CACTI's retention swing is 0.35 Vdd for the cells and 0.65 Vdd for
    the wordline drivers."""
    from stream_trapti.sram.cacti_build import CactiBuildError, ensure_cacti
    from stream_trapti.sram.energy import cacti_costs

    try:
        ensure_cacti()
    except CactiBuildError as error:
        pytest.skip(f"CACTI cannot be built here: {error}")
    query = BankQuery(4 << 20, 4, 512, "hp", 45, 360, "retention", clock_ghz=4.0)
    network = 43.6618 + 2.44152
    retention = cacti_costs(query)
    assert retention.network_mw == pytest.approx(network, rel=1e-5)
    assert retention.leakage_mw == pytest.approx(1484.69 + 40.6717 - network, rel=1e-5)
    assert retention.gated_mw == pytest.approx(1173.93 - (43.977 + 2.45915), rel=1e-5)
    assert retention.wake_energy_pj == pytest.approx(4 * (396.916 + 16.5674), rel=1e-5)
    assert retention.wake_cycles == 1  # ceil(0.152671 ns × 4 GHz)
    off = cacti_costs(replace(query, gating_mode="power_off"))
    assert off.wake_energy_pj == pytest.approx(4 * (396.916 / 0.35 + 16.5674 / 0.65), rel=1e-5)  # 4638.1 pJ
    assert off.wake_cycles == 2  # ceil(0.0997883 / 0.35 ns × 4 GHz): the cells' swing grows most
    plain = cacti_costs(replace(query, power_gating=False))
    # Always on, the macro leaks 4 banks and one network: 3 networks less than 4 × CACTI's "bank".
    assert 4 * plain.leakage_mw + plain.network_mw == pytest.approx(4 * (1484.69 + 40.6717) - 3 * network, rel=1e-5)


# ------------------------------------------------------------------------------------------------ a fifth policy
class TrailingOnly(GatingPolicy):
    """A made-up policy: gates only what never has to wake (trailing intervals and unused banks)."""

    name = "trailing_only"

    def outcome(self, profile, timeouts, wake_cycles, break_even_cycles) -> GatingOutcome:
        zero = np.zeros(1, dtype=np.int64)
        return GatingOutcome(np.array([profile.trailing.total + profile.unused_bank_cycles]), zero, zero, zero)

    def spans(self, intervals, timeout, wake_cycles, break_even_cycles):
        return intervals.spans.where(intervals.spans.end == intervals.cycles)


def test_a_policy_registered_in_one_place_is_swept_explored_and_plotted(monkeypatch, tmp_path):
    monkeypatch.setitem(GATING_POLICIES, TrailingOnly.name, TrailingOnly())
    assert SweepSpec().policies == (*HAND_SPEC.policies, "trailing_only")
    spec = parse_sweep_spec({"banks": [1, 4], "policies": ["immediate", "trailing_only"], "flavours": ["hp", "lstp"]})
    result = explore(make_trace(**HAND), spec, table_costs)
    rows = [c for c in result.configs if c.policy == "trailing_only"]
    assert len(rows) == 2 * 2 and all(c.sleep_transistors and c.penalty_cycles == 0 for c in rows)
    # 4 banks of 100 B on the hand trace (banks_on 0, 2, 1, 4, 0): every bank idles from cycle 80 to the end.
    four = next(c for c in rows if c.bank_count == 4 and c.flavour == "hp")
    assert four.gated_fraction == (20 + 20 + 20 + 20) / 400
    figure = _pareto(result)
    labels = {text.get_text() for axis in figure.axes for text in axis.get_legend().get_texts()}
    assert {"immediate", "trailing_only"} <= labels
    assert (write_exploration_outputs(result, tmp_path / "out")["pareto"]).is_file()


def test_config_table_rows_and_columns_agree():
    """ConfigTable: a row by index (negative ones too) is the row iteration gives, a column holds that field of every
    row and cannot be written through, and an index past the end is an IndexError."""
    table = explore(make_trace(**HAND), HAND_SPEC, table_costs).configs
    rows = list(table)
    assert table[-1] == rows[-1] and table[3] == rows[3] and tuple(table[2:5]) == tuple(rows[2:5])
    assert table.column("total_pj").tolist() == [row.total_pj for row in rows]
    assert table.column("timeout_cycles").tolist() == [row.timeout_cycles for row in rows]
    with pytest.raises(ValueError, match="read-only"):
        table.column("total_pj")[0] = 0.0
    with pytest.raises(IndexError):
        table[len(rows)]
