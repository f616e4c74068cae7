"""SRAM-capacity variants of an accelerator: the committed 2 and 8 MiB files' figures, a valid and self-contained
output, byte-identical repeats, the macro's costs kept for a smaller usable capacity, and bad requests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from stream_trapti.errors import ConfigError, InputFileError, OutputError
from stream_trapti.hardware_generator import HARDWARE_DIR
from stream_trapti.hardware_variants import sram_capacity_variant, template_variant
from stream_trapti.sram.cacti import cacti_process_count
from stream_trapti.sram.cacti_build import CactiInstall
from stream_trapti.tracker.inputs import check_hardware, hardware_memories, load_accelerator
from stream_trapti.tracker.stream_internals import top_memory

from conftest import DEFAULT_HARDWARE, FUSEMAX, HARDWARE

MIB = 2**20
COMPUTE_CORES = (0, 1, 2)


def _sram(accelerator_yaml: Path) -> list[tuple[int, float, float]]:
    """(size in bits, r_cost, w_cost) of the top memory of every compute core, as Stream reads them."""
    accelerator = load_accelerator(accelerator_yaml)
    memories = (top_memory(accelerator.get_core(core_id)) for core_id in COMPUTE_CORES)
    return [(memory.size, memory.r_cost, memory.w_cost) for memory in memories]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in directory.rglob("*") if path.is_file()}


@pytest.mark.parametrize("mib", [2, 8])
def test_variant_matches_the_committed_variant(cacti: CactiInstall, tmp_path: Path, mib: int) -> None:
    """Same size and the same CACTI costs, to every digit the committed files give (CACTI's 6 significant digits)."""
    variant = sram_capacity_variant(DEFAULT_HARDWARE, mib * MIB, tmp_path / "variant")
    committed = _sram(HARDWARE / f"trapti_edge_{mib}mib.yaml")
    assert _sram(variant) == committed
    assert committed[0][0] == 8 * mib * MIB


def test_variant_is_valid_and_self_contained(cacti: CactiInstall, tmp_path: Path) -> None:
    variant = sram_capacity_variant(DEFAULT_HARDWARE, 3 * MIB, tmp_path / "variant")
    check_hardware(variant)
    (memory,) = hardware_memories(variant)
    assert memory.capacity_bytes == 3 * MIB and memory.core_ids == COMPUTE_CORES
    accelerator = load_accelerator(variant)
    assert all(accelerator.get_core(i).get_memory_capacity() == 8 * 3 * MIB for i in COMPUTE_CORES)
    cores = yaml.safe_load(variant.read_text())["cores"]
    assert all(path.startswith("./cores/") and (variant.parent / path).is_file() for path in cores.values())
    assert (variant.parent / "cacti" / "sram_3mib_45nm.cfg").is_file()


def test_only_the_sram_entries_change(cacti: CactiInstall, tmp_path: Path) -> None:
    """Below its header, a variant's core file is the base's but for the SRAM's size and costs, comments included;
    the off-chip core file is copied as it is."""
    variant = sram_capacity_variant(DEFAULT_HARDWARE, 2 * MIB, tmp_path / "variant")
    base_core = HARDWARE / "cores" / "trapti_array_4mib.yaml"
    base_lines = base_core.read_text().splitlines()
    lines = (variant.parent / "cores" / base_core.name).read_text().splitlines()
    changed = [new for old, new in zip(base_lines, lines[-len(base_lines) :], strict=True) if old != new]
    assert [line.split(":")[0].strip() for line in changed] == ["size", "r_cost", "w_cost"]
    assert changed[0] == "    size: 16777216  # bits = 2 MiB"
    dram = HARDWARE / "cores" / "trapti_dram.yaml"
    assert (variant.parent / "cores" / dram.name).read_bytes() == dram.read_bytes()


def test_a_template_variant_has_the_arrays_and_dram_asked_for_and_is_made_once(cacti: CactiInstall) -> None:
    """Three 32x16 arrays and a 256-bit DRAM port and link, as Stream reads the generated files: cores 0-2 arrays of
    those dimension sizes, core 3 the vector core, core 4 the DRAM; asking again returns the cached files untouched."""
    template = HARDWARE_DIR / "templates" / "trapti_edge.yaml"
    overrides = {"arrays": {"rows": 32, "columns": 16, "count": 3}, "dram": {"port_bits": 256, "link_bits": 256}}
    variant = template_variant(template, overrides, 2 * MIB)
    accelerator = load_accelerator(variant)
    arrays = [accelerator.get_core(core_id).operational_array.dimension_sizes for core_id in (0, 1, 2)]
    assert [list(sizes.values()) for sizes in arrays] == [[32, 16]] * 3
    assert list(accelerator.get_core(3).operational_array.dimension_sizes.values()) == [64]
    assert accelerator.offchip_core_id == 4
    dram = yaml.safe_load((variant.parent / "cores" / "trapti_dram.yaml").read_text())["memories"]["dram"]
    assert [(p["bandwidth_min"], p["bandwidth_max"]) for p in dram["ports"]] == [(256, 256)]
    assert dram["r_cost"] == 256 * 20  # 20 pJ/bit: the DRAM's energy per bit does not change with its width
    assert yaml.safe_load(variant.read_text())["core_connectivity"] == [
        {"type": "link", "cores": [0, 4], "bandwidth": 256}
    ]
    assert _sram(variant) == _sram(HARDWARE / "trapti_edge_2mib.yaml")  # the same CACTI macro as the committed 2 MiB
    written = {path: path.stat().st_mtime_ns for path in variant.parent.rglob("*")}
    runs = cacti_process_count()
    assert template_variant(template, overrides, 2 * MIB) == variant
    assert {path: path.stat().st_mtime_ns for path in variant.parent.rglob("*")} == written
    assert cacti_process_count() == runs
    assert template_variant(template, {**overrides, "arrays": {"rows": 16}}, 2 * MIB).parent != variant.parent


def test_second_call_is_byte_identical_and_runs_no_cacti(cacti: CactiInstall, tmp_path: Path) -> None:
    first = sram_capacity_variant(DEFAULT_HARDWARE, 5 * MIB, tmp_path / "first")
    runs = cacti_process_count()
    second = sram_capacity_variant(DEFAULT_HARDWARE, 5 * MIB, tmp_path / "second")
    assert _files(first.parent) == _files(second.parent)
    cached = sram_capacity_variant(DEFAULT_HARDWARE, 5 * MIB)
    assert sram_capacity_variant(DEFAULT_HARDWARE, 5 * MIB) == cached
    assert _files(cached.parent) == _files(first.parent)
    assert cacti_process_count() == runs


def test_cost_capacity_keeps_the_macro_costs(cacti: CactiInstall, tmp_path: Path) -> None:
    """A 3.5 MiB usable part of the 4 MiB macro: the size shrinks, the per-access energies are the 4 MiB macro's."""
    usable = 7 * MIB // 2
    variant = sram_capacity_variant(DEFAULT_HARDWARE, usable, tmp_path / "variant", cost_capacity_bytes=4 * MIB)
    committed = _sram(DEFAULT_HARDWARE)
    assert _sram(variant) == [(8 * usable, r_cost, w_cost) for _, r_cost, w_cost in committed]


def test_other_shared_sram_accelerator(cacti: CactiInstall, tmp_path: Path) -> None:
    """Stream's FuseMax example: another memory name and port width, edited in both compute cores."""
    variant = sram_capacity_variant(FUSEMAX, MIB, tmp_path / "variant")
    (memory,) = hardware_memories(variant)
    assert memory.capacity_bytes == MIB and memory.read_port_bits == 8192


@pytest.mark.parametrize(
    ("capacity", "cost", "message"),
    [
        (0, None, "capacity_bytes=0 must be a positive whole number"),
        (-MIB, None, "capacity_bytes=-1048576 must be a positive"),
        (1.5 * MIB, None, "capacity_bytes=1572864.0 must be a positive whole number"),
        (4 * MIB, 2 * MIB, "cost_capacity_bytes=2097152 is smaller than capacity_bytes=4194304"),
        (32, None, "no CACTI macro of 32 bytes"),
    ],
)
def test_bad_capacity_is_one_config_error(tmp_path: Path, capacity: float, cost: int | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        sram_capacity_variant(DEFAULT_HARDWARE, capacity, tmp_path / "variant", cost_capacity_bytes=cost)
    assert "\n" not in str(error.value) and "trapti_edge.yaml" in str(error.value)
    assert not (tmp_path / "variant").exists()


def test_accelerator_without_a_shared_sram(tmp_path: Path) -> None:
    base = FUSEMAX.parent / "tpu_like_quad_core.yaml"
    with pytest.raises(ConfigError, match=r"tpu_like_quad_core.yaml: expected one on-chip memory .* found 6"):
        sram_capacity_variant(base, MIB, tmp_path / "variant")


def test_missing_base_and_unsafe_output(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match="nothing.yaml: no such file"):
        sram_capacity_variant(tmp_path / "nothing.yaml", MIB, tmp_path / "variant")
    with pytest.raises(OutputError, match="an input of this run"):
        sram_capacity_variant(DEFAULT_HARDWARE, 2 * MIB, HARDWARE)
