"""Stream accelerator YAMLs whose shared on-chip SRAM has another capacity, generated from a base accelerator.

The SRAM a variant changes is the one memory instance :func:`stream_trapti.tracker.group.on_chip_memories` finds: the
memory every compute core resolves to (``core_memory_sharing``), which each core's YAML declares as its top level
for operand I1 (:func:`stream_trapti.tracker.stream_internals.top_memory`). In every compute core's YAML that entry
gets ``size = capacity_bytes * 8`` and the ``r_cost`` / ``w_cost`` CACTI 7 gives for a macro of
``cost_capacity_bytes`` (by default the same capacity). The two differ for a run that lets Stream use only part of
the physical macro: its per-access energy stays that of the whole macro.

The macro is the one the committed ``hardware/cacti/sram_*mib_45nm.cfg`` describe (:func:`macro_config`): 45 nm,
one UCA bank, itrs-hp cells and periphery, 360 K, block and bus as wide as the memory's widest read port, and its
port counts; :mod:`stream_trapti.hardware_generator` wrote those cfgs, so the 2, 4 and 8 MiB figures are the
committed ones. Costs are written to 6 significant digits, the precision CACTI prints them with.

This works on any accelerator Stream accepts whose compute cores share one SRAM (Stream's own FuseMax example too);
for an accelerator of our own template, :func:`stream_trapti.hardware_generator.hardware_files` regenerates every
file at another capacity or technology node instead.

Files are edited as text at the positions PyYAML's parser reports, so every comment and the layout of the base stay;
a header says what was generated from what. A variant directory holds the accelerator YAML (under the base's file
name), ``cores/`` with every core YAML it names, and ``cacti/`` with the CACTI cfg of the macro: it is
self-contained, and the same inputs give byte-identical files. Without an output directory the variant goes to the
cache root, at a path named by the content of the request, so asking again returns the same path without running
CACTI (whose figures are cached in any case, :mod:`stream_trapti.sram.cacti_cache`).

:func:`template_variant` keeps an accelerator generated from a template (other arrays, another DRAM bandwidth, as a
design sweep asks for) in the same cache, the same way (:func:`cached_hardware`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from stream.hardware.architecture.core import Core
from zigzag.hardware.architecture.memory_instance import MemoryInstance

from stream_trapti import hardware_generator
from stream_trapti.atomic import OUTPUT_MARKER, atomic_directory
from stream_trapti.banked_sram import sram_config_for
from stream_trapti.cache_dir import cache_root
from stream_trapti.errors import ConfigError, TraptiError, check_file, one_line
from stream_trapti.hardware_generator import (
    CACTI_DIGITS,
    GENERATOR_VERSION,
    cacti_digits,
    comment,
    load_template,
    size_label,
    size_token,
)
from stream_trapti.provenance import core_file, core_files, file_identity, hardware_files, hardware_identity
from stream_trapti.sram.cacti import SramConfig, SramResult, render_cfg
from stream_trapti.sram.cacti_build import ensure_cacti
from stream_trapti.sram.cacti_cache import query
from stream_trapti.tracker.group import on_chip_memories
from stream_trapti.tracker.inputs import load_accelerator
from stream_trapti.tracker.stream_internals import top_memory

VARIANT_SCHEMA = 2
"""Bump when what a variant holds changes, so cached variants of an older stream-trapti are not returned."""

_REST_OF_LINE = re.compile(r"[^\r\n]*")


@dataclasses.dataclass(frozen=True)
class SharedSram:
    """The one on-chip SRAM every compute core of an accelerator uses, as a variant edits it.

    core_ids: the compute cores. memory_names: each compute core's YAML -> the name of the memory Stream takes as
    that core's (its top level for I1), the entry a variant edits. memory: that memory in the core owning the
    instance, whose ports the CACTI macro keeps.
    """

    core_ids: tuple[int, ...]
    memory_names: dict[Path, str]
    memory: MemoryInstance


@dataclasses.dataclass(frozen=True)
class _Edit:
    """Replace ``source[start:end]`` with ``text``."""

    start: int
    end: int
    text: str


def sram_capacity_variant(
    base: str | Path, capacity_bytes: int, out_dir: str | Path | None = None, *, cost_capacity_bytes: int | None = None
) -> Path:
    """Write the variant of the accelerator YAML ``base`` whose shared SRAM holds ``capacity_bytes`` and costs what
    CACTI gives for a ``cost_capacity_bytes`` macro (default: ``capacity_bytes``); return its accelerator YAML.

    The variant replaces ``out_dir`` atomically (:func:`stream_trapti.atomic.atomic_directory`); without
    ``out_dir`` it goes to the cache root and is reused. A bad request is a :class:`ConfigError` naming the file or
    argument, an invalid base an :class:`~stream_trapti.errors.InputFileError`.
    """
    base = Path(base)
    cost_capacity_bytes = capacity_bytes if cost_capacity_bytes is None else cost_capacity_bytes
    _check_capacities(base, capacity_bytes, cost_capacity_bytes)
    sram = shared_sram(base)
    config = _macro(base, cost_capacity_bytes, sram)

    def files() -> dict[str, bytes]:
        return _variant_files(base, sram, capacity_bytes, _cacti(base, config))

    if out_dir is None:
        request = {
            "schema": VARIANT_SCHEMA,
            "hardware": hardware_identity(base),
            "capacity_bytes": capacity_bytes,
            "cost_capacity_bytes": cost_capacity_bytes,
        }
        stem = f"{base.stem}-{_variant_token(capacity_bytes, cost_capacity_bytes)}"
        return cached_hardware(stem, request, base.name, files, hardware_files(base))
    _write_directory(Path(out_dir), files(), hardware_files(base))
    return Path(out_dir) / base.name


def template_variant(template: str | Path, overrides: Mapping[str, Any], capacity_bytes: int | None = None) -> Path:
    """The accelerator YAML :func:`~stream_trapti.hardware_generator.hardware_files` generates from ``template`` with
    ``overrides`` and an SRAM of ``capacity_bytes`` (None: the template's), with its core files and CACTI configs,
    in the cache root (:func:`cached_hardware`): asking again returns the same path without generating anything."""
    template = Path(template)
    generated = load_template(template, overrides)
    capacity = generated.sram.capacity_kib * 1024 if capacity_bytes is None else capacity_bytes
    accelerator = f"{generated.name}_{size_token(capacity)}.yaml"
    request = {
        "generator": GENERATOR_VERSION,
        "template": file_identity(template),
        "overrides": overrides,
        "capacity_bytes": capacity,
    }

    def files() -> dict[str, bytes]:
        return hardware_generator.hardware_files(template, accelerator, capacity_bytes=capacity, overrides=overrides)

    return cached_hardware(f"{template.stem}-{size_token(capacity)}", request, accelerator, files, [template])


def cached_hardware(
    stem: str,
    request: Mapping[str, Any],
    accelerator: str,
    files: Callable[[], Mapping[str, bytes]],
    inputs: Sequence[Path],
) -> Path:
    """The accelerator YAML ``accelerator`` of the hardware directory that ``files`` makes, kept in the cache root
    under ``<stem>-<key>``: ``key`` hashes ``request`` (everything the files depend on) and the CACTI build, so an
    edited input or another CACTI never gets stale files. ``files`` runs only when the cache does not hold them; the
    directory is written whole (:func:`~stream_trapti.atomic.atomic_directory`), so concurrent runs and workers
    share it safely."""
    key = hashlib.sha256(json.dumps({**request, "cacti": ensure_cacti().fingerprint}, sort_keys=True).encode())
    directory = cache_root() / "hardware-variants" / f"{stem}-{key.hexdigest()[:16]}"
    if not ((directory / OUTPUT_MARKER).is_file() and (directory / accelerator).is_file()):
        _write_directory(directory, files(), inputs)
    return directory / accelerator


def _write_directory(directory: Path, files: Mapping[str, bytes], inputs: Sequence[Path]) -> None:
    """``files`` (by path relative to ``directory``) as the whole of ``directory``, swapped in once written."""
    with atomic_directory(directory, inputs=inputs) as staging:
        for name, data in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_bytes(data)


def _check_capacities(base: Path, capacity_bytes: int, cost_capacity_bytes: int) -> None:
    """Both capacities are positive whole byte counts, and the macro holds at least the capacity Stream may use."""
    for name, value in (("capacity_bytes", capacity_bytes), ("cost_capacity_bytes", cost_capacity_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ConfigError(f"SRAM variant of {base}: {name}={value!r} must be a positive whole number of bytes")
    if cost_capacity_bytes < capacity_bytes:
        raise ConfigError(
            f"SRAM variant of {base}: cost_capacity_bytes={cost_capacity_bytes} is smaller than "
            f"capacity_bytes={capacity_bytes}; the physical macro must hold the capacity Stream may use"
        )


def shared_sram(base: Path) -> SharedSram:
    """The SRAM all compute cores of the accelerator ``base`` share; a :class:`ConfigError` naming ``base`` when it
    has several on-chip memories or a compute core is not described by a core YAML file."""
    base = check_file(base, "hardware YAML")
    return _shared_sram(base, hardware_identity(base))


@cache
def _shared_sram(base: Path, identity: str) -> SharedSram:
    """:func:`shared_sram`, once per file content (``identity``): parsing the accelerator takes ~0.15 s, and a
    resident decode asks for a variant of the same base at every step."""
    accelerator = load_accelerator(base)
    memories = on_chip_memories(accelerator)
    if len(memories) != 1:
        found = [info.name for _, info in memories]
        raise ConfigError(
            f"hardware YAML {base}: expected one on-chip memory that every compute core shares (core_memory_sharing), "
            f"found {len(memories)}: {found}"
        )
    owner, info = memories[0]
    files = core_files(base)
    names: dict[Path, str] = {}
    for core_id in info.core_ids:
        if core_id not in files:
            raise ConfigError(
                f"hardware YAML {base}: key 'cores.{core_id}' does not name a core YAML file; a variant edits core "
                "files"
            )
        names[files[core_id]] = _top_memory(accelerator.get_core(core_id), base).name
    return SharedSram(core_ids=info.core_ids, memory_names=names, memory=_top_memory(owner, base))


def _top_memory(core: Core, base: Path) -> MemoryInstance:
    memory = top_memory(core)
    if memory is None:
        raise ConfigError(f"hardware YAML {base}: compute core {core} has no memory hierarchy Stream can read")
    return memory


def macro_config(capacity_bytes: int, memory: MemoryInstance) -> SramConfig:
    """The CACTI macro of ``capacity_bytes`` that the committed ``hardware/cacti/sram_*mib_45nm.cfg`` describe (one
    bank, 45 nm, itrs-hp cells and periphery, 360 K, no power gating), with ``memory``'s port width (as block size
    and bus width) and port counts, taken as :func:`stream_trapti.banked_sram.sram_config_for` takes them."""
    technology = {"technology_nm": 45, "cell_flavor": "hp", "periphery_flavor": "hp", "temperature_k": 360}
    config = sram_config_for(memory, banks=1, power_gating=False, **technology)
    return dataclasses.replace(config, capacity_bytes=capacity_bytes)


def _macro(base: Path, cost_capacity_bytes: int, sram: SharedSram) -> SramConfig:
    """:func:`macro_config`, with a macro SramConfig refuses reported against ``base``."""
    try:
        return macro_config(cost_capacity_bytes, sram.memory)
    except ConfigError as error:
        raise ConfigError(f"SRAM variant of {base}: no CACTI macro of {cost_capacity_bytes} bytes: {error}") from error


def _cacti(base: Path, config: SramConfig) -> SramResult:
    """CACTI's figures for ``config`` (cached), a failure reported against ``base`` as one line."""
    try:
        return query(config)
    except TraptiError as error:
        raise ConfigError(
            f"SRAM variant of {base}: CACTI has no figures for a {config.capacity_bytes}-byte macro "
            f"({one_line(error)}); pass cost_capacity_bytes, the capacity of the physical macro"
        ) from error


def _variant_files(base: Path, sram: SharedSram, capacity_bytes: int, macro: SramResult) -> dict[str, bytes]:
    """Every file of the variant directory, by path relative to it."""
    cores = sorted(set(core_files(base).values()))
    clash = [path for path in cores if sum(other.name == path.name for other in cores) > 1]
    if clash:
        raise ConfigError(f"hardware YAML {base}: core files {clash} share a file name; a variant needs them apart")
    cfg = f"{sram.memory.name}_{size_token(macro.config.capacity_bytes)}_{macro.config.technology_nm}nm.cfg"
    identity = hardware_identity(base)
    header = _accelerator_header(identity, sram, capacity_bytes, macro, cfg)
    files = {
        base.name: _variant_accelerator(base, capacity_bytes, macro.config.capacity_bytes, header).encode(),
        f"cacti/{cfg}": render_cfg(macro.config, gated=False).encode(),
    }
    for path in cores:
        name = sram.memory_names.get(path)
        files[f"cores/{path.name}"] = (
            path.read_bytes() if name is None else _variant_core(path, name, capacity_bytes, macro, identity).encode()
        )
    return files


def _variant_accelerator(base: Path, capacity_bytes: int, cost_capacity_bytes: int, header: str) -> str:
    """The base accelerator YAML with a name saying the SRAM capacity and every core file referenced in ``cores/``."""
    source = base.read_text(encoding="utf-8")
    root = yaml.compose(source, Loader=yaml.SafeLoader)
    name = _scalar_at(root, ("name",), base)
    token = _variant_token(capacity_bytes, cost_capacity_bytes)
    edits = [_value_edit(source, name, _plain(f"{name.value}_sram_{token}"))]
    for _core_id, reference in _node_at(root, ("cores",), base).value:
        path = core_file(reference.value, base) if isinstance(reference, yaml.ScalarNode) else None
        if path is not None:
            edits.append(_value_edit(source, reference, _plain(f"./cores/{path.name}")))
    return header + _apply(source, edits)


def _variant_core(path: Path, memory: str, capacity_bytes: int, macro: SramResult, identity: str) -> str:
    """The core YAML ``path`` with memory ``memory`` resized to ``capacity_bytes`` and costing what ``macro`` does;
    ``identity`` names the base accelerator in the header."""
    source = path.read_text(encoding="utf-8")
    root = yaml.compose(source, Loader=yaml.SafeLoader)
    width, macro_label = macro.config.width_bits, size_label(macro.config.capacity_bytes)
    size_note = "" if macro.config.capacity_bytes == capacity_bytes else f", usable part of a {macro_label} macro"
    values = {
        "size": (str(8 * capacity_bytes), f"bits = {size_label(capacity_bytes)}{size_note}"),
        "r_cost": _cost(macro.read_energy_pj, f"{width}-bit read", macro_label),
        "w_cost": _cost(macro.write_energy_pj, f"{width}-bit write", macro_label),
    }
    edits = [
        _value_edit(source, _scalar_at(root, ("memories", memory, key), path), value, comment)
        for key, (value, comment) in values.items()
    ]
    header = _header(
        f"Core of an SRAM-capacity variant of {identity} generated by stream_trapti.hardware_variants "
        f"(see the accelerator YAML's header), from {file_identity(path)}: memory '{memory}' resized to "
        f"{size_label(capacity_bytes)}, with the CACTI costs of a {macro_label} macro. Everything else, comments "
        "included, is the base's."
    )
    return header + _apply(source, edits)


def _header(text: str) -> str:
    """``text`` as YAML comment lines, followed by a blank line."""
    return comment(text) + "\n"


def _cost(energy_pj: float, access: str, macro_label: str) -> tuple[str, str]:
    """A CACTI energy as the YAML value (pJ) and its comment."""
    pj = cacti_digits(energy_pj)
    return repr(pj), f"pJ per {access} (CACTI: {pj / 1e3:.{CACTI_DIGITS}g} nJ for a {macro_label} macro)"


def _accelerator_header(identity: str, sram: SharedSram, capacity_bytes: int, macro: SramResult, cfg: str) -> str:
    """The provenance comment of the variant's accelerator YAML; ``identity`` names the base accelerator."""
    memories = ", ".join(f"'{name}' in cores/{path.name}" for path, name in sorted(sram.memory_names.items()))
    read, write = cacti_digits(macro.read_energy_pj), cacti_digits(macro.write_energy_pj)
    return _header(
        f"SRAM-capacity variant of {identity}, generated by stream_trapti.hardware_variants: "
        "regenerate it rather than edit it. "
        f"The on-chip SRAM shared by cores {', '.join(map(str, sram.core_ids))} ({memories}) holds "
        f"{size_label(capacity_bytes)} ({8 * capacity_bytes} bits); r_cost {read!r} pJ and w_cost {write!r} pJ per "
        f"{macro.config.width_bits}-bit access are CACTI 7's (build {macro.cacti_fingerprint}) for a "
        f"{size_label(macro.config.capacity_bytes)} macro, CACTI config cacti/{cfg}, {macro.config}. "
        "Everything else, comments included, is the base's, so comments may still describe the base's SRAM."
    )


def _variant_token(capacity_bytes: int, cost_capacity_bytes: int) -> str:
    """``2mib``, or ``3584kib_of_4mib`` when the macro is larger than the capacity Stream may use."""
    token = size_token(capacity_bytes)
    return token if cost_capacity_bytes == capacity_bytes else f"{token}_of_{size_token(cost_capacity_bytes)}"


def _node_at(root: yaml.Node, keys: tuple[str, ...], path: Path) -> yaml.Node:
    """The node at the key path ``keys`` of the YAML document ``root`` read from ``path`` (the last occurrence of a
    key, the one YAML loaders keep); a :class:`ConfigError` naming the file and key path when there is none."""
    node = root
    for key in keys:
        pairs = node.value if isinstance(node, yaml.MappingNode) else []
        found = [value for k, value in pairs if isinstance(k, yaml.ScalarNode) and k.value == key]
        if not found:
            raise ConfigError(f"{path}: key '{'.'.join(keys)}' is missing; a variant rewrites it")
        node = found[-1]
    return node


def _scalar_at(root: yaml.Node, keys: tuple[str, ...], path: Path) -> yaml.ScalarNode:
    """:func:`_node_at` when it is a single value; a :class:`ConfigError` naming the file and key path otherwise."""
    node = _node_at(root, keys, path)
    if not isinstance(node, yaml.ScalarNode):
        raise ConfigError(f"{path}: key '{'.'.join(keys)}' must be a single value, not a {node.id}")
    return node


def _plain(value: str) -> str:
    """``value`` as a YAML scalar: plain when YAML reads it back unchanged, else quoted."""
    return yaml.safe_dump(value, width=float("inf")).removesuffix("\n").removesuffix("\n...")


def _value_edit(source: str, node: yaml.ScalarNode, value: str, comment: str | None = None) -> _Edit:
    """Replace the scalar ``node`` by ``value``; with ``comment``, also the comment that ends its line, which
    described the old value (unless the line goes on, as in a flow mapping)."""
    start, end = node.start_mark.index, node.end_mark.index
    line_end = _REST_OF_LINE.match(source, end).end()
    rest = source[end:line_end].strip()
    if comment is None or (rest and not rest.startswith("#")):
        return _Edit(start, end, value)
    return _Edit(start, line_end, f"{value}  # {comment}")


def _apply(source: str, edits: list[_Edit]) -> str:
    """``source`` with ``edits`` (non-overlapping) made."""
    for edit in sorted(edits, key=lambda e: e.start, reverse=True):
        source = source[: edit.start] + edit.text + source[edit.end :]
    return source
