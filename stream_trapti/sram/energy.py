"""SRAM energy of one bank organisation under one gating policy.

For a memory of ``B`` banks over a trace of ``T`` cycles at clock ``f`` (GHz, so one cycle is ``1/f`` ns and
mW · ns = pJ), with ``G`` bank-cycles gated, ``N`` bank wake-ups, ``S`` stalls of ``w = wake_cycles`` each and
``K`` gated bank-stalls (from :func:`~stream_trapti.sram.policies.gating_outcome`); ``P_on`` and ``P_gated`` are
one bank's own leakage, ``P_net`` that of the routing network between the banks, which is never gated:

* dynamic  = reads · E_read + writes · E_write, with reads/writes = ceil(bytes · 8 / port bits) from the trace;
* leakage (powered) = P_on · (B · T − G) / f;
* residual (gated)  = P_gated · G / f;
* network  = P_net · T / f;
* wake-up  = N · E_wake;
* stall    = w · (P_on · (B · S − K) + P_gated · K + P_net · S) / f: the run is stalled ``S · w`` cycles, during which
  every bank keeps its state (see :mod:`~stream_trapti.sram.policies`) and the network leaks;
* latency penalty = S · w cycles, added to the schedule (the run takes ``T + S · w`` cycles). ``offline_optimal``
  wakes early and never stalls.

So an always-on organisation leaks exactly ``(B · P_on + P_net) · T / f``, CACTI's whole macro for the run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from stream_trapti.sram import cacti_cache
from stream_trapti.sram.cacti import SramConfig, SramResult
from stream_trapti.sram.policies import GATING_MODES, GatingOutcome, IdleProfile, gating_outcome
from stream_trapti.trace import OccupancyTrace


@dataclass(frozen=True)
class BankQuery:
    """What a costs provider is asked for: one bank organisation of one SRAM, and how it is gated.

    ``flavour`` names the device flavour of cells and periphery (``hp``) or each (``lstp/hp``: cells/periphery).
    ``power_gating`` says whether the macro carries sleep transistors (every policy but ``always_on``);
    ``gated_leakage_fraction``, when set, overrides the retention-mode residual leakage (as a fraction of the
    powered leakage); ``off_leakage_fraction`` is the residual in ``power_off`` mode.
    """

    capacity_bytes: int
    bank_count: int
    port_bits: int
    flavour: str
    technology_nm: int
    temperature_k: int
    gating_mode: str
    clock_ghz: float
    power_gating: bool = True
    gated_leakage_fraction: float | None = None
    off_leakage_fraction: float = 0.0

    def __post_init__(self) -> None:
        if self.gating_mode not in GATING_MODES:
            raise ValueError(f"BankQuery.gating_mode {self.gating_mode!r}: expected one of {GATING_MODES}")

    @property
    def bank_bytes(self) -> int:
        """Bytes per bank."""
        return self.capacity_bytes // self.bank_count


@dataclass(frozen=True)
class BankCosts:
    """Costs of one bank organisation, as the energy model uses them.

    Per bank: ``read_pj``/``write_pj`` per access, ``leakage_mw`` powered, ``gated_mw`` gated (in the chosen gating
    mode), ``wake_energy_pj`` and ``wake_cycles`` per wake-up. ``area_mm2`` is the whole organisation (all banks).
    ``network_mw`` is the leakage of the routing network between the banks: one network, always powered.
    """

    read_pj: float
    write_pj: float
    leakage_mw: float
    gated_mw: float
    wake_energy_pj: float
    wake_cycles: int
    area_mm2: float
    network_mw: float = 0.0

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"BankCosts.{item.name} must be a finite non-negative number, got {value}")
        if self.gated_mw > self.leakage_mw:
            raise ValueError(
                f"BankCosts.gated_mw ({self.gated_mw}) exceeds leakage_mw ({self.leakage_mw}): gating would not save"
            )

    def break_even_cycles(self, clock_ghz: float) -> float:
        """Idle cycles a gated bank must stay gated for its saved leakage to pay one wake-up (∞ if gating saves
        nothing)."""
        saved_pj_per_cycle = (self.leakage_mw - self.gated_mw) / clock_ghz
        if saved_pj_per_cycle <= 0:
            return 0.0 if self.wake_energy_pj == 0 else math.inf
        return self.wake_energy_pj / saved_pj_per_cycle


CostsProvider = Callable[[BankQuery], BankCosts]


@dataclass(frozen=True)
class AccessCounts:
    """Port accesses to the memory over the whole trace."""

    reads: int
    writes: int


def access_counts(trace: OccupancyTrace, memory: int | str, port_bits: int) -> AccessCounts:
    """Reads and writes of ``port_bits`` each that move the trace's bytes (each total rounded up)."""
    if port_bits < 1:
        raise ValueError(f"port width must be a positive number of bits, got {port_bits}")
    read_bytes, write_bytes = (int(v) for v in trace.access_totals()[trace.memory_index(memory)])
    return AccessCounts(-(-read_bytes * 8 // port_bits), -(-write_bytes * 8 // port_bits))


@dataclass(frozen=True, eq=False)
class EnergyBreakdown:
    """Energy (pJ) and wake-up statistics, one entry per evaluated timeout (see the module docstring)."""

    dynamic_pj: np.ndarray
    leakage_on_pj: np.ndarray
    gated_residual_pj: np.ndarray
    network_pj: np.ndarray
    wake_pj: np.ndarray
    stall_pj: np.ndarray
    gated_bank_cycles: np.ndarray
    wakes: np.ndarray
    penalty_cycles: np.ndarray

    @property
    def total_pj(self) -> np.ndarray:
        """Dynamic + powered leakage + gated residual + network + wake-up + stall energy."""
        leakage = self.leakage_on_pj + self.gated_residual_pj + self.network_pj
        return self.dynamic_pj + leakage + self.wake_pj + self.stall_pj


def evaluate_energy(
    profile: IdleProfile,
    policy: str,
    costs: BankCosts,
    counts: AccessCounts,
    clock_ghz: float,
    timeouts: np.ndarray | None = None,
) -> EnergyBreakdown:
    """Energy of ``profile``'s organisation under ``policy`` (one result per timeout for ``timeout``)."""
    if not clock_ghz > 0:
        raise ValueError(f"clock frequency must be positive (GHz), got {clock_ghz}")
    outcome = gating_outcome(profile, policy, timeouts, costs.wake_cycles, costs.break_even_cycles(clock_ghz))
    return price(outcome, profile.bank_count, profile.cycles, costs, counts, clock_ghz)


@dataclass(frozen=True, eq=False)
class CostColumns:
    """The fields of many :class:`BankCosts` as arrays, one entry per row, to :func:`price` many organisations at
    once."""

    read_pj: np.ndarray
    write_pj: np.ndarray
    leakage_mw: np.ndarray
    gated_mw: np.ndarray
    wake_energy_pj: np.ndarray
    wake_cycles: np.ndarray
    area_mm2: np.ndarray
    network_mw: np.ndarray

    @classmethod
    def of(cls, costs: Sequence[BankCosts], rows: np.ndarray) -> CostColumns:
        """Each of ``costs`` repeated for its number of ``rows``."""
        names = [f.name for f in fields(BankCosts)]
        table = np.array([[getattr(c, name) for name in names] for c in costs], dtype=np.float64)
        columns = {name: np.repeat(table[:, i], rows) for i, name in enumerate(names)}
        return cls(**columns | {"wake_cycles": columns["wake_cycles"].astype(np.int64)})


def price(
    outcome: GatingOutcome,
    bank_count: int | np.ndarray,
    cycles: int | np.ndarray,
    costs: BankCosts | CostColumns,
    counts: AccessCounts,
    clock_ghz: float,
) -> EnergyBreakdown:
    """The energy of a policy's ``outcome`` on an organisation of ``bank_count`` banks over ``cycles`` (see the module
    docstring): for one organisation, or for many at once with ``bank_count``, ``cycles`` and ``costs`` given per
    entry of the outcome (the same arithmetic either way, so the same numbers)."""
    gated = outcome.gated_bank_cycles.astype(np.float64)
    powered = bank_count * cycles - gated
    dynamic = counts.reads * costs.read_pj + counts.writes * costs.write_pj
    penalty = outcome.stalls * costs.wake_cycles
    # Bank-cycles of the stalls: every bank for every stalled cycle, gated ones as counted by the policy.
    stall_gated = (outcome.gated_bank_stalls * costs.wake_cycles).astype(np.float64)
    stall_powered = bank_count * penalty - stall_gated
    stall_mw_cycles = costs.leakage_mw * stall_powered + costs.gated_mw * stall_gated + costs.network_mw * penalty
    return EnergyBreakdown(
        dynamic_pj=np.broadcast_to(np.float64(dynamic), gated.shape).copy(),
        leakage_on_pj=costs.leakage_mw * powered / clock_ghz,
        gated_residual_pj=costs.gated_mw * gated / clock_ghz,
        network_pj=np.broadcast_to(costs.network_mw * cycles / clock_ghz, gated.shape).copy(),
        wake_pj=costs.wake_energy_pj * outcome.wakes.astype(np.float64),
        stall_pj=stall_mw_cycles / clock_ghz,
        gated_bank_cycles=outcome.gated_bank_cycles,
        wakes=outcome.wakes,
        penalty_cycles=penalty,
    )


# ------------------------------------------------------------------------------------------------ CACTI adapter
def sram_config(query: BankQuery) -> SramConfig:
    """The CACTI macro for ``query``: one UCA of ``bank_count`` banks behind one H-tree, one port of
    ``port_bits``, with CACTI's sleep transistors when ``query.power_gating``."""
    cell, _, periphery = query.flavour.partition("/")
    return SramConfig(
        capacity_bytes=query.capacity_bytes,
        banks=query.bank_count,
        width_bits=query.port_bits,
        technology_nm=query.technology_nm,
        cell_flavor=cell,
        periphery_flavor=periphery or cell,
        temperature_k=query.temperature_k,
        power_gating=query.power_gating,
    )


def costs_from_cacti(query: BankQuery, result: SramResult) -> BankCosts:
    """Fill :class:`BankCosts` from CACTI's figures for ``query``'s macro.

    Access energies and area are the whole macro's (through the H-tree to one bank). Leakage (subthreshold + gate)
    is one bank's own, CACTI's "bank" figure less the routing network between the banks, which CACTI folds into
    it and which is counted once, always on (``network_mw``). Gated: retention mode uses CACTI's gated leakage of the
    bank (or ``gated_leakage_fraction`` of its powered leakage), power-off ``off_leakage_fraction`` of it. The
    wake-up is CACTI's, scaled from the mats one access wakes to all mats of a bank, in whole cycles at
    ``clock_ghz``; from power-off its rails swing the full Vdd instead of CACTI's retention swing
    (:meth:`~stream_trapti.sram.cacti.SramResult.bank_wakeup`). Without power gating nothing is ever gated or woken.
    """
    bank_mw = result.bank_leakage_mw
    if not query.power_gating:
        return BankCosts(
            result.read_energy_pj,
            result.write_energy_pj,
            bank_mw,
            bank_mw,
            0.0,
            0,
            result.macro_area_mm2,
            result.network_leakage_mw,
        )
    wakeup = result.bank_wakeup(full_swing=query.gating_mode == "power_off")
    if result.gated_bank_leakage_mw is None or wakeup is None:
        raise ValueError(f"CACTI result for {result.config} has no power-gating figures; query it with power_gating")
    if query.gating_mode == "power_off":
        gated = query.off_leakage_fraction * bank_mw
    elif query.gated_leakage_fraction is not None:
        gated = query.gated_leakage_fraction * bank_mw
    else:
        # CACTI's gated and powered leakage come from two runs of one organisation; never let rounding make the
        # gated state leak more.
        gated = min(result.gated_bank_leakage_mw, bank_mw)
    return BankCosts(
        read_pj=result.read_energy_pj,
        write_pj=result.write_energy_pj,
        leakage_mw=bank_mw,
        gated_mw=gated,
        wake_energy_pj=wakeup.energy_pj,
        wake_cycles=math.ceil(wakeup.time_ns * query.clock_ghz),
        area_mm2=result.macro_area_mm2,
        network_mw=result.network_leakage_mw,
    )


def cacti_costs(query: BankQuery) -> BankCosts:
    """A :data:`CostsProvider` backed by CACTI 7 through the disk cache of :mod:`stream_trapti.sram.cacti_cache`."""
    return costs_from_cacti(query, cacti_cache.query(sram_config(query)))
