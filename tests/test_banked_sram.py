"""BankedSRAM as a ZigZag MemoryInstance, and swapping it into Stream's fusemax accelerator."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from stream.api import SolveOptions, evaluate_mapping
from stream.stages.parsing.accelerator_parser import parse_accelerator
from zigzag.hardware.architecture.memory_instance import MemoryInstance
from zigzag.hardware.architecture.memory_port import MemoryPort, MemoryPortType

from stream_trapti.banked_sram import BankedSRAM, banked_replacement, install_banked_sram, sram_config_for
from stream_trapti.sram.cacti import SramConfigError
from stream_trapti.sram.cacti_cache import query

from conftest import FUSEMAX

pytestmark = pytest.mark.usefixtures("cacti")


def _ports(width: int) -> tuple[MemoryPort, ...]:
    return (
        MemoryPort("r_port_1", MemoryPortType.READ, width, width),
        MemoryPort("w_port_1", MemoryPortType.WRITE, width, width),
    )


def _plain(size_bits: int = 64 * 1024 * 8, width: int = 128) -> MemoryInstance:
    return MemoryInstance(
        "sram", size_bits, r_cost=1.0, w_cost=1.0, ports=_ports(width), latency=2, shared_memory_group_id=3
    )


def test_banked_sram_takes_costs_from_cacti_and_stays_hashable() -> None:
    plain = _plain()
    config = sram_config_for(plain, banks=4)
    assert (config.capacity_bytes, config.width_bits, config.read_ports, config.write_ports) == (65536, 128, 1, 1)
    sram = query(config)
    banked = banked_replacement(plain, sram)
    assert isinstance(banked, MemoryInstance)
    assert (banked.r_cost, banked.w_cost, banked.area) == (
        sram.read_energy_pj,
        sram.write_energy_pj,
        sram.macro_area_mm2,
    )
    assert (banked.size, banked.latency, banked.shared_memory_group_id) == (plain.size, 2, 3)
    assert banked.banks == 4 and banked.bank_size == plain.size // 4
    assert banked.bank_leakage_mw == sram.leakage_mw - sram.network_leakage_mw
    assert banked.network_leakage_mw == sram.network_leakage_mw > 0
    assert 0 < banked.gated_bank_leakage_mw < banked.bank_leakage_mw
    assert banked.wakeup_energy_pj > 0 and banked.wakeup_time_ns > 0
    assert hash(banked) == hash(banked_replacement(plain, sram))
    assert pickle.loads(pickle.dumps(banked)) == banked
    assert banked != banked_replacement(plain, query(sram_config_for(plain, banks=2)))


def test_banked_sram_rejects_a_result_for_another_memory() -> None:
    sram = query(sram_config_for(_plain(), banks=2))
    with pytest.raises(SramConfigError, match="capacity_bytes"):
        banked_replacement(_plain(size_bits=128 * 1024 * 8), sram)
    with pytest.raises(SramConfigError, match="width_bits"):
        BankedSRAM("sram", sram, _ports(256))


def _solve_energy(accelerator, onnx_path: Path, out: Path) -> float:
    estimate = evaluate_mapping(accelerator, str(onnx_path), str(out), options=SolveOptions(artifacts=False))
    return estimate.context.get("allocation").solution.performance["energy"]["total_pj"]


def test_install_on_fusemax_drives_streams_energy(mha_onnx: Path, tmp_path: Path) -> None:
    baseline = parse_accelerator(str(FUSEMAX))
    _ = baseline.ports  # built and cached before the swap: the install must invalidate it
    base_energy = _solve_energy(baseline, mha_onnx, tmp_path / "base")

    energies, costs = {}, {}
    for banks in (1, 16):
        accelerator = parse_accelerator(str(FUSEMAX))
        _ = accelerator.ports
        replaced = install_banked_sram(accelerator, banks=banks)
        assert set(replaced) == {0, 1}  # the two compute cores; the off-chip DRAM core is untouched
        shared = replaced[0]
        assert replaced[1] == shared and shared.size == 16_777_216 and shared.banks == banks
        for core_id in (0, 1):
            levels = [
                lv
                for lv in accelerator.get_core(core_id).to_zigzag_core().memory_hierarchy.node_list
                if lv.name == "sram"
            ]
            assert len(levels) == 1 and levels[0].memory_instance is replaced[core_id]
            assert (levels[0].read_energy, levels[0].write_energy) == (shared.r_cost, shared.w_cost)
        dram = (
            accelerator.get_core(2)
            .to_zigzag_core()
            .get_top_memory_instance(
                next(iter(accelerator.get_core(2).to_zigzag_core().memory_hierarchy.get_operands()))
            )
        )
        assert not isinstance(dram, BankedSRAM)
        port_energy = {p.key.port: p.read_energy_per_bit for p in accelerator.ports if p.key.memory == "sram"}
        assert port_energy["r_port_1"] == pytest.approx(shared.r_cost / 8192)
        energies[banks] = _solve_energy(accelerator, mha_onnx, tmp_path / f"banks{banks}")
        costs[banks] = (shared.r_cost, shared.w_cost)

    assert energies[1] != pytest.approx(base_energy, rel=1e-3)
    # With 8192-bit ports CACTI prices 16 banks dearer per access than one; Stream's energy must follow.
    assert costs[16][0] > costs[1][0] and costs[16][1] > costs[1][1]
    assert energies[16] > energies[1]
