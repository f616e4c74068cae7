"""Constant folding and shape inference with onnxscript's optimizer, which never reads a weight.

With the mask and positions constant and every dimension static, what an export computes from them folds away: the
causal mask, the shape arithmetic, RoPE's cos/sin tables, casts of indices. Weights must not fold (their data may
be stripped, and a folded weight would be a new, nameless constant), so they are graph inputs while the optimizer
runs and initializers again afterwards.
"""

from __future__ import annotations

import onnx
import onnx_ir as ir
import onnxscript.optimizer
from onnx import TensorProto, helper
from onnx_ir.passes.common import LiftConstantsToInitializersPass, RemoveUnusedNodesPass

_ITERATIONS = 4  # folding reveals shapes, which reveal more to fold; exports settle in two or three passes
FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


def is_parameter(init: onnx.TensorProto) -> bool:
    """A weight, not a constant the export computes with: a float tensor of two or more dims, or one without inline
    data (stripped, or stored externally). RoPE's 1-D ``inv_freq`` and the scalars of norms and scalings stay
    constants."""
    # Stripped or external data is not read: only inline data can be folded.
    inline = init.raw_data or init.float_data or init.int32_data or init.double_data
    return init.data_type in FLOATS and (len(init.dims) >= 2 or (not inline and len(init.dims) >= 1))


def fold(model: onnx.ModelProto) -> ir.Model:
    """``model`` with its constant subgraphs folded, shapes inferred and Constant nodes lifted to initializers, as an
    onnx_ir model."""
    graph = model.graph
    _bypass_initializer_identities(graph)
    hidden = [init for init in graph.initializer if is_parameter(init)]
    names = {init.name for init in hidden}
    kept = [init for init in graph.initializer if init.name not in names]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    first_hidden = len(graph.input)
    graph.input.extend(helper.make_tensor_value_info(i.name, i.data_type, list(i.dims)) for i in hidden)

    ir_model = ir.from_proto(model)
    # With the weights out of the way every constant is small enough to fold, ConstantOfShape included (the
    # optimizer keeps those by default, to keep files small).
    for _ in range(_ITERATIONS):
        result = onnxscript.optimizer.fold_constants(ir_model, onnx_shape_inference=True, should_fold=lambda _: True)
        if not result.modified:
            break
    LiftConstantsToInitializersPass(lift_all_constants=True, size_limit=0)(ir_model)
    RemoveUnusedNodesPass()(ir_model)

    inputs = ir_model.graph.inputs
    for value, init in zip(list(inputs[first_hidden:]), hidden, strict=True):
        inputs.remove(value)
        value.const_value = ir.serde.deserialize_tensor(init)
        ir_model.graph.register_initializer(value)
    return ir_model


def _bypass_initializer_identities(graph: onnx.GraphProto) -> None:
    """Readers of ``Identity(initializer)`` read the initializer: the legacy exporter shares equal weights (say every
    layer's zero biases) through such nodes, which would otherwise fold into new constants when the weights carry
    data, and stay when they are stripped."""
    initializers = {init.name for init in graph.initializer}
    outputs = {output.name for output in graph.output}
    aliases = {
        node.output[0]: node.input[0]
        for node in graph.node
        if node.op_type == "Identity" and node.input[0] in initializers and node.output[0] not in outputs
    }
    if not aliases:
        return
    kept = [node for node in graph.node if not (node.op_type == "Identity" and node.output[0] in aliases)]
    for node in kept:
        node.input[:] = [aliases.get(name, name) for name in node.input]
    del graph.node[:]
    graph.node.extend(kept)
