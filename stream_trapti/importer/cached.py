"""Imports kept across runs: an experiment's ``onnx:`` may name an export, imported on first use only.

An entry is keyed by the export's bytes and the step, in :mod:`stream_trapti.cache_entry`'s self-checking format
under ``<cache root>/imports/``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import onnx

from stream_trapti.atomic import atomic_write
from stream_trapti.cache_dir import cache_root
from stream_trapti.cache_entry import load, store
from stream_trapti.errors import InputFileError, check_file, one_line
from stream_trapti.importer.inputs import role
from stream_trapti.importer.pipeline import IMPORT_METADATA_KEY, import_export

SCHEMA = "import-v3"
"""Bump when the importer's output for the same export changes."""


def is_export(path: str | Path) -> bool:
    """Whether the ONNX file at ``path`` is an export to import rather than a workload Stream parses as given: it
    has an int64 graph input (token ids) or a dynamic dimension, which Stream rejects."""
    model = _graph_only(path)
    for value in model.graph.input:
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            return True
        if any(dim.dim_param or not dim.dim_value for dim in value.type.tensor_type.shape.dim):
            return True
    return False


def is_imported(path: str | Path) -> bool:
    """Whether the file at ``path`` is a workload ``stream-trapti import`` wrote (it carries the import's metadata)."""
    try:
        return any(p.key == IMPORT_METADATA_KEY for p in _graph_only(path).metadata_props)
    except InputFileError:
        return False


def is_decode_export(path: str | Path) -> bool:
    """Whether the export at ``path`` reads a past key/value cache (a decode step) rather than a prompt alone."""
    return any(role(value) == "past" for value in _graph_only(path).graph.input)


def import_cached(
    export: str | Path,
    out: str | Path,
    length: int,
    precision_bits: int = 8,
    first_layer_only: bool = False,
    last_logits: bool = False,
) -> Path:
    """Import ``export`` to ``out`` for a prefill of ``length`` tokens, or, for a decode export, a decode step after
    ``length`` cached ones (see :func:`~stream_trapti.importer.pipeline.import_model`); reuses an earlier import of
    the same bytes for the same step."""
    data = check_file(export, "ONNX export").read_bytes()
    seq, past = (1, length) if is_decode_export(export) else (length, 0)
    step = f"\0{seq},{past},{precision_bits},{first_layer_only},{last_logits}"
    key = hashlib.sha256(data + step.encode()).hexdigest()
    entry = cache_root() / "imports" / f"{key}.onnx.entry"
    payload = load(entry, SCHEMA, lambda raw: raw)
    if payload is not None:
        return atomic_write(out, payload)
    result = import_export(export, out, seq, past, precision_bits, first_layer_only, last_logits=last_logits)
    store(entry, result.model.SerializeToString(), SCHEMA)
    return Path(out)


def imported_depth(path: str | Path) -> int:
    """The decoder layers of the export the graph at ``path`` was imported from (it may hold only the first)."""
    props = {p.key: p.value for p in _graph_only(path).metadata_props}
    return int(json.loads(props[IMPORT_METADATA_KEY])["layers"])


def _graph_only(path: str | Path) -> onnx.ModelProto:
    path = check_file(path, "ONNX file")
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises several unrelated types for unreadable files
        raise InputFileError(f"ONNX file {path}: not a readable ONNX model ({one_line(error)})") from error
