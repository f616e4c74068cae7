"""The KV cache of an imported decoder: decode's append rewritten as the builder's, and the K/V tensors found by
structure and named as :mod:`stream_trapti.workloads.tensors` classes them.

Each attention is found from its ``Softmax``: the scores ``MatMul`` before it reads K as its second operand, the
context ``MatMul`` after it reads V. Followed back through layout operators, the ``repeat_kv`` Gather and constant
scalings, K and V lead to the tensor the layer writes to its cache. Layers are numbered in graph order.
"""

from __future__ import annotations

import onnx_ir as ir

from stream_trapti.importer.graph_edit import APPENDED, LAYOUT, Editor, dims, nodes_of, through_layouts, values_of
from stream_trapti.workloads.tensors import kv_appended_name, kv_cache_name, kv_new_name

_SCALINGS = frozenset({"Mul", "Div", "Cast"})


def kv_append(ed: Editor, roles: dict[str, str]) -> None:
    """Decode's ``Concat(past, new)`` along the past axis as the builder writes it: the past input becomes the cache
    buffer after the append ([…, P+1, …], a graph input) and the append an ``Add`` broadcasting the new entry over it
    (no MACs), whose result the attention reads. A prefill's empty past is folded away before (the
    optimizer drops empty Concat inputs)."""
    for node in nodes_of(ed.graph, "Concat"):
        past = [v for v in node.inputs if v.is_graph_input() and roles.get(v.name) == "past"]
        if not past:
            raise ed.fail(node, _CONCAT)
        if len(node.inputs) != 2 or node.inputs[0] is not past[0]:
            raise ed.fail(node, _CONCAT)
        cache, new = node.inputs
        after = dims(node.outputs[0])
        if dims(new)[attribute_axis(node, after)] != 1:
            raise ed.fail(node, "a decode step of one token (--seq 1) appending to the cache")
        cache.shape = ir.Shape(after)
        out = ed.add_before(node, "Add", [cache, new], f"{node.name}.append")
        out.meta[APPENDED] = True
        ed.replace(node.outputs[0], out)
        ed.note(node, f"KV append: Add of the new entry into the cache input {cache.name!r}, now {list(after)}")


_CONCAT = (
    "the KV-cache append Concat(past key/value input, new entry) along the past axis, or RoPE's rotate_half "
    "Concat(Neg(x[..., d/2:]), x[..., :d/2])"
)


def attribute_axis(node: ir.Node, shape: tuple[int, ...]) -> int:
    return node.attributes["axis"].value % len(shape)


def name_kv(ed: Editor) -> list[str]:
    """Rename each layer's K and V cache tensors (``layer{i}.attn.k_cache`` …); returns their names, in order."""
    names: list[str] = []
    for layer, softmax in enumerate(nodes_of(ed.graph, "Softmax")):
        scores = _producer_through(softmax.inputs[0], "MatMul")
        contexts = [use.node for use in softmax.outputs[0].uses() if use.node.op_type == "MatMul"]
        if scores is None or len(contexts) != 1:
            raise ed.fail(softmax, "attention: a Softmax between a MatMul of Q and K and a MatMul with V")
        for kind, operand in (("k", scores.inputs[1]), ("v", contexts[0].inputs[1])):
            names += _name(ed, layer, kind, _cache_tensor(operand))
    return names


def _name(ed: Editor, layer: int, kind: str, tensor: ir.Value) -> list[str]:
    """Name the K or V tensors of ``layer``. A view (the exports' head transpose) names nothing Stream keeps: it
    folds views into their readers, so the name goes to the computed tensor the view shows, as the builder's."""
    producer = tensor.producer()
    if producer is not None and tensor.meta.get(APPENDED):
        cache, new = producer.inputs[0], through_layouts(producer.inputs[1])
        cache.name, new.name = kv_cache_name(layer, kind), kv_new_name(layer, kind)
        tensor.name = kv_appended_name(layer, kind)
        return [cache.name, new.name, tensor.name]
    tensor = through_layouts(tensor)
    tensor.name = kv_cache_name(layer, kind)
    return [tensor.name]


def _producer_through(value: ir.Value, op_type: str) -> ir.Node | None:
    """The ``op_type`` node ``value`` comes from, through elementwise scalings by constants."""
    while (node := value.producer()) is not None:
        if node.op_type == op_type:
            return node
        if node.op_type not in _SCALINGS:
            return None
        value = next((v for v in node.inputs if v.const_value is None), node.inputs[0])
    return None


def _cache_tensor(value: ir.Value) -> ir.Value:
    """The tensor a K or V operand of attention views: back through layouts, ``repeat_kv`` and constant scalings, to
    an appended cache, a graph output (a prefill's present K/V) or the first computed tensor."""
    while not value.is_graph_output() and not value.meta.get(APPENDED):
        node = value.producer()
        if node is None:
            break
        if node.op_type in LAYOUT or (node.op_type == "Gather" and values_of(node.inputs[1]) is not None):
            value = node.inputs[0]
        elif node.op_type in _SCALINGS and any(v.const_value is not None for v in node.inputs[1:]):
            value = node.inputs[0]
        else:
            break
    return value
