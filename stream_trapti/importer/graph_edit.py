"""Small edits on an onnx_ir graph that the rewrites share: new constants, new nodes next to old ones, bypassing a node,
reading a constant's values, and the one-line error for a node no rewrite takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx_ir as ir

from stream_trapti.errors import InputFileError

LAYOUT = frozenset({"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze"})
"""Layout-only operators (Stream's ``LAYOUT_OPS``): they view a tensor, never compute on it."""
APPENDED = "trapti.appended"
"""Value metadata marking the cache after a decode step's append (:func:`.kv_cache.kv_append`)."""


@dataclass
class Editor:
    """A graph under rewrite, the log of what was rewritten (one line per node) and the file it came from."""

    graph: ir.Graph
    source: str
    log: list[str] = field(default_factory=list)
    _counter: int = 0

    def fresh(self, stem: str) -> str:
        """A name no value or node of the graph has, from ``stem``."""
        self._counter += 1
        return f"{stem}.{self._counter}"

    def constant(self, stem: str, values: np.ndarray) -> ir.Value:
        """A new initializer holding ``values``, named ``const.<stem>…`` (classed as a weight/constant)."""
        name = self.fresh(f"const.{stem}")
        value = ir.Value(name=name, const_value=ir.tensor(values, name=name))
        value.shape = ir.Shape(values.shape)
        value.type = ir.TensorType(ir.DataType.from_numpy(values.dtype))
        self.graph.register_initializer(value)
        return value

    def ints(self, stem: str, values: Sequence[int]) -> ir.Value:
        return self.constant(stem, np.array(values, dtype=np.int64))

    def add_before(self, anchor: ir.Node, op_type: str, inputs: Sequence[ir.Value], name: str, **attrs) -> ir.Value:
        """A new ``op_type`` node inserted before ``anchor``; returns its output."""
        node = ir.node(op_type, list(inputs), attributes=attrs or None, name=self.fresh(name))
        node.outputs[0].name = f"{node.name}.out"
        self.graph.insert_before(anchor, node)
        return node.outputs[0]

    def replace(self, old: ir.Value, new: ir.Value) -> None:
        """Every reader of ``old`` (a graph output included) reads ``new`` instead."""
        if old.is_graph_output():
            # The graph output keeps its name: it may be the logits or a present K/V a caller looks for.
            name = old.name
            old.name = self.fresh(f"{name}.replaced")
            new.name = name
        old.replace_all_uses_with(new, replace_graph_outputs=True)

    def note(self, node: ir.Node, what: str) -> None:
        self.log.append(f"{node.op_type} {node.name!r}: {what}")

    def fail(self, node: ir.Node, expected: str) -> InputFileError:
        """The one-line error for ``node``, which matched no rewrite: ``expected`` says which pattern would."""
        return InputFileError(
            f"{self.source}: node {node.name!r} is an ONNX {node.op_type!r} the importer cannot rewrite; it expected "
            f"{expected}"
        )


def values_of(value: ir.Value | None) -> np.ndarray | None:
    """The data of a constant ``value`` (an initializer or folded constant with data), else None."""
    if value is None or value.const_value is None:
        return None
    try:
        return value.const_value.numpy()
    except Exception:  # a stripped weight: dims and type, no data
        return None


def dims(value: ir.Value) -> tuple[int, ...]:
    """The static shape of ``value`` (the import fixes every dimension first)."""
    assert value.shape is not None, value.name
    return tuple(int(d) for d in value.shape)


def attribute(node: ir.Node, name: str, default=None):
    attr = node.attributes.get(name)
    return default if attr is None else attr.value


def only_reader(value: ir.Value) -> ir.Node | None:
    """The one node reading ``value``, if exactly one does and ``value`` is not a graph output."""
    readers = {use.node for use in value.uses()}
    if len(readers) != 1 or value.is_graph_output():
        return None
    return next(iter(readers))


def live(node: ir.Node) -> bool:
    """Whether some node or the graph's outputs still read ``node``'s results (a rewrite may have replaced them)."""
    return any(output.uses() or output.is_graph_output() for output in node.outputs)


def nodes_of(graph: ir.Graph, *op_types: str) -> Iterator[ir.Node]:
    """The nodes of ``op_types``, a snapshot (so rewrites may add and remove nodes meanwhile)."""
    return iter([node for node in graph if node.op_type in op_types])


def through_layouts(value: ir.Value) -> ir.Value:
    """``value`` followed back through layout-only producers to the tensor they view."""
    while (producer := value.producer()) is not None and producer.op_type in LAYOUT:
        value = producer.inputs[0]
    return value
