"""The repeated decoder layer of an imported graph, found by structure: the residual stream.

Attention ``i`` is the ``i``-th ``Softmax`` in graph order. The residual stream entering layer ``i`` is the tensor
that the layer's attention depends on and that an ``Add`` outside that attention also reads (the skip connection);
following residual ``Add``\\ s from it (each reads the stream and a computed tensor) walks the layer's attention and
MLP blocks. Layer ``i`` is what computes the stream entering layer ``i+1`` (the last layer: the stream's last value)
beyond what computes the stream entering it. What comes before the first layer is the embedding, after the last the
final norm and the LM head. Nodes and activations of layer ``i`` are named ``layer{i}.…`` as the builder's, which is
what lets :func:`stream_trapti.inference.repeat_layers` replicate one solved layer.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import onnx_ir as ir

from stream_trapti.importer.graph_edit import APPENDED, Editor, dims, nodes_of
from stream_trapti.tracker.compose import LAYER_PREFIX


@dataclass(frozen=True)
class Layers:
    """Each decoder layer's nodes, and the residual stream entering each layer and leaving the last."""

    nodes: tuple[frozenset[ir.Node], ...]
    streams: tuple[ir.Value, ...]


def find_layers(ed: Editor) -> Layers:
    """The decoder layers of the rewritten graph; an :class:`InputFileError` if they are not alike."""
    softmaxes = list(nodes_of(ed.graph, "Softmax"))
    if not softmaxes:
        raise ed.fail(next(iter(ed.graph)), "a decoder: attention Softmax nodes, one per layer")
    attention = [_ancestors(_context(ed, s)) for s in softmaxes]
    entering = [_entering_stream(ed, s, nodes) for s, nodes in zip(softmaxes, attention, strict=True)]
    chain = _residual_chain(entering[0])
    streams = [*entering, chain[-1]]
    if streams[-1] is entering[-1]:
        raise ed.fail(softmaxes[-1], "a residual Add after the last attention")
    below = [_ancestors_of_value(v) for v in streams]
    nodes = tuple(frozenset(below[i + 1] - below[i]) for i in range(len(softmaxes)))
    shapes = {tuple(sorted(Counter(n.op_type for n in layer).items())) for layer in nodes}
    if len(shapes) != 1:
        raise ed.fail(softmaxes[0], "decoder layers made of the same operators, the repeated layer of a decoder")
    return Layers(nodes, tuple(streams))


def keep_first_layer(ed: Editor, layers: Layers) -> None:
    """Drop every decoder layer but the first: the final norm reads the stream leaving layer 0, and the K/V inputs
    and outputs of the dropped layers go with them."""
    if len(layers.nodes) == 1:
        return
    dropped = frozenset().union(*layers.nodes[1:])
    layers.streams[-1].replace_all_uses_with(layers.streams[1])
    outputs = ed.graph.outputs
    for value in [v for v in outputs if v.producer() in dropped]:
        outputs.remove(value)
    ed.log.append(f"kept the first of {len(layers.nodes)} decoder layers (the others repeat it)")


def hidden_states_input(ed: Editor, layers: Layers) -> None:
    """The embedding (token and position lookups) replaced by a ``hidden_states`` graph input: the residual stream
    entering the first layer, as the builder's graphs without ``embedding``. Stream 2.1.1 prices a Gather as a pass
    over its whole table and keeps the table on chip, which a real vocabulary does not fit; the lookups do no MACs."""
    stream = layers.streams[0]
    if stream.is_graph_input():
        return
    hidden = ir.Value(name="hidden_states", shape=stream.shape, type=stream.type)
    ed.graph.inputs.append(hidden)
    stream.replace_all_uses_with(hidden)
    ed.log.append(f"embedding {stream.name!r} {list(stream.shape)}: a hidden_states input (lookups do no MACs)")


def remove_unread_inputs(graph: ir.Graph) -> None:
    """Graph inputs no node reads any more (a dropped layer's K/V cache)."""
    for value in [v for v in graph.inputs if not v.uses()]:
        graph.inputs.remove(value)


def name_layers(layers: Layers) -> None:
    """Prefix each layer's nodes and activations with ``layer{i}.`` (names a rewrite already gave stay)."""
    for index, layer in enumerate(layers.nodes):
        prefix = f"layer{index}."
        for node in layer:
            node.name = prefix + node.name
            for value in node.outputs:
                if not LAYER_PREFIX.match(value.name or "") and not value.is_graph_output():
                    value.name = prefix + (value.name or node.name)


def _context(ed: Editor, softmax: ir.Node) -> ir.Node:
    """The MatMul of the attention probabilities with V."""
    readers = [use.node for use in softmax.outputs[0].uses() if use.node.op_type == "MatMul"]
    if len(readers) != 1:
        raise ed.fail(softmax, "attention: a Softmax read by one MatMul with V")
    return readers[0]


def _ancestors(node: ir.Node) -> set[ir.Node]:
    """``node`` and every node it depends on."""
    seen: set[ir.Node] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        stack += [v.producer() for v in current.inputs if v is not None and v.producer() is not None]
    return seen


def _ancestors_of_value(value: ir.Value) -> set[ir.Node]:
    producer = value.producer()
    return _ancestors(producer) if producer is not None else set()


def _entering_stream(ed: Editor, softmax: ir.Node, attention: set[ir.Node]) -> ir.Value:
    """The residual stream the attention of ``softmax`` depends on: read by an Add outside the attention too."""
    candidates = [
        value
        for node in attention
        for value in node.outputs
        if any(_is_residual_add(use.node) and use.node not in attention for use in value.uses())
    ]
    candidates += [
        value
        for value in ed.graph.inputs
        if any(use.node in attention for use in value.uses())
        and any(_is_residual_add(use.node) and use.node not in attention for use in value.uses())
    ]
    if len(candidates) != 1:
        raise ed.fail(softmax, "one residual stream entering each attention (read by its norm and a residual Add)")
    return candidates[0]


def _residual_chain(stream: ir.Value) -> list[ir.Value]:
    """The values of the residual stream from ``stream`` on: each the output of the residual Add reading the last."""
    chain = [stream]
    while (add := next((u.node for u in chain[-1].uses() if _is_residual_add(u.node)), None)) is not None:
        chain.append(add.outputs[0])
    return chain


def _is_residual_add(node: ir.Node) -> bool:
    """An Add of two computed tensors (one adding a bias or a constant is not), and not the KV append."""
    return (
        node.op_type == "Add"
        and all(v is not None and v.const_value is None for v in node.inputs)
        and not node.outputs[0].meta.get(APPENDED)
    )


def last_position_logits(ed: Editor) -> None:
    """The LM head over the last position only, as generation runs it (transformers' ``logits_to_keep=1``) and as
    the builder's ``lm_head="last"``: the head reads its input's last position only."""
    logits = ed.graph.outputs[0]
    head = logits.producer()
    if head is None or head.op_type != "MatMul":
        raise ed.fail(head or next(iter(ed.graph)), "the logits (the first graph output) computed by a MatMul")
    hidden = head.inputs[0]
    shape = dims(hidden)
    if len(shape) < 2 or shape[-2] == 1:
        return
    # The last row of the [positions, hidden] view, so the logits are [1, vocab] as the builder's. A Gather, not the
    # builder's Slice: Stream 2.1.1 fails to allocate a Slice here ("no allocations to determine transfer type").
    rows = ed.add_before(head, "Reshape", [hidden, ed.ints("shape", list(shape[-2:]))], "lm_head.positions")
    index = ed.ints("last_position", [shape[-2] - 1])
    last = ed.add_before(head, "Gather", [rows, index], "lm_head.last_position", axis=0)
    head.replace_input_with(0, last)
    logits.shape = None  # one position now: inferred again
    ed.log.append(f"LM head over the last of {shape[-2]} positions (Gather of {hidden.name!r})")
