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
from stream_trapti.tracker.group import GroupOccupancy

CACHE_FORMAT = 11
ENTRY_SCHEMA = f"groups {CACHE_FORMAT}"


def package_versions() -> tuple[str, ...]:
    """The packages whose code decides a solve, with their versions, as ``"name version"``."""
    return tuple(f"{name} {version(name)}" for name in ("stream-trapti", "stream-dse", "zigzag-dse"))


def solve_key(hardware: Path, workload: Path, mapping: Path | None, solve_options: str) -> str:
    """The hash of everything a solve's result depends on."""
    digest = hashlib.sha256()
    for part in (f"format {CACHE_FORMAT}", *package_versions()):
        digest.update(part.encode())
    digest.update(workload.read_bytes())
    for path in hardware_files(hardware):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(mapping.read_bytes() if mapping is not None else b"generic")
    digest.update(solve_options.encode())
    return digest.hexdigest()


def has_groups(directory: Path, key: str) -> bool:
    """Whether the cache holds an entry for ``key`` (:func:`load_groups` still checks that it reads)."""
    return _entry_path(directory, key).is_file()


def load_groups(directory: Path, key: str) -> list[GroupOccupancy] | None:
    """The cached groups of a solve, or None when the cache does not hold it (or held it unreadable)."""
    return cache_entry.load(_entry_path(directory, key), ENTRY_SCHEMA, _decode_groups)


def _decode_groups(payload: bytes) -> list[GroupOccupancy]:
    arrays, meta = archive.unpack(io.BytesIO(payload))
    memories = tuple(MemoryInfo(**{**m, "core_ids": tuple(m["core_ids"])}) for m in meta["memories"])
    return [
        GroupOccupancy(
            name=g["name"],
            cycles=g["cycles"],
            energy_pj=g["energy_pj"],
            stream_sram_pj=tuple(tuple(e) for e in g["stream_sram_pj"]),
            offchip_pj=np.array(g["offchip_pj"], dtype=float),
            memories=memories,
            reserved_tensors=tuple(tuple(r) for r in g["reserved_tensors"]),
            stream_reserved=tuple(g["stream_reserved"]),
            tensor_names=tuple(g["tensor_names"]),
            **{name: arrays[f"{i}.{name}"] for name in g["arrays"]},
        )
        for i, g in enumerate(meta["groups"])
    ]


def store_groups(directory: Path, key: str, groups: list[GroupOccupancy]) -> Path:
    """Write a solve's groups to the cache, atomically."""
    return store_encoded(directory, key, encode_groups(groups))


def store_encoded(directory: Path, key: str, payload: bytes) -> Path:
    """Write a solve's groups, encoded by :func:`encode_groups` (e.g. in a worker process that has no access to this
    cache), to the cache, atomically."""
    return cache_entry.store(_entry_path(directory, key), payload, ENTRY_SCHEMA)


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
                "reserved_tensors": [list(r) for r in g.reserved_tensors],
                "stream_reserved": list(g.stream_reserved),
                "tensor_names": list(g.tensor_names),
                "arrays": list(g.arrays()),
            }
            for g in groups
        ],
    }
    arrays = {f"{i}.{name}": array for i, g in enumerate(groups) for name, array in g.arrays().items()}
    return archive.pack(arrays, meta)


def _entry_path(directory: Path, key: str) -> Path:
    return directory / "groups" / f"{key}.npz"
