"""Which tensors of a workload are weights, activations or KV cache, told from their names alone.

The builder names tensors so that the class survives Stream's parsing: Stream 2.1.1 keeps an ONNX initializer's
name, a graph input's name and a node output's tensor name unchanged as ``Tensor.name`` (see the project report),
so the same rule classifies an ONNX graph and the ``stream.workload`` objects parsed from it.
"""

from __future__ import annotations

import json
import re
from enum import Enum

import onnx

KV_METADATA_KEY = "trapti.kv_cache"
"""Model metadata key: JSON list of the K/V cache tensors of the graph."""


class TensorClass(Enum):
    """What a tensor holds, for occupancy accounting."""

    WEIGHT = "weight"
    ACTIVATION = "activation"
    KV_CACHE = "kv_cache"


# K/V cache tensors: the cache a decode step reads (a graph input), the entry it appends and the cache after the
# append, or the K/V a prefill writes.
_KV = re.compile(r"^layer\d+\.attn\.[kv]_(cache|new|appended)$")
# Parameters (``<node>.weight`` / ``<node>.bias``) and the shared constants (RoPE tables, scalars, int64 indices).
_WEIGHT = re.compile(r"(\.weight|\.bias)$|^const\.")


def kv_cache_name(layer: int, kind: str) -> str:
    """Name of layer ``layer``'s K (``kind="k"``) or V cache tensor."""
    return f"layer{layer}.attn.{kind}_cache"


def kv_new_name(layer: int, kind: str) -> str:
    """Name of the K or V entry a decode step computes for the new token and appends to the cache."""
    return f"layer{layer}.attn.{kind}_new"


def kv_appended_name(layer: int, kind: str) -> str:
    """Name of the K or V cache after a decode step wrote its new entry into the buffer (what attention reads)."""
    return f"layer{layer}.attn.{kind}_appended"


def classify_tensor(name: str) -> TensorClass:
    """The class of the tensor called ``name`` in a workload this package built (ONNX or Stream-parsed)."""
    if _KV.match(name):
        return TensorClass.KV_CACHE
    if _WEIGHT.search(name):
        return TensorClass.WEIGHT
    return TensorClass.ACTIVATION


def graph_tensor_classes(model: onnx.ModelProto) -> dict[str, TensorClass]:
    """Every tensor of ``model`` classified from the graph's structure and metadata rather than the naming rule:
    initializers are weights, the tensors listed in the ``trapti.kv_cache`` metadata (written by the builder) are
    the cache, everything else is an activation. Tests compare this with :func:`classify_tensor`."""
    graph = model.graph
    props = {prop.key: prop.value for prop in model.metadata_props}
    if KV_METADATA_KEY not in props:
        raise ValueError(f"model has no {KV_METADATA_KEY!r} metadata; it was not built by stream_trapti.workloads")
    kv = set(json.loads(props[KV_METADATA_KEY]))
    weights = {init.name for init in graph.initializer}
    names = {info.name for info in graph.input} | {out for node in graph.node for out in node.output} | weights
    return {
        name: TensorClass.WEIGHT if name in weights else TensorClass.KV_CACHE if name in kv else TensorClass.ACTIVATION
        for name in sorted(names)
    }
