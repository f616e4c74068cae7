"""A banked SRAM macro costed by CACTI, as a ZigZag ``MemoryInstance``, and its installation into a Stream accelerator.

ZigZag and Stream read a memory's per-access energy from ``MemoryInstance.r_cost`` / ``w_cost`` (ZigZag through the
``MemoryLevel`` copies made at construction, Stream through its port registry: cost / port width per bit). Replacing
the on-chip SRAM with a ``BankedSRAM`` therefore makes Stream's own energy figures those of the CACTI macro; the
leakage and gating figures ride along for the TRAPTI analysis, which Stream itself has no notion of.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from stream.hardware.architecture.accelerator import Accelerator
from zigzag.datatypes import MemoryOperand
from zigzag.hardware.architecture.memory_instance import MemoryInstance
from zigzag.hardware.architecture.memory_port import MemoryPort, MemoryPortType
from zigzag.utils import json_repr_handler

from stream_trapti.sram.cacti import SramConfig, SramConfigError, SramResult
from stream_trapti.sram.cacti_cache import query

# Stream's "memory of a core" is the top-level instance serving the first input operand.
CORE_MEMORY_OPERAND = MemoryOperand("I1")


class BankedSRAM(MemoryInstance):
    """A ZigZag memory instance whose access energies and area come from a CACTI ``SramResult``.

    r_cost / w_cost are CACTI's per-access energies (pJ per access of the port width), area is the macro area (mm²).
    The bank count, bank size and leakage/gating figures are exposed as properties of the carried ``sram`` result,
    a frozen dataclass, so the instance stays hashable (MemoryInstance hashes its ``__dict__`` values).
    """

    sram: SramResult

    def __init__(
        self,
        name: str,
        sram: SramResult,
        ports: tuple[MemoryPort, ...],
        *,
        latency: int = 1,
        force_double_buffering: bool = False,
        shared_memory_group_id: int = -1,
    ):
        config = sram.config
        _check_ports(name, config, ports)
        super().__init__(
            name=name,
            size=config.capacity_bytes * 8,
            r_cost=sram.read_energy_pj,
            w_cost=sram.write_energy_pj,
            area=sram.macro_area_mm2,
            r_port=config.read_ports,
            w_port=config.write_ports,
            rw_port=config.rw_ports,
            latency=latency,
            ports=ports,
            force_double_buffering=force_double_buffering,
            shared_memory_group_id=shared_memory_group_id,
        )
        self.sram = sram

    @property
    def banks(self) -> int:
        """Number of banks."""
        return self.sram.config.banks

    @property
    def bank_size(self) -> int:
        """Capacity of one bank in bits (ZigZag's size unit)."""
        return self.size // self.banks

    @property
    def bank_leakage_mw(self) -> float:
        """Leakage of one powered bank on its own (subthreshold + gate), mW."""
        return self.sram.bank_leakage_mw

    @property
    def network_leakage_mw(self) -> float:
        """Leakage of the routing network between the banks, shared by all of them, mW."""
        return self.sram.network_leakage_mw

    @property
    def gated_bank_leakage_mw(self) -> float | None:
        """Leakage of one bank on its own in CACTI's gated (retention) state, mW; None without power gating."""
        return self.sram.gated_bank_leakage_mw

    @property
    def wakeup_energy_pj(self) -> float | None:
        """CACTI's wake-up energy (per sub-array, for the mats one access activates), pJ; None without gating."""
        return self.sram.wakeup_energy_pj

    @property
    def wakeup_time_ns(self) -> float | None:
        """CACTI's sleep-transistor wake-up time, ns; None without power gating."""
        return self.sram.wakeup_time_ns

    def __jsonrepr__(self) -> Any:
        return json_repr_handler({**self.__dict__, "sram": dataclasses.asdict(self.sram)})


def _port_counts(ports: tuple[MemoryPort, ...]) -> tuple[int, int, int]:
    kinds = [port.type for port in ports]
    return (
        kinds.count(MemoryPortType.READ),
        kinds.count(MemoryPortType.WRITE),
        kinds.count(MemoryPortType.READ_WRITE),
    )


def port_width_bits(name: str, ports: tuple[MemoryPort, ...]) -> int:
    """The access width CACTI is asked for: the widest read (else read-write) port, as ZigZag's own CACTI extraction
    does, since ZigZag charges ``r_cost`` per access at the port's maximum bandwidth."""
    for kinds in ((MemoryPortType.READ,), (MemoryPortType.READ_WRITE,)):
        widths = [port.bw_max for port in ports if port.type in kinds]
        if widths:
            return max(widths)
    raise SramConfigError(f"memory {name!r} has no read or read_write port; a banked SRAM needs one.")


def _check_ports(name: str, config: SramConfig, ports: tuple[MemoryPort, ...]) -> None:
    if (config.read_ports, config.write_ports, config.rw_ports) != _port_counts(ports):
        raise SramConfigError(
            f"memory {name!r}: the CACTI configuration's read_ports/write_ports/rw_ports "
            f"{(config.read_ports, config.write_ports, config.rw_ports)} differ from its ports {_port_counts(ports)}."
        )
    if config.width_bits != port_width_bits(name, ports):
        raise SramConfigError(
            f"memory {name!r}: width_bits={config.width_bits} differs from its widest read port "
            f"({port_width_bits(name, ports)} bits)."
        )


def sram_config_for(
    instance: MemoryInstance,
    *,
    banks: int,
    technology_nm: int = 22,
    cell_flavor: str = "hp",
    periphery_flavor: str = "hp",
    temperature_k: int = 360,
    power_gating: bool = True,
) -> SramConfig:
    """The CACTI configuration of a banked macro with ``instance``'s capacity, port width and port counts."""
    if instance.size % 8:
        raise SramConfigError(f"memory {instance.name!r} holds {instance.size} bits, not whole bytes.")
    read_ports, write_ports, rw_ports = _port_counts(instance.ports)
    return SramConfig(
        capacity_bytes=instance.size // 8,
        banks=banks,
        width_bits=port_width_bits(instance.name, instance.ports),
        technology_nm=technology_nm,
        cell_flavor=cell_flavor,
        periphery_flavor=periphery_flavor,
        temperature_k=temperature_k,
        power_gating=power_gating,
        read_ports=read_ports,
        write_ports=write_ports,
        rw_ports=rw_ports,
    )


def banked_replacement(instance: MemoryInstance, sram: SramResult) -> BankedSRAM:
    """A BankedSRAM standing in for ``instance``: same name, capacity, ports, latency and sharing group."""
    if sram.config.capacity_bytes * 8 != instance.size:
        raise SramConfigError(
            f"memory {instance.name!r} holds {instance.size} bits but the CACTI result is for "
            f"capacity_bytes={sram.config.capacity_bytes}."
        )
    return BankedSRAM(
        instance.name,
        sram,
        instance.ports,
        latency=instance.latency,
        force_double_buffering=instance.force_double_buffering,
        shared_memory_group_id=instance.shared_memory_group_id,
    )


def _replace_instance(core: Any, old: MemoryInstance, new: BankedSRAM) -> None:
    """Point every MemoryLevel of ``core`` holding ``old`` at ``new``. MemoryLevel copied r_cost/w_cost into
    read_energy/write_energy when it was built, so those copies are refreshed too."""
    zigzag_core = core.to_zigzag_core()
    levels = [level for level in zigzag_core.memory_hierarchy.node_list if level.memory_instance is old]
    for level in levels:
        level.memory_instance = new
        level.read_energy = new.r_cost
        level.write_energy = new.w_cost
    zigzag_core.recalculate_memory_hierarchy_information()


def install_banked_sram(accelerator: Accelerator, *, banks: int, **technology: Any) -> dict[int, BankedSRAM]:
    """Replace, in place, the on-chip SRAM of every compute core of ``accelerator`` (its top-level memory serving
    I1; the off-chip core is left alone) by a CACTI-costed BankedSRAM of the same capacity and ports.
    ``technology`` takes the keywords of :func:`sram_config_for` (node, flavours, temperature, power gating).

    Cores of one ``core_memory_sharing`` group share one physical memory, so they must declare the same one; each
    keeps its own instance (and sharing group id) with identical costs. Returns the new instance per core id.
    """
    cores = [core for core in accelerator.core_list if core.id != accelerator.offchip_core_id]
    olds = {core.id: core.to_zigzag_core().get_top_memory_instance(CORE_MEMORY_OPERAND) for core in cores}
    configs = {core_id: sram_config_for(old, banks=banks, **technology) for core_id, old in olds.items()}
    for core in cores:
        owner = accelerator.memory_of(core).id
        if owner in configs and configs[owner] != configs[core.id]:
            raise SramConfigError(
                f"cores {owner} and {core.id} share their top-level memory (core_memory_sharing) but declare "
                f"different ones ({configs[owner]} vs {configs[core.id]}); make their memories identical."
            )
    replaced: dict[int, BankedSRAM] = {}
    for core in cores:
        replaced[core.id] = banked_replacement(olds[core.id], query(configs[core.id]))
        _replace_instance(core, olds[core.id], replaced[core.id])
    # Stream builds its port registry (energy per bit = r_cost / width) lazily and caches it: drop the stale copy.
    accelerator.__dict__.pop("ports", None)
    return replaced
