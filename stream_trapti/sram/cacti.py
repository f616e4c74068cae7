"""Query CACTI 7 for one SRAM macro: configuration, result, and one uncached evaluation.

Each query writes its own ``.cfg`` into a private scratch directory under the cache root
(:func:`stream_trapti.scratch.scratch_directory`) and runs our patched CACTI there, as a child that dies with us
(:func:`stream_trapti.subprocesses.run_child`; CACTI reads ``tech_params/`` relative to its working directory and
writes ``<cfg>.out`` beside the cfg). CACTI exits 0 on most invalid inputs, so success is judged by its CSV output
existing.
Cached and parallel evaluation live in :mod:`stream_trapti.sram.cacti_cache`.
"""

from __future__ import annotations

import csv
import re
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from stream_trapti.errors import ConfigError, TraptiError
from stream_trapti.scratch import scratch_directory, scratch_root
from stream_trapti.sram.cacti_build import CactiInstall, ensure_cacti
from stream_trapti.subprocesses import run_child

TECHNOLOGY_NODES_NM: tuple[int, ...] = (22, 32, 45, 65, 90)
"""Nodes CACTI 7 has technology files for and accepts (parameter.cc: 16 nm is commented out, > 90 nm is refused)."""

FLAVORS: dict[str, str] = {"hp": "itrs-hp", "lstp": "itrs-lstp", "lop": "itrs-lop"}
"""Our flavour names -> CACTI's ITRS device types (high performance, low standby power, low operating power)."""

TEMPERATURES_K: tuple[int, ...] = tuple(range(300, 401, 10))
"""CACTI's tech files tabulate leakage from 300 K to 400 K in steps of 10 K (io.cc error_checking)."""

CACTI_TIMEOUT_S = 600

# CACTI prices a wake-up as charging a virtual supply rail through the sleep transistor by the swing
# dV = Vdd - Vcc_min of its retention state: energy C * Vdd * dV and time C * dV / I (Sleep_tx::compute_penalty,
# powergating.cc). It sets Vcc_min to 0.65 Vdd for the cells and 0.35 Vdd for the periphery whatever the node and
# flavour (TechnologyParameter::init, parameter.cc), so the swings are these fractions of Vdd.
ARRAY_RETENTION_SWING = 0.35
"""dV / Vdd of the cell array's sleep transistors (CACTI's "Sub-array" wake-up)."""
WORDLINE_RETENTION_SWING = 0.65
"""dV / Vdd of the wordline drivers' sleep transistors (CACTI's "WL" wake-up)."""


class SramConfigError(ConfigError):
    """An SRAM configuration CACTI cannot evaluate; the message names the parameter to change."""


class CactiError(TraptiError):
    """CACTI ran but produced no result; the message names the parameter to change when CACTI says which."""


@dataclass(frozen=True)
class SramConfig:
    """One SRAM macro to evaluate with CACTI (a UCA: ``banks`` banks behind one H-tree).

    capacity_bytes: total macro capacity. banks: bank count, a power of two. width_bits: port width = CACTI's
    output bus width and block size (one access moves ``width_bits``). technology_nm: one of TECHNOLOGY_NODES_NM.
    cell_flavor / periphery_flavor: ``hp``, ``lstp`` or ``lop`` for the cell array and the periphery.
    temperature_k: operating temperature, 300-400 K in steps of 10. power_gating: also model CACTI's sleep
    transistors (array + wordline gating) and report gated leakage and wake-up cost. read_ports / write_ports /
    rw_ports: CACTI's exclusive read, exclusive write and read-write port counts.
    """

    capacity_bytes: int
    banks: int = 1
    width_bits: int = 128
    technology_nm: int = 22
    cell_flavor: str = "hp"
    periphery_flavor: str = "hp"
    temperature_k: int = 360
    power_gating: bool = False
    read_ports: int = 1
    write_ports: int = 1
    rw_ports: int = 0

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def bank_bytes(self) -> int:
        """Capacity of one bank in bytes."""
        return self.capacity_bytes // self.banks


def _is_power_of_two(value: int) -> bool:
    return value >= 1 and value & (value - 1) == 0


def _validate(config: SramConfig) -> None:
    """Reject what CACTI would refuse or silently mis-model, naming the field to change."""
    for name in ("capacity_bytes", "banks", "width_bits", "technology_nm", "temperature_k"):
        if not isinstance(getattr(config, name), int) or isinstance(getattr(config, name), bool):
            raise SramConfigError(f"{name} must be an int, got {getattr(config, name)!r}.")
    if config.technology_nm not in TECHNOLOGY_NODES_NM:
        raise SramConfigError(
            f"technology_nm={config.technology_nm} is not supported by CACTI 7 (it has no usable model below 22 nm "
            f"or above 90 nm); choose technology_nm from {TECHNOLOGY_NODES_NM}."
        )
    for name in ("cell_flavor", "periphery_flavor"):
        if getattr(config, name) not in FLAVORS:
            raise SramConfigError(
                f"{name}={getattr(config, name)!r} is not a CACTI device flavour; use one of {tuple(FLAVORS)}."
            )
    if config.temperature_k not in TEMPERATURES_K:
        raise SramConfigError(
            f"temperature_k={config.temperature_k} is outside CACTI's tables; use 300-400 K in steps of 10."
        )
    if not _is_power_of_two(config.banks):
        raise SramConfigError(f"banks={config.banks} must be a power of two (1, 2, 4, ...): CACTI's UCA bank count.")
    if config.width_bits < 8 or config.width_bits % 8:
        raise SramConfigError(f"width_bits={config.width_bits} must be a positive multiple of 8 (whole bytes).")
    ports = (config.read_ports, config.write_ports, config.rw_ports)
    if any(not isinstance(p, int) or p < 0 for p in ports) or sum(ports) < 1:
        raise SramConfigError(
            f"read_ports/write_ports/rw_ports={ports} must be non-negative ints with at least one port in total."
        )
    if not isinstance(config.power_gating, bool):
        raise SramConfigError(f"power_gating must be a bool, got {config.power_gating!r}.")
    if config.capacity_bytes % config.banks:
        raise SramConfigError(
            f"capacity_bytes={config.capacity_bytes} does not split into banks={config.banks} equal banks."
        )
    # CACTI needs more than one row of `width_bits` per bank (io.cc: "Number of sets is too small").
    if config.bank_bytes < 2 * (config.width_bits // 8) or config.capacity_bytes < 64:
        raise SramConfigError(
            f"capacity_bytes={config.capacity_bytes} is too small for banks={config.banks} of "
            f"width_bits={config.width_bits}: each bank must hold at least two words and the macro at least 64 "
            "bytes; raise capacity_bytes or lower banks / width_bits."
        )


@dataclass(frozen=True)
class ArrayOrganisation:
    """CACTI's partitioning of a bank: wordline/bitline divisions, sub-array aspect and column/sense-amp muxing."""

    ndwl: int
    ndbl: int
    nspd: int
    ndcm: int
    ndsam1: int
    ndsam2: int


@dataclass(frozen=True)
class Wakeup:
    """What waking one whole bank from its gated state costs."""

    energy_pj: float
    time_ns: float


@dataclass(frozen=True)
class SramResult:
    """CACTI's figures for one macro. Energies are per access of ``width_bits`` through the macro's H-tree to one
    bank; leakage figures are CACTI's "per bank".

    read_energy_pj / write_energy_pj: dynamic energy per access. leakage_mw: CACTI's leakage of a powered bank,
    subthreshold + gate (``gate_leakage_mw`` is the gate part). For a UCA that figure is one bank *plus the whole
    routing network between the banks* (UCA::compute_power_energy adds ``power_routing_to_bank`` to the bank's
    power); network_leakage_mw is that network's share (subthreshold + gate), so the macro leaks
    ``banks * bank_leakage_mw + network_leakage_mw``. macro_area_mm2: the whole macro (all banks and the H-tree).
    access_time_ns / cycle_time_ns: random access and cycle time. organisation: the array partitioning CACTI chose.

    With ``config.power_gating`` the macro includes CACTI's sleep transistors, so energies and area are those of the
    gated design. gated_leakage_mw is CACTI's leakage of a bank in its gated state (again plus the routing network,
    whose share in that run is gated_network_leakage_mw), which is a *retention* (drowsy) mode: cells are held at
    Vcc_min and keep their data, and the wordline drivers are gated; it is not power-off. The ``*_wakeup_*`` fields
    are CACTI's cell-array ("Sub-array") and wordline ("WL") sleep-transistor wake-up figures, which CACTI computes
    for the mats one access activates, not for a whole bank (see :meth:`bank_wakeup`). Without power gating the
    gating fields are None.
    """

    config: SramConfig
    read_energy_pj: float
    write_energy_pj: float
    leakage_mw: float
    gate_leakage_mw: float
    network_leakage_mw: float
    macro_area_mm2: float
    access_time_ns: float
    cycle_time_ns: float
    organisation: ArrayOrganisation
    gated_leakage_mw: float | None = None
    gated_network_leakage_mw: float | None = None
    array_wakeup_energy_pj: float | None = None
    wordline_wakeup_energy_pj: float | None = None
    array_wakeup_time_ns: float | None = None
    wordline_wakeup_time_ns: float | None = None
    active_mats_per_access: int | None = None
    subarrays_per_mat: int | None = None
    cacti_fingerprint: str = ""

    @property
    def bank_leakage_mw(self) -> float:
        """Leakage of one powered bank on its own, without the routing network it shares with the other banks."""
        return self.leakage_mw - self.network_leakage_mw

    @property
    def gated_bank_leakage_mw(self) -> float | None:
        """Leakage of one bank on its own in CACTI's gated (retention) state; None without power gating."""
        if self.gated_leakage_mw is None or self.gated_network_leakage_mw is None:
            return None
        return self.gated_leakage_mw - self.gated_network_leakage_mw

    @property
    def wakeup_energy_pj(self) -> float | None:
        """CACTI's retention wake-up energy (cell array + wordlines) for the mats one access activates; None without
        power gating."""
        if self.array_wakeup_energy_pj is None or self.wordline_wakeup_energy_pj is None:
            return None
        return self.array_wakeup_energy_pj + self.wordline_wakeup_energy_pj

    @property
    def wakeup_time_ns(self) -> float | None:
        """CACTI's retention wake-up time: the array and wordline sleep transistors switch on together, so the slower
        one sets it; None without power gating."""
        if self.array_wakeup_time_ns is None or self.wordline_wakeup_time_ns is None:
            return None
        return max(self.array_wakeup_time_ns, self.wordline_wakeup_time_ns)

    @property
    def bank_area_mm2(self) -> float:
        """One bank's share of the macro area (the H-tree is shared out evenly)."""
        return self.macro_area_mm2 / self.config.banks

    @property
    def mats_per_bank(self) -> int | None:
        """Mats in one bank (CACTI tiles a bank into Ndwl x Ndbl sub-arrays, grouped into mats); None without
        power gating, as CACTI prints sub-arrays per mat only then."""
        if not self.subarrays_per_mat:
            return None
        return self.organisation.ndwl * self.organisation.ndbl // self.subarrays_per_mat

    def bank_wakeup(self, full_swing: bool = False) -> Wakeup | None:
        """Waking every mat of one bank: CACTI's figures (for the mats one access activates) scaled by mats per bank
        / active mats; this scaling is ours, not CACTI's. None without power gating.

        CACTI's figures are for its retention state. ``full_swing`` prices a wake from power-off instead, charging
        the rails from 0 rather than from Vcc_min: CACTI's own formulas with the swing Vdd − Vcc_min replaced by Vdd,
        i.e. each part divided by its ``*_RETENTION_SWING`` (energy and time alike).
        """
        figures = (
            self.array_wakeup_energy_pj,
            self.wordline_wakeup_energy_pj,
            self.array_wakeup_time_ns,
            self.wordline_wakeup_time_ns,
        )
        if any(value is None for value in figures) or not self.active_mats_per_access or self.mats_per_bank is None:
            return None
        array_energy, wordline_energy, array_time, wordline_time = figures
        array_swing, wordline_swing = (ARRAY_RETENTION_SWING, WORDLINE_RETENTION_SWING) if full_swing else (1.0, 1.0)
        mats = self.mats_per_bank / self.active_mats_per_access
        return Wakeup(
            energy_pj=mats * (array_energy / array_swing + wordline_energy / wordline_swing),
            time_ns=max(array_time / array_swing, wordline_time / wordline_swing),
        )


_runs_lock = threading.Lock()
_runs = 0


def cacti_process_count() -> int:
    """How many CACTI processes this Python process has started (tests use it to prove cache hits)."""
    return _runs


def _count_run() -> None:
    global _runs  # a process-wide counter is the point
    with _runs_lock:
        _runs += 1


def _bool(value: bool) -> str:
    return '"true"' if value else '"false"'


def render_cfg(config: SramConfig, *, gated: bool, organisation: ArrayOrganisation | None = None) -> str:
    """CACTI input for ``config``. Everything not in SramConfig is ZigZag's template (zigzag/cacti/cacti_master/
    cacti_config_creator.py), so our numbers stay comparable with ZigZag's auto cost extraction. ``organisation``
    forces CACTI's array partitioning instead of letting it search."""
    cell, periphery = FLAVORS[config.cell_flavor], FLAVORS[config.periphery_flavor]
    force = organisation is not None
    org = organisation or ArrayOrganisation(1, 1, 0, 1, 0, 0)
    lines = [
        f"-size (bytes) {config.capacity_bytes}",
        f"-block size (bytes) {config.width_bits // 8}",
        "-associativity 1",
        f"-read-write port {config.rw_ports}",
        f"-exclusive read port {config.read_ports}",
        f"-exclusive write port {config.write_ports}",
        "-single ended read ports 0",
        f"-UCA bank count {config.banks}",
        f"-technology (u) {config.technology_nm / 1000:.3f}",
        f"-output/input bus width {config.width_bits}",
        f"-operating temperature (K) {config.temperature_k}",
        '-cache type "ram"',
        '-tag size (b) "default"',
        '-access mode (normal, sequential, fast) - "normal"',
        # Retention gating: cells drop to Vcc_min (array) and wordline drivers are gated (WL). Bitline floating,
        # column-logic and interconnect gating are left off: only array and WL gating change CACTI's leakage.
        f"-Array Power Gating - {_bool(gated)}",
        f"-WL Power Gating - {_bool(gated)}",
        '-CL Power Gating - "false"',
        '-Bitline floating - "false"',
        '-Interconnect Power Gating - "false"',
        "-Power Gating Performance Loss 0.01",
        "-page size (bits) 8192",
        "-burst length 8",
        "-internal prefetch width 8",
        f'-Data array cell type - "{cell}"',
        f'-Data array peripheral type - "{periphery}"',
        f'-Tag array cell type - "{cell}"',
        f'-Tag array peripheral type - "{periphery}"',
        "-design objective (weight delay, dynamic power, leakage power, cycle time, area) 0:0:0:100:0",
        "-deviate (delay, dynamic power, leakage power, cycle time, area) 20:100000:100000:100000:100000",
        "-NUCAdesign objective (weight delay, dynamic power, leakage power, cycle time, area) 100:100:0:0:100",
        "-NUCAdeviate (delay, dynamic power, leakage power, cycle time, area) 10:10000:10000:10000:10000",
        '-Optimize ED or ED^2 (ED, ED^2, NONE): "ED^2"',
        '-Cache model (NUCA, UCA)  - "UCA"',
        "-NUCA bank count 0",
        '-Wire signaling (fullswing, lowswing, default) - "Global_30"',
        '-Wire inside mat - "semi-global"',
        '-Wire outside mat - "semi-global"',
        '-Interconnect projection - "conservative"',
        "-Core count 8",
        '-Cache level (L2/L3) - "L3"',
        '-Add ECC - "true"',
        '-Print level (DETAILED, CONCISE) - "DETAILED"',
        '-Print input parameters - "false"',
        f"-Force cache config - {_bool(force)}",
        f"-Ndwl {org.ndwl}",
        f"-Ndbl {org.ndbl}",
        f"-Nspd {org.nspd}",
        f"-Ndcm {org.ndcm}",
        f"-Ndsam1 {org.ndsam1}",
        f"-Ndsam2 {org.ndsam2}",
        # CACTI always evaluates its off-chip IO and MemCAD models too; these are ZigZag's values for them.
        '-dram_type "DDR3"',
        '-io state "WRITE"',
        "-addr_timing 1.0",
        "-mem_density 4 Gb",
        "-bus_freq 800 MHz",
        "-duty_cycle 1.0",
        "-activity_dq 1.0",
        "-activity_ca 0.5",
        "-num_dq 72",
        "-num_dqs 18",
        "-num_ca 25",
        "-num_clk  2",
        "-num_mem_dq 2",
        "-mem_data_width 8",
        "-rtt_value 10000",
        "-ron_value 34",
        "-tflight_value",
        "-num_bobs 1",
        "-capacity 80",
        "-num_channels_per_bob 1",
        '-first metric "Cost"',
        '-second metric "Bandwidth"',
        '-third metric "Energy"',
        '-DIMM model "ALL"',
        '-mirror_in_bob "F"',
    ]
    return "\n".join(lines) + "\n"


# CACTI's own messages (stdout or stderr) -> the SramConfig field to change.
_FAILURE_HINTS: tuple[tuple[str, str], ...] = (
    ("Invalid technology nodes", "technology_nm"),
    ("Feature size must be", "technology_nm"),
    ("Number of subbanks should be", "banks"),
    ("Cache size must >=64", "capacity_bytes"),
    ("Number of sets is too small", "capacity_bytes (or lower banks / width_bits)"),
    ("Block size must be at least", "width_bits"),
    ("Temperature must be between", "temperature_k"),
    ("Must have at least one port", "read_ports / write_ports / rw_ports"),
    ("no valid data array organizations", "capacity_bytes / banks / width_bits (no array organisation fits)"),
    ("no valid cache organizations", "capacity_bytes / banks / width_bits (no array organisation fits)"),
    ("no cache organizations met", "capacity_bytes / banks / width_bits (no array organisation fits)"),
)


def _failure(config: SramConfig, result: subprocess.CompletedProcess[str], why: str) -> CactiError:
    output = result.stdout + result.stderr
    for needle, field in _FAILURE_HINTS:
        if needle in output:
            line = next(line for line in output.splitlines() if needle in line).strip()
            return CactiError(f"CACTI rejected {config}: {line!r}; change {field}.")
    tail = "\n".join(output.strip().splitlines()[-8:])
    return CactiError(f"CACTI produced no result for {config} ({why}, exit {result.returncode}):\n{tail}")


def _run(
    install: CactiInstall, config: SramConfig, cfg_text: str, workdir: Path, name: str
) -> tuple[dict[str, str], str]:
    """Run CACTI on ``cfg_text`` inside ``workdir``; return its CSV row (header -> value) and its stdout."""
    (workdir / name).write_text(cfg_text)
    _count_run()
    result = run_child([str(install.binary), "-infile", name], cwd=workdir, timeout=CACTI_TIMEOUT_S)
    out_file = workdir / f"{name}.out"
    if result.returncode != 0 or not out_file.is_file():
        why = "it crashed" if result.returncode != 0 else "no output file: CACTI exits 0 on invalid input"
        raise _failure(config, result, why)
    with out_file.open(newline="") as handle:
        rows = [[cell.strip() for cell in row] for row in csv.reader(handle)]
    if len(rows) != 2:
        raise _failure(config, result, f"expected one CSV result row in {out_file.name}, got {len(rows) - 1}")
    return dict(zip(rows[0], rows[1], strict=False)), result.stdout


def _stdout_value(stdout: str, label: str) -> float:
    match = re.search(rf"{re.escape(label)}\s*-?:?\s*-?\s*([-+0-9.eE]+|inf|nan)", stdout)
    if match is None:
        raise CactiError(f"CACTI's output has no {label!r} line; is this the CACTI 7 that zigzag-dse 3.9.1 ships?")
    return float(match.group(1))


def _network_leakage_mw(stdout: str) -> float:
    """Leakage (subthreshold + gate) of the routing between the banks, as our CACTI patch prints it."""
    return _stdout_value(stdout, "Leakage power of the routing to banks (mW):") + _stdout_value(
        stdout, "Gate leakage power of the routing to banks (mW):"
    )


def _organisation(row: dict[str, str]) -> ArrayOrganisation:
    values = [float(row[key]) for key in ("Ndwl", "Ndbl", "Nspd", "Ndcm", "Ndsam_level_1", "Ndsam_level_2")]
    # The forced second run reads these back as integers (io.cc "-Nspd %d"); Nspd >= 1 because block = width.
    if any(value != int(value) for value in values):
        raise CactiError(f"CACTI chose a fractional array partitioning {values}; cannot force it in a second run.")
    return ArrayOrganisation(*(int(value) for value in values))


def _positive(config: SramConfig, **values: float) -> None:
    """CACTI prints inf/nan or zero when a model breaks down; never let such a figure through."""
    for name, value in values.items():
        if not value > 0 or value == float("inf"):
            raise CactiError(f"CACTI returned {name}={value} for {config}; the configuration is outside its model.")


def evaluate(config: SramConfig, install: CactiInstall | None = None) -> SramResult:
    """Run CACTI for ``config`` (uncached; one process, or two with power gating) and return its figures.

    With power gating, CACTI first searches the organisation of the gated macro; the non-gated leakage is then
    taken from a second run forced to that same organisation, so both leakages describe one physical macro. Each
    routing-network share is read from the same run as the leakage it is part of.
    Raises CactiError (naming the field to change) when CACTI finds no result.
    """
    install = install or ensure_cacti()
    with scratch_directory(scratch_root(), "cacti") as workdir:
        (workdir / "tech_params").symlink_to(install.tech_params, target_is_directory=True)
        row, stdout = _run(install, config, render_cfg(config, gated=config.power_gating), workdir, "macro.cfg")
        organisation = _organisation(row)
        gated_fields: dict[str, float | int | None] = {}
        if config.power_gating:
            gated_fields = {
                "gated_leakage_mw": float(row["Standby leakage per bank(mW)"]),
                "gated_network_leakage_mw": _network_leakage_mw(stdout),
                "array_wakeup_energy_pj": 1e3 * _stdout_value(stdout, "Sub-array Tx energy (nJ)"),
                "wordline_wakeup_energy_pj": 1e3 * _stdout_value(stdout, "WL Tx energy (nJ)"),
                "array_wakeup_time_ns": _stdout_value(stdout, "Sub-array wakeup time (ns)"),
                "wordline_wakeup_time_ns": _stdout_value(stdout, "WL wakeup time (ns)"),
                "active_mats_per_access": int(_stdout_value(stdout, "Active mats per access")),
                "subarrays_per_mat": int(_stdout_value(stdout, "Active subarrays per mat")),
            }
            _, stdout = _run(
                install, config, render_cfg(config, gated=False, organisation=organisation), workdir, "ungated.cfg"
            )
    subthreshold = _stdout_value(stdout, "Total leakage power of a bank (mW):")
    gate = _stdout_value(stdout, "Total gate leakage power of a bank (mW):")
    result = SramResult(
        config=config,
        read_energy_pj=1e3 * float(row["Dynamic read energy (nJ)"]),
        write_energy_pj=1e3 * float(row["Dynamic write energy (nJ)"]),
        leakage_mw=subthreshold + gate,
        gate_leakage_mw=gate,
        network_leakage_mw=_network_leakage_mw(stdout),
        macro_area_mm2=float(row["Area (mm2)"]),
        access_time_ns=float(row["Access time (ns)"]),
        cycle_time_ns=float(row["Random cycle time (ns)"]),
        organisation=organisation,
        cacti_fingerprint=install.fingerprint,
        **gated_fields,  # type: ignore[arg-type]
    )
    _positive(
        config,
        read_energy_pj=result.read_energy_pj,
        write_energy_pj=result.write_energy_pj,
        leakage_mw=result.leakage_mw,
        macro_area_mm2=result.macro_area_mm2,
        access_time_ns=result.access_time_ns,
    )
    return result
