"""Errors said in the user's terms: which file, which key or operator, what was expected and what to change."""

from __future__ import annotations

from pathlib import Path

import onnx
from stream.parser.onnx.layout import LAYOUT_OPS
from stream.parser.onnx.model import ONNXModelParser, onnx_parser_for


class TraptiError(Exception):
    """A problem with the inputs of a stream-trapti run, or a solve Stream could not complete, explained."""


# What the command line and the main scripts report in one line, as a problem with the user's inputs (a file, key or
# value), rather than as a traceback.
USER_ERRORS: tuple[type[Exception], ...] = (TraptiError, ValueError, KeyError, FileNotFoundError)


def check_stream_can_parse(onnx_path: str | Path) -> None:
    """Raise a :class:`TraptiError` naming the first node whose operator Stream 2.1.1 has no parser for, before
    Stream itself fails deep inside its frontend with only the op type."""
    path = Path(onnx_path)
    if not path.is_file():
        raise TraptiError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 -- onnx raises several unrelated types for unreadable files
        raise TraptiError(f"{path}: not a readable ONNX model ({error})") from error
    for node in model.graph.node:
        if node.op_type in LAYOUT_OPS or onnx_parser_for(node.op_type) is not None:
            continue
        supported = sorted({*ONNXModelParser.OP_TYPE_TO_PARSER, *LAYOUT_OPS})
        raise TraptiError(
            f"{path}: node {node.name or '(unnamed)'!r} is an ONNX {node.op_type!r} operator, which Stream 2.1.1 "
            f"cannot parse. Rewrite it with supported operators ({', '.join(supported)}) or register a parser "
            "under the 'stream.onnx_parsers' entry point."
        )
    for value in model.graph.input:
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            raise TraptiError(
                f"{path}: graph input {value.name!r} is int64, which Stream 2.1.1's ONNX frontend rejects; "
                "feed embeddings or use a narrower integer type."
            )


def check_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or a :class:`TraptiError` saying which input is missing."""
    path = Path(path)
    if not path.is_file():
        raise TraptiError(f"{what} {path}: no such file")
    return path
