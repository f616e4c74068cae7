"""The peak of a cache-like on-chip memory that keeps every tensor of a workload while it is live, read off the ONNX
graph the builder makes.

Why: the TRAPTI paper's occupancy comes from TransInferSim, whose shared SRAM is an LRU cache large enough to keep a
layer's tensors between operators; its "needed" bytes are the resident words still to be read. Stream instead moves
each operator's inputs and outputs through DRAM (see the README), so its traces cannot say what such a cache would
hold. This module gives the cache's answer from the tensor sizes alone, for the same graphs Stream solves.

The model of the cache: nodes run one at a time in the graph's (topological) order; a tensor is resident from the node
that produces it (or, for a graph input or an initializer, the first node that reads it) up to and including the last
node that reads it; the peak is the largest sum of resident bytes over the nodes. A tensor no node reads (a graph
output: the layer's result, the K/V a prefill writes) is resident at its producer only. Layout-only operators
(:data:`LAYOUT_OPS`) are views: their output is the same bytes as their input, so it is counted once and keeps its
input resident until the view's last reader. Only data tensors count (:func:`tensor_bytes`); the int64 index
arguments do not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from math import prod

import onnx

from stream_trapti.workloads.analytics import tensor_bytes, tensor_shapes

LAYOUT_OPS: frozenset[str] = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Flatten"})
"""Operators whose output is a view of their first input, not new bytes."""

SCORE_NODES: tuple[str, ...] = (".attn.scores", ".attn.scale", ".attn.softmax")
"""Name endings of the builder's nodes whose outputs are attention scores, one S_q × S_ctx matrix per query head."""


@dataclass(frozen=True)
class Lifetime:
    """One tensor's stay in the cache: ``size`` bytes from node ``first`` to node ``last`` (indices, inclusive)."""

    name: str
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class LayerPeak:
    """The cache's occupancy at every node of a graph, and its peak.

    ``live_bytes[i]`` is the bytes resident while ``nodes[i]`` runs; ``lifetimes`` holds every counted tensor (views
    folded into the tensor they view)."""

    nodes: tuple[str, ...]
    live_bytes: tuple[int, ...]
    lifetimes: Mapping[str, Lifetime]

    @property
    def peak_bytes(self) -> int:
        return max(self.live_bytes)

    @property
    def peak_node(self) -> str:
        """The first node at which the peak is reached."""
        return self.nodes[self.live_bytes.index(self.peak_bytes)]

    def live_at(self, node: str) -> dict[str, int]:
        """The tensors resident while ``node`` runs, with their bytes."""
        i = self.nodes.index(node)
        return {t.name: t.size for t in self.lifetimes.values() if t.first <= i <= t.last}


def layer_peak(model: onnx.ModelProto, *, one_score_tensor: bool = False) -> LayerPeak:
    """The cache-like peak of ``model`` (a graph built by :mod:`stream_trapti.workloads.builder`), see the module doc.

    ``one_score_tensor`` counts the attention scores as TransInferSim v0.2's grouped-query layer stores them: one
    S_q × S_ctx matrix for all query heads, where the builder (like the model) has one per head
    (:func:`one_score_matrix`)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    sizes = tensor_bytes(inferred)
    if one_score_tensor:
        sizes = one_score_matrix(inferred, sizes)
    return cache_occupancy(inferred.graph, sizes)


def one_score_matrix(model: onnx.ModelProto, sizes: Mapping[str, int]) -> dict[str, int]:
    """``sizes`` with each attention-score tensor (outputs of the :data:`SCORE_NODES`, shape ``[..., S_q, S_ctx]``)
    cut to one S_q × S_ctx matrix, the leading head axes dropped. ``model`` must carry inferred shapes."""
    shapes = tensor_shapes(model)
    resized = dict(sizes)
    for node in model.graph.node:
        if node.name.endswith(SCORE_NODES):
            out = node.output[0]
            resized[out] = sizes[out] // prod(shapes[out][:-2])
    return resized


def cache_occupancy(graph: onnx.GraphProto, sizes: Mapping[str, int]) -> LayerPeak:
    """Bytes resident at each node of ``graph`` when a tensor of ``sizes[name]`` bytes stays from its producer (or
    first reader) to its last reader; tensors not in ``sizes`` (index arguments) are not counted."""
    view_of: dict[str, str] = {}
    for node in graph.node:
        if node.op_type in LAYOUT_OPS:
            # A view of a view is a view of the first tensor.
            view_of[node.output[0]] = view_of.get(node.input[0], node.input[0])
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for i, node in enumerate(graph.node):
        for name in [*node.input, *node.output]:
            root = view_of.get(name, name)
            if root in sizes:
                first.setdefault(root, i)
                last[root] = i
    lifetimes = {name: Lifetime(name, sizes[name], first[name], last[name]) for name in first}
    # Occupancy as a difference array: +size where a tensor arrives, -size after its last reader.
    change = [0] * (len(graph.node) + 1)
    for t in lifetimes.values():
        change[t.first] += t.size
        change[t.last + 1] -= t.size
    live, total = [], 0
    for delta in change[:-1]:
        total += delta
        live.append(total)
    return LayerPeak(tuple(node.name for node in graph.node), tuple(live), lifetimes)
