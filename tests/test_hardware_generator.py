"""The hardware generator: the committed accelerators are exactly what it generates from their template, a variant
at another capacity and node parses and carries CACTI's costs, and a bad template is one line naming file and key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from stream_trapti.errors import ConfigError
from stream_trapti.hardware_generator import (
    COMMITTED_HARDWARE,
    HARDWARE_DIR,
    hardware_files,
    load_template,
    regenerate_committed,
    write_hardware,
)
from stream_trapti.hardware_variants import sram_capacity_variant
from stream_trapti.sram.cacti import SramConfig
from stream_trapti.sram.cacti_build import CactiInstall
from stream_trapti.sram.cacti_cache import query
from stream_trapti.tracker.inputs import check_hardware, hardware_memories, load_accelerator
from stream_trapti.tracker.stream_internals import top_memory

from conftest import DEFAULT_HARDWARE

TEMPLATE = HARDWARE_DIR / "templates" / "trapti_edge.yaml"
MIB = 2**20
BUILD = re.compile(rb"stream-trapti build ([0-9a-f]{16})")


def test_committed_hardware_is_what_the_generator_writes(cacti: CactiInstall) -> None:
    """Every committed accelerator, core and CACTI config file, byte for byte: regenerate them (make hardware) after
    editing the template or the generator. The headers name the CACTI build; one built with other flags (another
    machine) is told apart by its fingerprint only, so that is the one thing compared loosely."""
    files = regenerate_committed()
    assert {name for name in files if "/" not in name} == {accelerator for _, accelerator, _ in COMMITTED_HARDWARE}
    for name, data in files.items():
        committed = (HARDWARE_DIR / name).read_bytes()
        assert BUILD.sub(b"build -", data) == BUILD.sub(b"build -", committed), name
        if cacti.fingerprint.encode() in committed:
            assert data == committed, name


def test_sram_costs_are_cactis_and_agree_with_the_capacity_variant(cacti: CactiInstall, tmp_path: Path) -> None:
    """A 6 MiB variant at 22 nm: Stream parses it, its shared SRAM has the capacity and CACTI's per-access energies (to
    CACTI's 6 digits), and the registers CACTI's 256 B array's (to 1 fJ). At 3 MiB and the template's node, the
    generator and sram_capacity_variant (text edits of the committed default) give the same SRAM."""
    files = hardware_files(TEMPLATE, capacity_bytes=6 * MIB, technology_nm=22)
    write_hardware(files, tmp_path / "hw22")
    accelerator_yaml = tmp_path / "hw22" / "trapti_edge_6mib.yaml"
    check_hardware(accelerator_yaml)
    (memory,) = hardware_memories(accelerator_yaml)
    assert memory.capacity_bytes == 6 * MIB and memory.core_ids == (0, 1, 2) and memory.read_port_bits == 512
    accelerator = load_accelerator(accelerator_yaml)
    sram = query(SramConfig(6 * MIB, width_bits=512, technology_nm=22, temperature_k=360))
    for core in (0, 1, 2):
        top = top_memory(accelerator.get_core(core))
        assert (top.r_cost, top.w_cost) == (float(f"{sram.read_energy_pj:.6g}"), float(f"{sram.write_energy_pj:.6g}"))
    register = query(SramConfig(256, width_bits=8, technology_nm=22, temperature_k=360))
    rf_i = yaml.safe_load(files["cores/trapti_array_6mib.yaml"])["memories"]["rf_I"]
    assert (rf_i["r_cost"], rf_i["w_cost"]) == (round(register.read_energy_pj, 3), round(register.write_energy_pj, 3))
    assert "22 nm" in files["trapti_edge_6mib.yaml"].decode().splitlines()[1]
    assert (tmp_path / "hw22" / "cacti" / "sram_6mib_22nm.cfg").read_text().startswith("-size (bytes) 6291456\n")

    generated = hardware_files(TEMPLATE, capacity_bytes=3 * MIB)
    write_hardware(generated, tmp_path / "hw45")
    variant = sram_capacity_variant(DEFAULT_HARDWARE, 3 * MIB, tmp_path / "variant")
    tops = [
        [(m.size, m.r_cost, m.w_cost) for m in (top_memory(load_accelerator(path).get_core(c)) for c in (0, 1, 2))]
        for path in (tmp_path / "hw45" / "trapti_edge_3mib.yaml", variant)
    ]
    assert tops[0] == tops[1]


def test_template_exposes_the_other_axes() -> None:
    """Array size and DRAM bandwidth come from the template, and can be overridden per call (as a sweep over them
    would): 32x32 arrays and a 256-bit DRAM link, said in every file's header."""
    overrides = {"arrays": {"rows": 32, "columns": 32}, "dram": {"link_bits": 256, "port_bits": 256}}
    files = hardware_files(TEMPLATE, capacity_bytes=MIB, overrides=overrides)
    array = yaml.safe_load(files["cores/trapti_array_1mib.yaml"])
    accelerator = yaml.safe_load(files["trapti_edge_1mib.yaml"])
    dram = yaml.safe_load(files["cores/trapti_dram.yaml"])["memories"]["dram"]
    assert array["operational_array"]["sizes"] == [32, 32] and array["memories"]["sram"]["size"] == 8 * MIB
    assert accelerator["core_connectivity"][0]["bandwidth"] == 256
    assert dram["ports"][0]["bandwidth_max"] == 256 and dram["r_cost"] == 256 * 20
    said = "with arrays.rows=32, arrays.columns=32, dram.link_bits=256, dram.port_bits=256"
    assert all(said in " ".join(data.decode().split()) for name, data in files.items() if name.endswith(".yaml"))
    with pytest.raises(ConfigError, match=r"trapti_edge.yaml with arrays.rows=0: key 'arrays.rows': expected a value"):
        hardware_files(TEMPLATE, overrides={"arrays": {"rows": 0}})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"sram": {"capacity_kib": 4096, "port_bitz": 512}}, r"unknown key\(s\) \['sram.port_bitz'\]"),
        ({"technology_nm": 16}, r"key 'technology_nm': expected 22, 32, 45, 65 or 90, got 16"),
        ({"arrays": {"count": 2, "rows": "64"}}, r"key 'arrays.rows': expected a valid integer, got '64'"),
        ({"vector": {"lanes": 32}}, r"key 'vector.lanes': 32 lanes of 8 bits do not fill one 512-bit SRAM word"),
        ({"name": "trapti edge"}, r"key 'name': expected letters, digits and underscores only .*, got 'trapti edge'"),
    ],
)
def test_bad_template_is_one_line_naming_file_and_key(tmp_path: Path, edit: dict, message: str) -> None:
    data = yaml.safe_load(TEMPLATE.read_text())
    for key, value in edit.items():
        data[key] = data[key] | value if isinstance(value, dict) and key != "sram" else value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=message) as error:
        load_template(path)
    assert str(error.value).startswith(f"{path}: ") and "\n" not in str(error.value)


def test_bad_capacity_or_node_names_the_template() -> None:
    with pytest.raises(ConfigError, match=r"trapti_edge.yaml: SRAM capacity 0 must be a positive whole number"):
        hardware_files(TEMPLATE, capacity_bytes=0)
    with pytest.raises(ConfigError, match=r"trapti_edge.yaml: technology node 28 nm: expected one of"):
        hardware_files(TEMPLATE, technology_nm=28)
