"""What a run read, named independently of how its paths were spelled.

A trace or a summary records its inputs as ``<file name> (sha256 <16 hex digits>)``: the name for the reader, the
hash of the content for exactness. ``hardware/x.yaml`` and ``../hardware/x.yaml`` therefore give byte-identical
outputs, and an edited file never passes for the one that ran. An accelerator's identity covers the core YAMLs it
names, since they decide the hardware as much as the accelerator file does. Stage I only: this module imports Stream
to find core files as Stream does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import yaml
from stream.parser.accelerator_validator import resolve_core_path

DIGEST_CHARS = 16


def file_identity(path: str | Path, parts: Sequence[Path] = ()) -> str:
    """``path``'s name and the hash of its content (and of ``parts``, files it draws in)."""
    path = Path(path)
    digest = hashlib.sha256()
    for part in (path, *parts):
        digest.update(part.name.encode() + b"\0" + part.read_bytes())
    return f"{path.name} (sha256 {digest.hexdigest()[:DIGEST_CHARS]})"


def core_file(reference: object, accelerator_yaml: Path) -> Path | None:
    """The core YAML that the ``cores:`` entry ``reference`` of ``accelerator_yaml`` names, found as Stream finds it
    (``resolve_core_path``), resolved; None when no such file exists (or the entry describes its core inline)."""
    found = resolve_core_path(str(reference), str(accelerator_yaml.parent))
    return Path(found).resolve() if found is not None and Path(found).is_file() else None


def core_files(accelerator_yaml: str | Path) -> dict[int, Path]:
    """Each core id of the accelerator YAML whose entry names an existing core YAML, and that file (``core_file``)."""
    accelerator_yaml = Path(accelerator_yaml)
    return dict(_core_files(accelerator_yaml, accelerator_yaml.read_bytes()))


@cache
def _core_files(accelerator_yaml: Path, content: bytes) -> tuple[tuple[int, Path], ...]:
    """:func:`core_files` of ``accelerator_yaml`` holding ``content``, parsed once per process: an inference keys and
    checks its hardware before every step."""
    cores = (yaml.safe_load(content) or {}).get("cores") or {}
    found = {core_id: core_file(reference, accelerator_yaml) for core_id, reference in cores.items()}
    return tuple((core_id, path) for core_id, path in found.items() if path is not None)


def hardware_files(accelerator_yaml: str | Path) -> list[Path]:
    """The accelerator YAML and the core YAMLs it names, found as Stream finds them (``resolve_core_path``)."""
    return [Path(accelerator_yaml), *sorted(set(core_files(accelerator_yaml).values()))]


def hardware_identity(accelerator_yaml: str | Path) -> str:
    """:func:`file_identity` of an accelerator YAML, its core YAMLs included."""
    files = hardware_files(accelerator_yaml)
    return file_identity(files[0], files[1:])
