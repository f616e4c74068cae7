"""The element type of an imported graph, and its weights stripped to dims and type."""

from __future__ import annotations

import onnx
import onnx_ir as ir

from stream_trapti.importer.graph_edit import Editor, attribute, nodes_of
from stream_trapti.workloads.builder import ELEMENT_TYPES

_FLOATS = frozenset({ir.DataType.FLOAT, ir.DataType.FLOAT16, ir.DataType.BFLOAT16, ir.DataType.DOUBLE})


def set_precision(ed: Editor, precision_bits: int) -> None:
    """Every floating-point tensor takes the element type of ``precision_bits`` (int8, float16 or float32, as the
    builder's); a ``Cast`` between floats then casts nothing and is dropped."""
    dtype = ir.DataType(ELEMENT_TYPES[precision_bits])
    # Initializers take the type as their data is stripped (strip_data): a tensor's data fixes its type here.
    for value in [*ed.graph.inputs, *(o for n in ed.graph for o in n.outputs)]:
        if value.dtype in _FLOATS:
            value.type = ir.TensorType(dtype)
    for node in nodes_of(ed.graph, "Cast"):
        if ir.DataType(attribute(node, "to")) in _FLOATS and node.inputs[0].dtype == dtype:
            node.outputs[0].type = ir.TensorType(dtype)
            ed.replace(node.outputs[0], node.inputs[0])
            ed.note(node, "casts between floats, which the import makes one type: dropped")


def strip_data(model: onnx.ModelProto, precision_bits: int) -> None:
    """Drop the data of every initializer but the int64 index tensors (shapes, axes, Gather and Slice indices),
    keeping name and dims, the floating-point ones taking the element type of ``precision_bits``: Stream needs no
    more."""
    for init in model.graph.initializer:
        if init.data_type != onnx.TensorProto.INT64:
            floating = ir.DataType(init.data_type) in _FLOATS
            dtype = ELEMENT_TYPES[precision_bits] if floating else init.data_type
            init.CopyFrom(onnx.TensorProto(name=init.name, data_type=dtype, dims=init.dims))
