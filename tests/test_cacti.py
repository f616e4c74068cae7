"""The CACTI backend on the real, patched CACTI: build, query, validation, disk cache and parallel queries."""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from stream_trapti.sram import cacti_build, cacti_cache
from stream_trapti.sram.cacti import (
    CactiError,
    SramConfig,
    SramConfigError,
    _network_leakage_mw,
    _run,
    _stdout_value,
    cacti_process_count,
    evaluate,
    render_cfg,
)
from stream_trapti.sram.cacti_build import CactiInstall, shipped_source_dir
from stream_trapti.sram.cacti_cache import query, query_many

KIB = 1024


def test_build_is_a_patched_copy_outside_site_packages(cacti: CactiInstall) -> None:
    build = cacti.binary.parent
    assert cacti.binary.is_file() and os.access(cacti.binary, os.X_OK)
    assert shipped_source_dir() not in build.parents and build != shipped_source_dir()
    for patch in cacti_build.PATCHES:
        assert patch.new in (build / patch.path).read_text()
        assert patch.old in (shipped_source_dir() / patch.path).read_text()  # the shipped source stays untouched
    assert cacti.fingerprint == build.name == cacti_build.fingerprint(shipped_source_dir())
    assert not list(build.parent.glob(".*.partial"))  # no half-built directory left behind


@pytest.mark.parametrize("technology_nm", [22, 45, 65])
def test_power_gating_runs_where_stock_cacti_aborts(cacti: CactiInstall, technology_nm: int) -> None:
    result = evaluate(SramConfig(64 * KIB, banks=2, technology_nm=technology_nm, power_gating=True), cacti)
    assert result.gated_leakage_mw is not None and 0 < result.gated_leakage_mw < result.leakage_mw
    assert 0 < result.gated_bank_leakage_mw < result.bank_leakage_mw
    assert result.wakeup_energy_pj > 0 and result.wakeup_time_ns > 0
    retention, power_off = result.bank_wakeup(), result.bank_wakeup(full_swing=True)
    assert retention.energy_pj >= result.wakeup_energy_pj and retention.time_ns == result.wakeup_time_ns
    # From power-off both rails swing the full Vdd: 1/0.35 and 1/0.65 of CACTI's retention swings.
    assert retention.energy_pj / 0.35 > power_off.energy_pj > retention.energy_pj / 0.65
    assert power_off.time_ns > retention.time_ns


def _raw_run(install: CactiInstall, config: SramConfig, workdir: Path) -> tuple[dict[str, str], str]:
    """One CACTI run of ``config`` without power gating: its CSV row and stdout."""
    workdir.mkdir()
    (workdir / "tech_params").symlink_to(install.tech_params, target_is_directory=True)
    return _run(install, config, render_cfg(config, gated=False), workdir, "macro.cfg")


def test_patch_leaves_non_gated_results_identical_to_zigzags_binary(cacti: CactiInstall, tmp_path: Path) -> None:
    """ZigZag's prebuilt (unpatched, unoptimised) CACTI gives the same non-gated figures on our cfg; only our
    binary prints the routing leakage on its own."""
    shipped = shipped_source_dir()
    stock = CactiInstall(binary=shipped / "cacti", tech_params=shipped / "tech_params", fingerprint="zigzag-prebuilt")
    config = SramConfig(64 * KIB, banks=2)
    (ours, our_stdout), (theirs, their_stdout) = (
        _raw_run(install, config, tmp_path / name) for install, name in ((cacti, "ours"), (stock, "theirs"))
    )
    for column in ("Dynamic read energy (nJ)", "Dynamic write energy (nJ)", "Area (mm2)", "Access time (ns)"):
        assert float(ours[column]) == pytest.approx(float(theirs[column]), rel=1e-4), column
    for label in ("Total leakage power of a bank (mW):", "Total gate leakage power of a bank (mW):"):
        assert _stdout_value(our_stdout, label) == pytest.approx(_stdout_value(their_stdout, label), rel=1e-4), label
    assert _network_leakage_mw(our_stdout) > 0
    assert "routing to banks" not in their_stdout


def test_figures_are_positive_and_monotone(cacti: CactiInstall) -> None:
    results = {
        (capacity, banks): query(SramConfig(capacity * KIB, banks=banks, power_gating=True))
        for capacity in (64, 256)
        for banks in (1, 2, 4)
    }
    for (capacity, banks), r in results.items():
        assert min(r.read_energy_pj, r.write_energy_pj, r.leakage_mw, r.macro_area_mm2, r.access_time_ns) > 0
        assert 0 < r.gated_leakage_mw < r.leakage_mw, (capacity, banks)
        assert 0 < r.gate_leakage_mw < r.leakage_mw
        assert r.bank_area_mm2 == pytest.approx(r.macro_area_mm2 / banks)
        assert r.cacti_fingerprint == cacti.fingerprint
    for banks in (1, 2, 4):
        small, big = results[64, banks], results[256, banks]
        assert big.leakage_mw > small.leakage_mw and big.macro_area_mm2 > small.macro_area_mm2
        assert big.read_energy_pj > small.read_energy_pj
    for capacity in (64, 256):
        # Smaller banks leak less each, but the macro as a whole (more periphery) does not leak less.
        per_bank = [results[capacity, b].bank_leakage_mw for b in (1, 2, 4)]
        assert per_bank == sorted(per_bank, reverse=True)
        macro = [b * results[capacity, b].bank_leakage_mw + results[capacity, b].network_leakage_mw for b in (1, 4)]
        assert macro[1] > 0.95 * macro[0]
        # One bank needs no routing between banks; more banks need more of it, a small share of CACTI's "bank".
        networks = [results[capacity, b].network_leakage_mw for b in (1, 2, 4)]
        assert networks[0] == 0 and 0 < networks[1] < networks[2] < 0.2 * results[capacity, 4].leakage_mw
        assert all(0 < r.gated_network_leakage_mw < r.gated_leakage_mw for r in results.values() if r.config.banks > 1)


def test_flavour_and_temperature_change_leakage(cacti: CactiInstall) -> None:
    hp = query(SramConfig(64 * KIB))
    lstp = query(SramConfig(64 * KIB, cell_flavor="lstp", periphery_flavor="lstp"))
    cool = query(SramConfig(64 * KIB, temperature_k=300))
    assert lstp.leakage_mw < hp.leakage_mw / 10
    assert cool.leakage_mw < hp.leakage_mw


def test_second_identical_sweep_runs_no_cacti(cacti: CactiInstall) -> None:
    # 310 K is used by no other test, so the first sweep really computes.
    configs = [SramConfig(capacity * KIB, banks=banks, temperature_k=310) for capacity in (64, 128) for banks in (1, 4)]
    before = cacti_process_count()
    first = query_many(configs, progress=False)
    assert cacti_process_count() - before == len(configs)
    middle = cacti_process_count()
    second = query_many(configs + configs[:1], progress=False)
    assert cacti_process_count() == middle
    assert second == first + first[:1]


def test_parallel_queries_do_not_interfere(cacti: CactiInstall) -> None:
    configs = [
        SramConfig(capacity * KIB, banks=banks, power_gating=True, temperature_k=330)
        for capacity in (32, 64, 128)
        for banks in (1, 2)
    ]
    parallel = query_many(configs, workers=2, progress=False)
    serial = [evaluate(config, cacti) for config in configs]
    assert parallel == serial
    assert len({r.leakage_mw for r in parallel}) == len(configs)


def test_cache_file_round_trips(cacti: CactiInstall, tmp_path: Path) -> None:
    from stream_trapti.sram.cacti_cache import result_path

    config = SramConfig(64 * KIB, banks=2, power_gating=True)
    result = query(config)
    assert result_path(config, cacti).is_file()
    assert query(config) == result and dataclasses.asdict(query(config)) == dataclasses.asdict(result)


@pytest.mark.parametrize(
    ("changes", "parameter"),
    [
        ({"technology_nm": 16}, "technology_nm"),
        ({"banks": 3}, "banks"),
        ({"banks": 0}, "banks"),
        ({"capacity_bytes": 32}, "capacity_bytes"),
        ({"capacity_bytes": 1024, "banks": 64}, "capacity_bytes"),
        ({"temperature_k": 365}, "temperature_k"),
        ({"temperature_k": 420}, "temperature_k"),
        ({"cell_flavor": "lp"}, "cell_flavor"),
        ({"periphery_flavor": "itrs-hp"}, "periphery_flavor"),
        ({"width_bits": 12}, "width_bits"),
        ({"read_ports": 0, "write_ports": 0}, "ports"),
    ],
)
def test_invalid_configurations_name_the_parameter(changes: dict, parameter: str) -> None:
    with pytest.raises(SramConfigError, match=parameter):
        SramConfig(**{"capacity_bytes": 64 * KIB, **changes})


def test_cacti_rejections_are_translated(cacti: CactiInstall) -> None:
    """A configuration that passes our checks but for which CACTI finds no array organisation (it exits 0)."""
    with pytest.raises(CactiError, match="no valid data array organizations.*change capacity_bytes"):
        evaluate(SramConfig(1024, banks=16, width_bits=256), cacti)


def test_missing_toolchain_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacti_build.shutil, "which", lambda tool: None)
    with pytest.raises(cacti_build.CactiBuildError, match="C\\+\\+ toolchain.*g\\+\\+"):
        cacti_build._check_toolchain()


def test_routing_leakage_is_read_from_our_patched_lines() -> None:
    stdout = (
        "\tTotal leakage power in H-tree (that includes both address and data network) ((mW)): 62.3096\n"
        "\tTotal gate leakage power in H-tree (that includes both address and data network) ((mW)): 4.14111\n"
        "\tLeakage power of the routing to banks (mW): 43.6618\n"
        "\tGate leakage power of the routing to banks (mW): 2.44152\n"
    )
    assert _network_leakage_mw(stdout) == pytest.approx(43.6618 + 2.44152)
    with pytest.raises(CactiError, match="no 'Leakage power of the routing to banks"):
        _network_leakage_mw(stdout.split("\tLeakage power")[0])


def test_patch_refuses_unexpected_source(tmp_path: Path) -> None:
    patch = cacti_build.POWER_GATING_PATCH
    (tmp_path / patch.path).write_text("// some other CACTI\n")
    with pytest.raises(cacti_build.CactiBuildError, match="zigzag-dse==3.9.1"):
        cacti_build.apply_patch(tmp_path, patch)


@pytest.mark.parametrize("machine", ["x86_64", "AMD64", "i686", "aarch64", "arm64", "ppc64le", "riscv64", "s390x"])
def test_build_flags_suit_the_machine(machine: str) -> None:
    variables = cacti_build.make_variables(machine)
    assert variables["CXX"] == "g++"  # not CACTI's "g++ -m64", which ARM64 and RISC-V compilers reject
    flags = variables["OPT"].split()
    assert "-O2" in flags and "-DNTHREADS=2" in flags
    x86 = machine.lower() in {"x86_64", "amd64", "i686"}
    assert ("-msse2" in flags and "-mfpmath=sse" in flags) == x86
    assert any(flag.startswith("-m") for flag in flags) == x86
    assert ("-ffp-contract=off" in flags) != x86


def test_fingerprint_covers_the_build_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    source = shipped_source_dir()
    seen = set()
    for machine in ("x86_64", "aarch64"):
        monkeypatch.setattr(cacti_build, "MAKE_VARIABLES", cacti_build.make_variables(machine))
        seen.add(cacti_build.fingerprint(source))
    monkeypatch.setattr(cacti_build, "MAKE_VARIABLES", {**cacti_build.make_variables("aarch64"), "CXX": "clang++"})
    seen.add(cacti_build.fingerprint(source))
    assert len(seen) == 3


def test_parallelism_follows_the_cpus_we_may_use(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cacti_build.os, "sched_getaffinity", lambda pid: {0, 3, 5}, raising=False)
    assert cacti_build.available_cpus() == 3
    monkeypatch.delattr(cacti_build.os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(cacti_build.os, "cpu_count", lambda: None)
    assert cacti_build.available_cpus() == 1
    monkeypatch.setattr(cacti_build.os, "cpu_count", lambda: 6)
    assert cacti_build.available_cpus() == 6


def test_query_many_runs_one_cacti_per_cpu_by_default(cacti: CactiInstall, monkeypatch: pytest.MonkeyPatch) -> None:
    pools = []

    def recording_pool(max_workers: int) -> ThreadPoolExecutor:
        pools.append(max_workers)
        return ThreadPoolExecutor(max_workers=max_workers)

    monkeypatch.setattr(cacti_cache, "ThreadPoolExecutor", recording_pool)
    monkeypatch.setattr(cacti_cache, "available_cpus", lambda: 3)
    query_many([], progress=False)
    query_many([], workers=1, progress=False)
    assert pools == [3, 1]
