"""Stream accelerator YAMLs generated from a template, with every on-chip memory costed by CACTI 7.

A template (:class:`HardwareTemplate`, e.g. ``hardware/templates/trapti_edge.yaml``) describes the accelerator the
committed hardware is: ``arrays.count`` systolic arrays of ``rows`` x ``columns`` PEs (cores ``0 .. count-1``), one
vector core of ``lanes`` lanes, one on-chip SRAM every compute core shares (``core_memory_sharing``), and DRAM behind
an off-chip core linked to core 0. :func:`hardware_files` turns it, at a given SRAM capacity and technology node
(the template's by default), into the accelerator YAML, one YAML per core and the CACTI config of every memory CACTI
costs, as bytes; :func:`write_hardware` writes them. The SRAM's ``r_cost`` / ``w_cost`` are CACTI's for the macro
(:func:`stream_trapti.hardware_variants.macro_config`: one bank, the template's flavours and temperature, block and
bus as wide as its port) to the 6 significant digits CACTI prints; the per-PE operand registers cost what CACTI
gives for its smallest array (``registers.cacti_bytes``) with the register's width as port, to 1 fJ. The datapath,
DRAM and link energies are the template's.

Every file starts with a provenance header naming the template by content hash, the generator version, the CACTI
build, the node and the capacity: the same template, capacity and node on the same CACTI build give the same bytes.
``make hardware`` (``scripts/make_hardware.py``) regenerates the committed files (:data:`COMMITTED_HARDWARE`);
``tests/test_hardware_generator.py`` checks that they are exactly what it generates.
"""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, model_validator
from typing_extensions import Self

from stream_trapti.atomic import atomic_write
from stream_trapti.config_model import ConfigModel, Float, Int, NonEmptyTuple, config_error, load_yaml, matching
from stream_trapti.errors import ConfigError, TraptiError, one_line
from stream_trapti.provenance import file_identity
from stream_trapti.sram.cacti import FLAVORS, TECHNOLOGY_NODES_NM, TEMPERATURES_K, SramConfig, SramResult, render_cfg
from stream_trapti.sram.cacti_cache import query

GENERATOR_VERSION = 1
"""Bump when the generated files change for the same template, capacity and node."""

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "hardware"

COMMITTED_HARDWARE: tuple[tuple[str, str, int | None], ...] = (
    ("templates/trapti_edge.yaml", "trapti_edge.yaml", None),
    ("templates/trapti_edge.yaml", "trapti_edge_2mib.yaml", 2 * 2**20),
    ("templates/trapti_edge.yaml", "trapti_edge_8mib.yaml", 8 * 2**20),
)
"""The committed accelerators under ``hardware/``: template, accelerator file, SRAM capacity in bytes (None: the
template's)."""

CACTI_DIGITS = 6
"""Significant digits CACTI prints its energies with; the SRAM's pJ figures keep exactly those."""

REGISTER_DECIMALS = 3
"""A register's pJ figures are rounded to 1 fJ: CACTI's smallest array only bounds a flip-flop register from above,
so more digits would claim a precision the figure does not have."""

HEADER_WIDTH = 118
"""Comment lines are at most this wide, ``# `` excluded."""


_IDENTIFIER = "expected letters, digits and underscores only (it names the accelerator and its files)"
Identifier = Annotated[str, matching(r"[A-Za-z0-9_]+", _IDENTIFIER)]
Positive = Annotated[Int, Field(gt=0)]
Energy = Annotated[Float | Int, Field(ge=0)]
Flavour = Literal[tuple(FLAVORS)]


class SramTemplate(ConfigModel):
    """The shared on-chip SRAM: capacity, one read and one write port of ``port_bits``, CACTI's device flavours."""

    capacity_kib: Positive
    port_bits: Annotated[Int, Field(ge=8, multiple_of=8)]
    cell_flavour: Flavour = "hp"
    periphery_flavour: Flavour = "hp"
    temperature_k: Literal[TEMPERATURES_K] = 360


class RegisterTemplate(ConfigModel):
    """The per-PE / per-lane operand registers, costed as CACTI's array of ``cacti_bytes`` with the register's port."""

    cacti_bytes: Annotated[Int, Field(ge=64)] = 256


class ArrayTemplate(ConfigModel):
    """``count`` systolic arrays of ``rows`` x ``columns`` PEs, ``mac_energy_pj`` per MAC."""

    count: Positive
    rows: Positive
    columns: Positive
    mac_energy_pj: Energy
    operator_types: NonEmptyTuple[str]


class VectorTemplate(ConfigModel):
    """One vector core of ``lanes`` lanes, ``op_energy_pj`` per lane operation."""

    lanes: Positive
    op_energy_pj: Energy
    operator_types: NonEmptyTuple[str]


class DramTemplate(ConfigModel):
    """Off-chip DRAM: capacity, one read/write port of ``port_bits`` at ``energy_pj_per_bit``, and the bandwidth of
    its link to core 0 (``link_bits`` per cycle)."""

    capacity_gib: Positive
    port_bits: Annotated[Int, Field(ge=8, multiple_of=8)]
    energy_pj_per_bit: Energy
    link_bits: Positive


class HardwareTemplate(ConfigModel):
    """An accelerator template; the module docstring says what it generates."""

    name: Identifier
    core_prefix: Identifier
    technology_nm: Literal[TECHNOLOGY_NODES_NM]
    clock_ghz: Annotated[Float, Field(gt=0)]
    operand_bits: Annotated[Int, Field(ge=1)]
    accumulator_bits: Annotated[Int, Field(ge=1)]
    sram: SramTemplate
    registers: RegisterTemplate = RegisterTemplate()
    arrays: ArrayTemplate
    vector: VectorTemplate
    dram: DramTemplate
    link_energy_pj_per_bit: Energy = 0

    @model_validator(mode="after")
    def _lanes_fill_a_word(self) -> Self:
        if self.vector.lanes * self.operand_bits != self.sram.port_bits:
            raise ValueError(
                f"key 'vector.lanes': {self.vector.lanes} lanes of {self.operand_bits} bits do not fill one "
                f"{self.sram.port_bits}-bit SRAM word (sram.port_bits); the vector core reads one word per cycle"
            )
        return self


HARDWARE_TEMPLATE_KEYS = tuple(HardwareTemplate.model_fields)


def load_template(path: str | Path, overrides: Mapping[str, Any] | None = None) -> HardwareTemplate:
    """Read and validate a hardware template, with ``overrides`` (keys as in the template, nested mappings merged:
    ``{"arrays": {"rows": 32}}``) applied first; errors name the file and the key."""
    data = load_yaml(path, "hardware template")
    source = str(path) if not overrides else f"{path} with {_overridden(overrides)}"
    try:
        return HardwareTemplate.model_validate(_merged(data, overrides or {}))
    except ValidationError as error:
        raise config_error(error, source, HARDWARE_TEMPLATE_KEYS) from None


def _merged(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` with ``overrides`` applied, nested mappings merged key by key."""
    merged = dict(data)
    for key, value in overrides.items():
        inner = merged.get(key)
        both = isinstance(value, Mapping) and isinstance(inner, Mapping)
        merged[key] = _merged(inner, value) if both else value
    return merged


def _overridden(overrides: Mapping[str, Any], prefix: str = "") -> str:
    """``overrides`` as ``arrays.rows=32, dram.link_bits=256``."""
    parts = []
    for key, value in overrides.items():
        if isinstance(value, Mapping):
            parts.append(_overridden(value, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key}={value}")
    return ", ".join(parts)


@dataclasses.dataclass(frozen=True)
class _Costed:
    """One CACTI-costed memory: its macro's figures, the cfg file name, and its costs as written (pJ)."""

    result: SramResult
    cfg: str
    read_pj: float
    write_pj: float


def hardware_files(
    template_path: str | Path,
    accelerator_file: str | None = None,
    *,
    capacity_bytes: int | None = None,
    technology_nm: int | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, bytes]:
    """Every file of the accelerator ``template_path`` describes, with an SRAM of ``capacity_bytes`` at
    ``technology_nm`` (the template's by default) and any other template key changed by ``overrides``
    (:func:`load_template`; the header lists them), by path relative to the hardware directory: the accelerator YAML
    (``accelerator_file``, by default ``<name>_<capacity>.yaml``), ``cores/*.yaml`` and ``cacti/*.cfg``."""
    template_path = Path(template_path)
    template = load_template(template_path, overrides)
    capacity = template.sram.capacity_kib * 1024 if capacity_bytes is None else capacity_bytes
    node = template.technology_nm if technology_nm is None else technology_nm
    source = f"hardware template {template_path}"
    if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity <= 0:
        raise ConfigError(f"{source}: SRAM capacity {capacity!r} must be a positive whole number of bytes")
    if node not in TECHNOLOGY_NODES_NM:
        raise ConfigError(f"{source}: technology node {node!r} nm: expected one of {TECHNOLOGY_NODES_NM}")
    token = size_token(capacity)
    names = {
        "array": f"{template.core_prefix}_array_{token}",
        "vector": f"{template.core_prefix}_vector_{token}",
        "dram": f"{template.core_prefix}_dram",
    }
    flavours = {
        "cell_flavor": template.sram.cell_flavour,
        "periphery_flavor": template.sram.periphery_flavour,
        "temperature_k": template.sram.temperature_k,
    }
    sram = _cost(source, "sram", capacity, template.sram.port_bits, node, flavours, CACTI_DIGITS)
    registers = {
        bits: _cost(source, "rf", template.registers.cacti_bytes, bits, node, flavours, REGISTER_DECIMALS)
        for bits in sorted({template.operand_bits, template.accumulator_bits})
    }
    generated = (
        f"Generated by stream_trapti.hardware_generator (version {GENERATOR_VERSION}) from the template "
        f"{file_identity(template_path)}" + (f" with {_overridden(overrides)}" if overrides else "")
    )
    provenance = (
        f"{generated}, with a {size_label(capacity)} shared SRAM at {node} nm; memory costs from CACTI 7 (ZigZag's "
        f"copy, stream-trapti build {sram.result.cacti_fingerprint}), configs in cacti/. Regenerate it (make "
        "hardware) rather than edit it."
    )
    context = _Context(template, node, capacity, sram, registers, provenance, generated)
    files = {
        accelerator_file or f"{template.name}_{token}.yaml": _accelerator(context, names),
        f"cores/{names['array']}.yaml": _array_core(context, names["array"]),
        f"cores/{names['vector']}.yaml": _vector_core(context, names["vector"]),
        f"cores/{names['dram']}.yaml": _dram_core(context, names["dram"]),
    }
    for costed in (sram, *registers.values()):
        files[f"cacti/{costed.cfg}"] = render_cfg(costed.result.config, gated=False)
    return {path: text.encode() for path, text in files.items()}


def write_hardware(files: Mapping[str, bytes], directory: str | Path) -> list[Path]:
    """Write ``files`` (from :func:`hardware_files`) under ``directory``, each atomically; other files stay."""
    return [atomic_write(Path(directory) / name, data) for name, data in files.items()]


def regenerate_committed(directory: str | Path = HARDWARE_DIR) -> dict[str, bytes]:
    """Every file of :data:`COMMITTED_HARDWARE`, generated from the templates under ``directory``."""
    files: dict[str, bytes] = {}
    for template, accelerator, capacity in COMMITTED_HARDWARE:
        files |= hardware_files(Path(directory) / template, accelerator, capacity_bytes=capacity)
    return files


def _cost(
    source: str, kind: str, capacity: int, width: int, node: int, flavours: dict[str, object], digits: int
) -> _Costed:
    """CACTI's figures for a one-bank macro of ``capacity`` bytes with a ``width``-bit read and write port."""
    try:
        config = SramConfig(capacity_bytes=capacity, width_bits=width, technology_nm=node, **flavours)
        result = query(config)
    except TraptiError as error:
        raise ConfigError(f"{source}: CACTI has no {kind} macro of {capacity} bytes: {one_line(error)}") from error
    if kind == "rf":
        cfg = f"rf_{capacity}b_{width}bit_{node}nm.cfg"
        read, write = (round(value, digits) for value in (result.read_energy_pj, result.write_energy_pj))
    else:
        cfg = f"sram_{size_token(capacity)}_{node}nm.cfg"
        read, write = (cacti_digits(value, digits) for value in (result.read_energy_pj, result.write_energy_pj))
    return _Costed(result, cfg, read, write)


def cacti_digits(energy_pj: float, digits: int = CACTI_DIGITS) -> float:
    """``energy_pj`` to the digits CACTI printed: our nJ -> pJ conversion adds float noise (797.6809999999999)."""
    return float(f"{energy_pj:.{digits}g}")


def size_label(capacity_bytes: int) -> str:
    """``2 MiB``, ``3584 KiB`` or ``1000 B``: the largest binary unit that divides the capacity."""
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if capacity_bytes % size == 0:
            return f"{capacity_bytes // size} {unit}"
    return f"{capacity_bytes} B"


def size_token(capacity_bytes: int) -> str:
    """:func:`size_label` as a name part: ``2mib``."""
    return size_label(capacity_bytes).replace(" ", "").lower()


def comment(text: str, indent: str = "") -> str:
    """``text`` as YAML comment lines at ``indent``."""
    lines = textwrap.wrap(text, HEADER_WIDTH - len(indent), break_on_hyphens=False)
    return "".join(f"{indent}# {line}\n" for line in lines)


# ------------------------------------------------------------------------------------------------ the YAML text
@dataclasses.dataclass(frozen=True)
class _Context:
    template: HardwareTemplate
    node: int
    capacity: int
    sram: _Costed
    registers: dict[int, _Costed]
    provenance: str
    generated: str


def _number(value: float) -> str:
    """A YAML number: whole values without a decimal point, others as Python writes them (they read back exactly)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _accelerator(context: _Context, names: dict[str, str]) -> str:
    template = context.template
    arrays = template.arrays.count
    vector, dram = arrays, arrays + 1
    compute = ", ".join(str(core) for core in range(arrays + 1))
    cores = [f"  {core}: ./cores/{names['array']}.yaml  # systolic array {core}\n" for core in range(arrays)]
    cores += [
        f"  {vector}: ./cores/{names['vector']}.yaml  # vector core\n",
        f"  {dram}: ./cores/{names['dram']}.yaml  # off-chip DRAM\n",
    ]
    bandwidth = template.dram.link_bits * template.clock_ghz / 8
    return (
        comment(context.provenance)
        + comment(
            f"{template.name}: {arrays} {template.arrays.rows}x{template.arrays.columns} systolic arrays (cores "
            f"0-{arrays - 1}), a {template.vector.lanes}-lane vector core ({vector}) for every other operator, one "
            f"{size_label(context.capacity)} on-chip SRAM with a {template.sram.port_bits}-bit port shared by all of "
            f"them, DRAM behind core {dram}, {_number(template.clock_ghz)} GHz, {context.node} nm. Bandwidths are bits "
            "per cycle. The template's comments give the source of every figure; the core files give the costs."
        )
        + f"name: {template.name}_{size_token(context.capacity)}\n\ncores:\n"
        + "".join(cores)
        + f"\noffchip_core_id: {dram}\n\n"
        + comment("Energy per bit moved over a link, on top of the memories' port energies.")
        + f"unit_energy_cost: {_number(template.link_energy_pj_per_bit)}\n\ncore_connectivity:\n"
        + comment(
            f"The DRAM interface: {template.dram.link_bits} bit/cycle = {_number(bandwidth)} GB/s. Only core 0 is "
            "linked: the other compute cores use core 0's top-level memory (core_memory_sharing), so Stream reaches "
            "them through it, and the validator forbids a link between cores that share a memory.",
            "  ",
        )
        + f"  - type: link\n    cores: [0, {dram}]\n    bandwidth: {template.dram.link_bits}\n\n"
        + comment("One SRAM instance for all compute cores: Stream resolves every one of them to core 0's memory.")
        + f"core_memory_sharing:\n  - {compute}\n"
    )


def _port(name: str, kind: str, bits: int, allocation: list[str]) -> str:
    lines = "".join(f"          - {entry}\n" for entry in allocation)
    return (
        f"      - name: {name}\n        type: {kind}\n        bandwidth_min: {bits}\n        bandwidth_max: {bits}\n"
        f"        allocation:\n{lines}"
    )


def _register(context: _Context, name: str, operand: str, bits: int, what: str) -> str:
    costed = context.registers[bits]
    source = (
        f"{what}. Energies: CACTI {context.node} nm, a {costed.result.config.capacity_bytes} B RAM with one "
        f"{bits}-bit read and one {bits}-bit write port (cacti/{costed.cfg}), an upper bound for a register."
    )
    if operand == "O":
        ports = [
            _port("r_port_1", "read", bits, ["O, tl"]),
            _port("r_port_2", "read", bits, ["O, th"]),
            _port("w_port_1", "write", bits, ["O, fh"]),
            _port("w_port_2", "write", bits, ["O, fl"]),
        ]
    else:
        ports = [
            _port("r_port_1", "read", bits, [f"{operand}, tl"]),
            _port("w_port_1", "write", bits, [f"{operand}, fh"]),
        ]
    return (
        comment(source, "  ")
        + f"  {name}:\n    size: {bits}  # bits\n"
        + f"    r_cost: {_number(costed.read_pj)}  # pJ per read\n"
        + f"    w_cost: {_number(costed.write_pj)}  # pJ per write\n"
        + f"    area: 0\n    latency: 1\n    operands: [{operand}]\n    ports:\n"
        + "".join(ports)
        + "    served_dimensions: []  # one register per PE / lane\n\n"
    )


def _sram(context: _Context, served: str) -> str:
    template, sram = context.template, context.sram
    bits = template.sram.port_bits
    config = sram.result.config
    label = size_label(context.capacity)
    return (
        comment(
            f"The {label} on-chip SRAM every compute core shares (core_memory_sharing in the accelerator file): one "
            f"{bits}-bit read port and one {bits}-bit write port. Energies: CACTI 7 at {context.node} nm, one UCA "
            f"bank, itrs-{config.cell_flavor} cells, itrs-{config.periphery_flavor} periphery, "
            f"{config.temperature_k} K, {bits // 8} B block, {bits}-bit bus (cacti/{sram.cfg}).",
            "  ",
        )
        + f"  sram:\n    size: {8 * context.capacity}  # bits = {label}\n"
        + f"    r_cost: {_number(sram.read_pj)}  # pJ per {bits}-bit read (CACTI: {sram.read_pj / 1e3:.6g} nJ)\n"
        + f"    w_cost: {_number(sram.write_pj)}  # pJ per {bits}-bit write (CACTI: {sram.write_pj / 1e3:.6g} nJ)\n"
        + "    area: 0  # not used by Stream's schedule; Stage II takes CACTI's area\n"
        + "    latency: 1\n    operands: [I1, I2, O]\n    ports:\n"
        + _port("r_port_1", "read", bits, ["I1, tl", "I2, tl", "O, tl", "O, th"])
        + _port("w_port_1", "write", bits, ["I1, fh", "I2, fh", "O, fh", "O, fl"])
        + f"    served_dimensions: [{served}]\n\n"
    )


def _core_header(context: _Context, what: str) -> str:
    return comment(context.provenance) + comment(what)


def _array_core(context: _Context, name: str) -> str:
    template = context.template
    arrays, operand, accumulator = template.arrays, template.operand_bits, template.accumulator_bits
    return (
        _core_header(
            context,
            f"One {arrays.rows}x{arrays.columns} systolic array of {template.name}, with the "
            f"{size_label(context.capacity)} shared SRAM on top.",
        )
        + f"name: {name}\ntype: zigzag.compute\n\nmemories:\n"
        + _register(context, "rf_I", "I1", operand, f"Per-PE {operand}-bit input register")
        + _register(context, "rf_W", "I2", operand, f"Per-PE {operand}-bit weight register")
        + _register(context, "rf_O", "O", accumulator, f"Per-PE {accumulator}-bit accumulator")
        + _sram(context, "D1, D2")
        + f"operational_array:\n  unit_energy: {_number(arrays.mac_energy_pj)}  # pJ per MAC (the template's)\n"
        + "  unit_area: 1  # unit; area is not used by this project's analysis\n  dimensions: [D1, D2]\n"
        + f"  sizes: [{arrays.rows}, {arrays.columns}]\n"
        + "  # Systolic: operands move from one PE to the next along both array dimensions.\n"
        + "  systolic_dimensions: [D1, D2]\n\n"
        + f"operand_precision:\n  input: int{operand}\n  accumulator: int{accumulator}\n\n"
        + _operator_types(arrays.operator_types)
    )


def _vector_core(context: _Context, name: str) -> str:
    template = context.template
    operand, accumulator = template.operand_bits, template.accumulator_bits
    return (
        _core_header(
            context,
            f"The vector core of {template.name}: softmax, normalisation, activations and element-wise operators, "
            f"with the {size_label(context.capacity)} shared SRAM on top.",
        )
        + f"name: {name}\ntype: zigzag.compute\n\nmemories:\n"
        + _register(context, "rf_I", "I1", operand, f"Per-lane {operand}-bit register for the first operand")
        + _register(context, "rf_W", "I2", operand, f"Per-lane {operand}-bit register for the second operand")
        + _register(context, "rf_O", "O", accumulator, f"Per-lane {accumulator}-bit register for reductions")
        + _sram(context, "D1")
        + f"operational_array:\n  unit_energy: {_number(template.vector.op_energy_pj)}  # pJ per lane operation "
        + "(the template's)\n  unit_area: 1  # unit; area is not used by this project's analysis\n"
        + f"  dimensions: [D1]\n  sizes: [{template.vector.lanes}]\n\n"
        + f"operand_precision:\n  input: int{operand}\n\n"
        + _operator_types(template.vector.operator_types)
    )


def _operator_types(types: tuple[str, ...]) -> str:
    lines = textwrap.wrap(", ".join(types), HEADER_WIDTH - 20, subsequent_indent="  ", break_on_hyphens=False)
    return "operator_types: [" + "\n".join(lines) + "]\n"


DRAM_O = ["O, fh", "O, tl", "O, fl", "O, th"]
"""The DRAM port's allocation for outputs: partial sums both ways, final outputs in and out."""


def _dram_core(context: _Context, name: str) -> str:
    dram = context.template.dram
    bits = dram.port_bits
    access = bits * dram.energy_pj_per_bit
    # The DRAM depends on neither the SRAM nor the node: one file serves every capacity generated from the template.
    return (
        comment(f"{context.generated}: regenerate it (make hardware) rather than edit it.")
        + comment(f"Off-chip DRAM behind {context.template.name}.")
        + f"name: {name}\ntype: zigzag.offchip\n\nmemories:\n  dram:\n"
        + f"    size: {8 * dram.capacity_gib * 2**30}  # bits = {dram.capacity_gib} GiB\n"
        + f"    r_cost: {_number(access)}  # pJ = {bits} bit x {_number(dram.energy_pj_per_bit)} pJ/bit\n"
        + f"    w_cost: {_number(access)}  # pJ = {bits} bit x {_number(dram.energy_pj_per_bit)} pJ/bit\n"
        + "    area: 0\n    latency: 1\n    operands: [I1, I2, O]\n    ports:\n"
        + "      # One read/write port, so reads and writes of all operands share the DRAM bandwidth.\n"
        + _port("rw_port_1", "read_write", bits, [f"{op}, {d}" for op in ("I1", "I2") for d in ("fh", "tl")] + DRAM_O)
        + "    served_dimensions: [D1, D2]\n\noperational_array:\n  input_precision: [0, 0]\n  unit_energy: 0\n"
        + "  unit_area: 0\n  dimensions: [D1, D2]\n  sizes: [0, 0]\n"
    )
