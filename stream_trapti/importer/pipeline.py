"""``import_export``: a Hugging Face ONNX export (torch.onnx legacy or dynamo, optimum) in, a shape-only graph that
Stream 2.1.1 parses out, for one prefill or decode step.

Steps: fix the inputs for the step (:mod:`.inputs`); fold constants and infer shapes with onnxscript's optimizer
(:mod:`.fold`); rewrite what Stream cannot parse (:mod:`.rewrites`, :mod:`.embeddings`, :mod:`.kv_cache`); name the
K/V cache, the weights and the constants as :mod:`stream_trapti.workloads.tensors` classes them; set the element
type; strip the weight data; check every operator has a Stream parser.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import onnx
import onnx_ir as ir
from onnx.external_data_helper import load_external_data_for_tensor, uses_external_data
from onnx_ir.passes.common import RemoveUnusedNodesPass, ShapeInferencePass

from stream_trapti.atomic import atomic_write
from stream_trapti.errors import InputFileError, check_file, one_line
from stream_trapti.importer import embeddings, kv_cache, rewrites
from stream_trapti.importer.fold import FLOATS, fold
from stream_trapti.importer.graph_edit import LAYOUT, Editor
from stream_trapti.importer.inputs import Step, fix_inputs
from stream_trapti.importer.layers import (
    find_layers,
    hidden_states_input,
    keep_first_layer,
    last_position_logits,
    name_layers,
    remove_unread_inputs,
)
from stream_trapti.importer.precision import set_precision, strip_data
from stream_trapti.workloads.tensors import KV_METADATA_KEY

IMPORT_METADATA_KEY = "trapti.import"
"""Model metadata key: JSON of the step the graph was imported for, the export's decoder layers and the rewrite
log."""

_OPSET = 20  # Gelu, as the builder's graphs


@dataclass(frozen=True)
class ImportResult:
    """An imported graph, the K/V cache tensors it names, what the import rewrote (one line per node) and the
    export's number of decoder layers."""

    model: onnx.ModelProto
    kv_tensors: tuple[str, ...]
    log: tuple[str, ...]
    depth: int


def import_model(
    model: onnx.ModelProto,
    step: Step,
    precision_bits: int = 8,
    source: str = "export",
    first_layer_only: bool = False,
    embedding: bool = False,
    last_logits: bool = False,
) -> ImportResult:
    """Rewrite the export ``model`` (modified in place) for ``step``; ``source`` names it in errors.
    ``first_layer_only`` keeps the first decoder layer and the head: what a whole-inference composition solves
    before repeating the layer. ``embedding`` keeps the token lookup; without it (the default, as for presets) the
    hidden states enter as a graph input. ``last_logits`` runs the LM head over the last position only."""
    if not model.graph.node:
        raise InputFileError(f"{source}: the graph has no nodes")
    # Named as parameters: the export's weights, biases and norm scales, stripped or not (scalars are constants).
    parameters = {init.name for init in model.graph.initializer if init.data_type in FLOATS and init.dims}
    roles = fix_inputs(model, step, source)
    try:
        ir_model = fold(model)
    except Exception as error:  # onnx shape inference and onnxscript raise many types for malformed graphs
        raise InputFileError(f"{source}: constant folding failed ({one_line(error)})") from error
    ed = Editor(ir_model.graph, source)
    passes = (
        rewrites.gemm_to_matmul,
        rewrites.split_to_slices,
        lambda e: rewrites.drop_masks(e, parameters),
        rewrites.nan_guards,
        rewrites.rsqrt_to_pow,
        rewrites.self_products,
        rewrites.rotate_half,
        rewrites.neg_to_mul,
        rewrites.repeat_kv,
        rewrites.erf_gelu,
        lambda e: kv_cache.kv_append(e, roles),
        embeddings.flat_gathers,
        lambda e: embeddings.narrow_ids(e, roles),
    )
    for rewrite in passes:
        rewrite(ed)
        RemoveUnusedNodesPass()(ir_model)  # what a rewrite replaced goes before the next looks for its patterns
    ShapeInferencePass()(ir_model)  # shapes and types of the rewrites' new tensors
    layers = find_layers(ed)
    depth = len(layers.nodes)
    if not embedding:
        hidden_states_input(ed, layers)
        RemoveUnusedNodesPass()(ir_model)
    remove_unread_inputs(ir_model.graph)  # the token ids without the embedding, a prefill's empty past
    if first_layer_only:
        keep_first_layer(ed, layers)
        RemoveUnusedNodesPass()(ir_model)
        remove_unread_inputs(ir_model.graph)
        layers = find_layers(ed)
    if last_logits:
        last_position_logits(ed)
        ShapeInferencePass()(ir_model)
    kv = kv_cache.name_kv(ed)
    name_layers(layers)
    _name_constants(ir_model.graph, parameters)
    _name_nodes(ir_model.graph)
    set_precision(ed, precision_bits)
    RemoveUnusedNodesPass()(ir_model)
    _check_operators(ed)

    proto = _shape_only(ir_model, precision_bits, source)
    props = {
        KV_METADATA_KEY: json.dumps(kv),
        IMPORT_METADATA_KEY: json.dumps({"seq": step.seq, "past": step.past, "layers": depth, "rewrites": ed.log}),
    }
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    proto.producer_name = "stream-trapti import"
    return ImportResult(proto, tuple(kv), tuple(ed.log), depth)


def _shape_only(ir_model: ir.Model, precision_bits: int, source: str) -> onnx.ModelProto:
    """The rewritten graph as ONNX: weights stripped, initializers in name order (with weights stripped or not, an
    export gives the same bytes), no exporter provenance, the output shapes ONNX infers."""
    proto = ir.serde.serialize_model(ir_model)
    strip_data(proto, precision_bits)
    initializers = sorted(proto.graph.initializer, key=lambda init: init.name)
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(initializers)
    for node in proto.graph.node:  # stack traces, module paths: not shapes
        node.doc_string = ""
        del node.metadata_props[:]
    for opset in proto.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, _OPSET)
    del proto.graph.value_info[:]
    try:
        inferred = onnx.shape_inference.infer_shapes(proto, strict_mode=True)
    except Exception as error:
        raise InputFileError(f"{source}: the rewritten graph fails ONNX shape inference ({one_line(error)})") from error
    for output, shaped in zip(proto.graph.output, inferred.graph.output, strict=True):
        output.CopyFrom(shaped)
    return proto


def import_export(
    export: str | Path,
    out: str | Path,
    seq: int,
    past: int = 0,
    precision_bits: int = 8,
    first_layer_only: bool = False,
    embedding: bool = False,
    last_logits: bool = False,
) -> ImportResult:
    """Import the ONNX export at ``export`` for a step of ``seq`` new tokens after ``past`` cached ones (0: prefill)
    and write the shape-only graph to ``out`` atomically (see :func:`import_model`). Weights stay external and
    unread."""
    path = check_file(export, "ONNX export")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:
        raise InputFileError(f"ONNX export {path}: not a readable ONNX model ({one_line(error)})") from error
    _load_small_external_data(model, path)
    result = import_model(
        model, Step(seq, past), precision_bits, f"ONNX export {path}", first_layer_only, embedding, last_logits
    )
    atomic_write(out, result.model.SerializeToString())
    return result


def _name_constants(graph: ir.Graph, parameters: set[str]) -> None:
    """Parameters end in ``.weight``/``.bias``, every other initializer starts ``const.``: the naming rule
    :func:`stream_trapti.workloads.tensors.classify_tensor` reads."""
    for name, value in list(graph.initializers.items()):
        if name in parameters:
            new = name if name.endswith((".weight", ".bias")) else f"{name}.weight"
        else:
            new = name if name.startswith("const.") else f"const.{name}"
        if new != name:
            graph.initializers.pop(name)
            value.name = new
            graph.register_initializer(value)


def _name_nodes(graph: ir.Graph) -> None:
    """Every node named, uniquely: Stream names its layers after them."""
    seen: set[str] = set()
    for index, node in enumerate(graph):
        name = node.name or f"{node.op_type}_{index}"
        while name in seen:
            name = f"{name}_{index}"
        node.name = name
        seen.add(name)


def _check_operators(ed: Editor) -> None:
    from stream.parser.onnx.model import onnx_parser_for  # Stream is slow to import; only the check needs it

    for node in ed.graph:
        if node.op_type not in LAYOUT and onnx_parser_for(node.op_type) is None:
            raise ed.fail(node, _EXPECTED.get(node.op_type, "an operator Stream 2.1.1 parses after folding constants"))


_EXPECTED = {
    "Where": "a constant attention mask before a Softmax (Where(mask, scores, -inf)), folded once the mask is constant",
    "Cos": "RoPE's cos table, computed from the positions alone (it folds once they are constant)",
    "Sin": "RoPE's sin table, computed from the positions alone (it folds once they are constant)",
    "Concat": "the KV-cache append or RoPE's rotate_half",
    "Range": "shape arithmetic that folds once every dimension is fixed",
    "Shape": "shape arithmetic that folds once every dimension is fixed",
}


def _load_small_external_data(model: onnx.ModelProto, path: Path) -> None:
    """Read the external data of every initializer but the weights (float tensors of two or more dims), which the
    import never reads: shapes, indices and RoPE's ``inv_freq`` fold, and an export past 2 GB keeps them all
    beside the model when saved with a low threshold."""
    for init in model.graph.initializer:
        weight = init.data_type in FLOATS and len(init.dims) >= 2
        if uses_external_data(init) and not weight:
            try:
                load_external_data_for_tensor(init, str(path.parent))
            except OSError as error:
                message = f"ONNX export {path}: cannot read the data of {init.name!r} ({one_line(error)})"
                raise InputFileError(message) from error
            init.ClearField("data_location")
            del init.external_data[:]
