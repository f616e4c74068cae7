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
_FLOATS = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.BFLOAT16, TensorProto.DOUBLE)


def is_parameter(init: onnx.TensorProto) -> bool:
    """A weight, not a constant the export computes with: a float tensor of two or more dims, or one without data
    (stripped). RoPE's 1-D ``inv_freq`` and the scalars of norms and scalings stay constants."""
    stripped = not (init.raw_data or init.float_data or init.int32_data or init.double_data or init.data_location)
    return init.data_type in _FLOATS and (len(init.dims) >= 2 or (stripped and len(init.dims) >= 1))


def fold(model: onnx.ModelProto) -> ir.Model:
    """``model`` with its constant subgraphs folded, shapes inferred and Constant nodes lifted to initializers, as an
    onnx_ir model."""
    graph = model.graph
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
