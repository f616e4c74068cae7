"""The file format of traces and cached solves: a zip of ``.npy`` arrays and one ``meta.json``.

``numpy.load`` opens it as an ``.npz`` and ``json`` reads the metadata, so other tools need nothing of this package.
Entries carry a fixed timestamp, so the same content gives the same bytes.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

META = "meta.json"


def pack(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> bytes:
    """The archive's bytes: every array as int64 ``<name>.npy``, and ``meta`` as JSON."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            payload = io.BytesIO()
            np.lib.format.write_array(payload, np.ascontiguousarray(array, dtype=np.int64), allow_pickle=False)
            archive.writestr(_entry(f"{name}.npy"), payload.getvalue())
        archive.writestr(_entry(META), json.dumps(meta, indent=1, sort_keys=True))
    return buffer.getvalue()


def unpack(source: str | Path | IO[bytes]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays (by name, without ``.npy``) and metadata of an archive written by :func:`pack`, from a file or a
    binary stream."""
    with zipfile.ZipFile(source) as archive:
        meta = json.loads(archive.read(META))
        arrays = {
            name.removesuffix(".npy"): np.load(io.BytesIO(archive.read(name)), allow_pickle=False)
            for name in archive.namelist()
            if name.endswith(".npy")
        }
    return arrays, meta


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = zipfile.ZIP_DEFLATED
    return info
