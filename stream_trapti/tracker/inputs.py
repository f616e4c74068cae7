"""The inputs of a Stream solve, checked at our boundary: the accelerator YAML, the ONNX workload and a fixed mapping.

Stream 2.1.1 reports a bad input in whichever layer first trips over it: a cerberus ``DocumentError`` for an empty
hardware file, an ``IndexError`` inside its ONNX parser for a 0-byte model, an ``AssertionError`` when a mapping
belongs to another workload, "tile must be a positive integer; got 0" for a dynamic dimension. Each check here reads
the file the way Stream will and raises an :class:`~stream_trapti.errors.InputFileError` that names the file, the
key or node, and what was expected, before any solve starts.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import onnx
import yaml
from stream.hardware.architecture.accelerator import Accelerator
from stream.parser.accelerator_factory import AcceleratorFactory
from stream.parser.accelerator_validator import AcceleratorValidator
from stream.parser.mapping_validator import MappingValidator
from stream.parser.onnx.layout import LAYOUT_OPS
from stream.parser.onnx.model import ONNXModelParser, onnx_parser_for

from stream_trapti.config_model import read_yaml
from stream_trapti.errors import InputFileError, check_file, one_line
from stream_trapti.provenance import hardware_identity
from stream_trapti.trace import MemoryInfo
from stream_trapti.tracker.group import on_chip_memories

# Stream's validators log every finding as CRITICAL before returning False; the findings reach the user in our one
# error line instead, so their loggers are quiet while we validate.
_VALIDATOR_LOGGERS = ("stream.parser.accelerator_validator", "stream.parser.mapping_validator", "zigzag.parser")


def load_accelerator(path: str | Path) -> Accelerator:
    """The accelerator a Stream hardware YAML describes, validated by Stream's own validator; every failure is an
    :class:`InputFileError` naming the file."""
    path = check_file(path, "hardware YAML")
    if path.suffix != ".yaml":
        raise InputFileError(f"hardware YAML {path}: Stream 2.1.1 reads accelerators from '.yaml' files only")
    data = _yaml_mapping(path, "hardware YAML")
    with _quiet(_VALIDATOR_LOGGERS):
        validator = AcceleratorValidator(data, str(path))
        try:
            valid, crash = validator.validate(), None
        except Exception as error:
            # Its later checks index keys its schema check already found missing: report those findings instead.
            valid, crash = False, error
    if not valid:
        findings = "; ".join(validator.errors) or one_line(crash)
        raise InputFileError(f"hardware YAML {path}: not a valid Stream accelerator: {findings}") from crash
    try:
        return AcceleratorFactory(validator.normalized_data).create()
    except Exception as error:
        # ZigZag and Stream raise many types for one bad description; all of them are about this file.
        why = one_line(error)
        raise InputFileError(f"hardware YAML {path}: Stream cannot build the accelerator ({why})") from error


def check_hardware(path: str | Path) -> None:
    """:func:`load_accelerator`'s checks, made once per process for each content of the accelerator and core YAMLs:
    an inference checks its hardware before every step's solve, and building Stream's accelerator takes about 70 ms."""
    path = check_file(path, "hardware YAML")
    try:
        identity = hardware_identity(path)
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        load_accelerator(path)  # not readable as an accelerator description: the full check says why
        raise
    _check_hardware_once(path, identity)


@cache
def _check_hardware_once(path: Path, identity: str) -> None:
    """:func:`load_accelerator` on ``path`` whose files hash to ``identity``; a failed check is not remembered."""
    load_accelerator(path)


def hardware_memories(path: str | Path) -> tuple[MemoryInfo, ...]:
    """The on-chip memories of the accelerator at ``path``, as a trace of it will name and describe them."""
    return tuple(info for _, info in on_chip_memories(load_accelerator(path)))


def check_onnx_workload(onnx_path: str | Path) -> onnx.ModelProto:
    """The model at ``onnx_path`` (shapes only), or an :class:`InputFileError` naming the first thing Stream 2.1.1's
    frontend cannot take: an unparseable file, an empty graph, an operator without a parser, an int64 graph input or a
    dynamic dimension."""
    path = check_file(onnx_path, "workload ONNX")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        # onnx raises several unrelated types for unreadable files.
        raise InputFileError(f"workload ONNX {path}: not a readable ONNX model ({one_line(error)})") from error
    if not model.graph.node:
        raise InputFileError(f"workload ONNX {path}: the graph has no nodes (an empty or truncated file?)")
    _check_operators(path, model)
    _check_inputs(path, model)
    return model


def _check_operators(path: Path, model: onnx.ModelProto) -> None:
    for node in model.graph.node:
        if node.op_type in LAYOUT_OPS or onnx_parser_for(node.op_type) is not None:
            continue
        supported = sorted({*ONNXModelParser.OP_TYPE_TO_PARSER, *LAYOUT_OPS})
        raise InputFileError(
            f"workload ONNX {path}: node {node.name or '(unnamed)'!r} is an ONNX {node.op_type!r} operator, which "
            f"Stream 2.1.1 cannot parse. Rewrite it with supported operators ({', '.join(supported)}) or register a "
            "parser under the 'stream.onnx_parsers' entry point."
        )


def _check_inputs(path: Path, model: onnx.ModelProto) -> None:
    """Stream rejects int64 graph inputs and silently turns a dimension it cannot read into 0."""
    for value in model.graph.input:
        if value.type.tensor_type.elem_type == onnx.TensorProto.INT64:
            raise InputFileError(
                f"workload ONNX {path}: graph input {value.name!r} is int64, which Stream 2.1.1's ONNX frontend "
                "rejects; feed embeddings or use a narrower integer type (a Hugging Face export: run "
                "'stream-trapti import' on it)."
            )
    for value in (*model.graph.input, *model.graph.output, *model.graph.value_info):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_value") and dim.dim_value > 0:
                continue
            name = f"dynamic dimension {dim.dim_param!r}" if dim.dim_param else "a dimension without a value"
            raise InputFileError(
                f"workload ONNX {path}: tensor {value.name!r} has {name} at axis {axis}; Stream needs every "
                "dimension fixed. Export with static shapes, or fix it with onnx.tools.update_model_dims."
            )


def check_mapping(mapping_path: str | Path, model: onnx.ModelProto, onnx_path: str | Path) -> None:
    """Raise an :class:`InputFileError` when the fixed mapping at ``mapping_path`` is not a valid Stream mapping, or
    names a layer that is not a node of the workload ``model`` (read from ``onnx_path``)."""
    path = check_file(mapping_path, "mapping YAML")
    data = _yaml_mapping(path, "mapping YAML")
    with _quiet(_VALIDATOR_LOGGERS):
        validator = MappingValidator(data)
        valid = validator.validate()
    if not valid:
        raise InputFileError(f"mapping YAML {path}: not a valid Stream mapping: {'; '.join(validator.errors)}")
    nodes = {node.name for node in model.graph.node}
    for g, group in enumerate(validator.normalized_data["fused_groups"]):
        for layer in group["layers"]:
            if layer not in nodes:
                raise InputFileError(
                    f"mapping YAML {path}: key 'fused_groups[{g}].layers' names {layer!r}, which is not a node of "
                    f"{onnx_path}; is the mapping made for another workload?"
                )


def check_solve_inputs(hardware: str | Path, workload: str | Path, mapping: str | Path | None) -> None:
    """Every check above for the inputs of one solve: the accelerator, the workload and, when given, the mapping."""
    check_hardware(hardware)
    model = check_onnx_workload(workload)
    if mapping is not None:
        check_mapping(mapping, model, workload)


def _yaml_mapping(path: Path, what: str) -> dict:
    """The mapping of keys of a Stream input file: unlike our own configurations, an empty one is an error."""
    data = read_yaml(path, what)
    if data is None:
        raise InputFileError(f"{what} {path}: the file is empty")
    if not isinstance(data, dict):
        raise InputFileError(f"{what} {path}: expected a mapping of keys, got a {type(data).__name__}")
    return data


@contextmanager
def _quiet(names: tuple[str, ...]) -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
