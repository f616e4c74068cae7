"""Solved groups kept on disk, keyed by everything that decides them, so a rerun or a reused part costs no solve.

The key hashes the workload's ONNX bytes, every hardware YAML the accelerator file names, the mapping, Stream's
solve options, the versions of stream-trapti, Stream and ZigZag, and this cache's format (bump :data:`CACHE_FORMAT`
when what a group records changes): change any of them and the entry is not found. An entry is a
:mod:`stream_trapti.cache_entry` (schema and checksum) around an :mod:`stream_trapti.archive`; one that cannot be
read is logged, deleted and solved again.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import numpy as np

from stream_trapti import archive, cache_entry
from stream_trapti.provenance import hardware_files
from stream_trapti.trace import MemoryInfo
from stream_trapti.tracker.group import ARRAY_FIELDS, GroupOccupancy

CACHE_FORMAT = 14
ENTRY_SCHEMA = f"groups {CACHE_FORMAT}"


def package_versions() -> tuple[str, ...]:
    """The packages whose code decides a solve, with their versions, as ``"name version"``."""
    return tuple(f"{name} {version(name)}" for name in ("stream-trapti", "stream-dse", "zigzag-dse"))


def solve_key(hardware: Path, workload: Path, mapping: Path | None, solve_options: str) -> str:
    """The hash of everything a solve's result depends on."""
    digest = hashlib.sha256(context_key(hardware, solve_options).encode())
    digest.update(workload.read_bytes())
    digest.update(mapping.read_bytes() if mapping is not None else b"generic")
    return digest.hexdigest()


def context_key(hardware: Path, solve_options: str) -> str:
    """The hash of what every group of a solve depends on besides its own sub-workload and mapping: the cache format,
    the package versions, the hardware files and the solve options."""
    digest = hashlib.sha256()
    for part in (f"format {CACHE_FORMAT}", *package_versions()):
        digest.update(part.encode())
    for path in hardware_files(hardware):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(solve_options.encode())
    return digest.hexdigest()


SOLVES = "groups"
"""The folder of whole solves' entries; the single groups of :mod:`~stream_trapti.tracker.group_reuse` live in
:data:`FUSED_GROUPS`."""
FUSED_GROUPS = "fused_groups"


def has_groups(directory: Path, key: str, kind: str = SOLVES) -> bool:
    """Whether the cache holds an entry for ``key`` (:func:`load_groups` still checks that it reads)."""
    return _entry_path(directory, key, kind).is_file()


def load_groups(directory: Path, key: str, kind: str = SOLVES) -> list[GroupOccupancy] | None:
    """The cached groups of a solve (or of one fused group, ``kind`` :data:`FUSED_GROUPS`), or None when the cache
    does not hold them (or held them unreadable)."""
    return cache_entry.load(_entry_path(directory, key, kind), ENTRY_SCHEMA, _decode_groups)


def _decode_groups(payload: bytes) -> list[GroupOccupancy]:
    arrays, meta = archive.unpack(io.BytesIO(payload))
    memories = tuple(MemoryInfo(**{**m, "core_ids": tuple(m["core_ids"])}) for m in meta["memories"])
    split = {name: np.split(arrays[name], np.cumsum(meta["rows"][name])[:-1]) for name in meta["rows"]}
    return [
        GroupOccupancy(
            name=g["name"],
            cycles=g["cycles"],
            energy_pj=g["energy_pj"],
            stream_sram_pj=tuple(tuple(e) for e in g["stream_sram_pj"]),
            offchip_pj=np.array(g["offchip_pj"], dtype=float),
            ports=tuple((str(n), int(m), float(r), float(b)) for n, m, r, b in g["ports"]),
            memories=memories,
            reserved_tensors=tuple(tuple(r) for r in g["reserved_tensors"]),
            stream_reserved=tuple(g["stream_reserved"]),
            tensor_names=tuple(g["tensor_names"]),
            **{name: parts[i] for name, parts in split.items()},
        )
        for i, g in enumerate(meta["groups"])
    ]


def store_groups(directory: Path, key: str, groups: list[GroupOccupancy], kind: str = SOLVES) -> Path:
    """Write a solve's groups (or one fused group's, ``kind`` :data:`FUSED_GROUPS`) to the cache, atomically."""
    return store_encoded(directory, key, encode_groups(groups), kind)


def store_encoded(directory: Path, key: str, payload: bytes, kind: str = SOLVES) -> Path:
    """Write a solve's groups, encoded by :func:`encode_groups` (e.g. in a worker process that has no access to this
    cache), to the cache, atomically."""
    return cache_entry.store(_entry_path(directory, key, kind), payload, ENTRY_SCHEMA)


def encode_groups(groups: list[GroupOccupancy]) -> bytes:
    """A solve's groups as the payload of a cache entry."""
    meta = {
        "memories": [asdict(m) for m in groups[0].memories] if groups else [],
        "groups": [
            {
                "name": g.name,
                "cycles": g.cycles,
                "energy_pj": g.energy_pj,
                "stream_sram_pj": [list(e) for e in g.stream_sram_pj],
                # Energies are floats: the archive's arrays are int64, so they go in the metadata.
                "offchip_pj": g.offchip_pj.tolist(),
                "ports": [list(p) for p in g.ports],
                "reserved_tensors": [list(r) for r in g.reserved_tensors],
                "stream_reserved": list(g.stream_reserved),
                "tensor_names": list(g.tensor_names),
            }
            for g in groups
        ],
        # One array per field, the groups' rows one after another: an entry reads in a few arrays, not hundreds.
        "rows": {name: [len(getattr(g, name)) for g in groups] for name in ARRAY_FIELDS},
    }
    arrays = {name: np.concatenate([getattr(g, name) for g in groups]) for name in ARRAY_FIELDS}
    return archive.pack(arrays, meta)


def _entry_path(directory: Path, key: str, kind: str) -> Path:
    return directory / kind / f"{key}.npz"
