"""Solved groups kept on disk, keyed by everything that decides them, so a rerun or a reused part costs no solve.

The key hashes the workload's ONNX bytes, every hardware YAML the accelerator file names, the mapping, Stream's
solve options, the versions of stream-trapti, Stream and ZigZag, and this cache's format (bump :data:`CACHE_FORMAT`
when what a group records changes): change any of them and the entry is not found.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path

import yaml

from stream_trapti import archive
from stream_trapti.atomic import atomic_write
from stream_trapti.trace import MemoryInfo
from stream_trapti.tracker.group import GroupOccupancy

CACHE_FORMAT = 8


def solve_key(hardware: Path, workload: Path, mapping: Path | None, solve_options: str) -> str:
    """The hash of everything a solve's result depends on."""
    digest = hashlib.sha256()
    packages = ("stream-trapti", "stream-dse", "zigzag-dse")
    for part in (f"format {CACHE_FORMAT}", *(f"{name} {version(name)}" for name in packages)):
        digest.update(part.encode())
    digest.update(workload.read_bytes())
    for path in _hardware_files(hardware):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(mapping.read_bytes() if mapping is not None else b"generic")
    digest.update(solve_options.encode())
    return digest.hexdigest()


def _hardware_files(accelerator_yaml: Path) -> list[Path]:
    """The accelerator YAML and the core YAMLs it names."""
    data = yaml.safe_load(accelerator_yaml.read_text()) or {}
    cores = sorted({accelerator_yaml.parent / str(p) for p in (data.get("cores") or {}).values()})
    return [accelerator_yaml, *(p for p in cores if p.is_file())]


def load_groups(directory: Path, key: str) -> list[GroupOccupancy] | None:
    """The cached groups of a solve, or None when the cache does not hold it."""
    path = directory / "groups" / f"{key}.npz"
    if not path.is_file():
        return None
    arrays, meta = archive.unpack(path)
    memories = tuple(MemoryInfo(**{**m, "core_ids": tuple(m["core_ids"])}) for m in meta["memories"])
    return [
        GroupOccupancy(
            name=g["name"],
            cycles=g["cycles"],
            energy_pj=g["energy_pj"],
            stream_sram_pj=tuple(tuple(e) for e in g["stream_sram_pj"]),
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
    meta = {
        "format": CACHE_FORMAT,
        "memories": [asdict(m) for m in groups[0].memories] if groups else [],
        "groups": [
            {
                "name": g.name,
                "cycles": g.cycles,
                "energy_pj": g.energy_pj,
                "stream_sram_pj": [list(e) for e in g.stream_sram_pj],
                "reserved_tensors": [list(r) for r in g.reserved_tensors],
                "stream_reserved": list(g.stream_reserved),
                "tensor_names": list(g.tensor_names),
                "arrays": list(g.arrays()),
            }
            for g in groups
        ],
    }
    arrays = {f"{i}.{name}": array for i, g in enumerate(groups) for name, array in g.arrays().items()}
    return atomic_write(directory / "groups" / f"{key}.npz", archive.pack(arrays, meta))
