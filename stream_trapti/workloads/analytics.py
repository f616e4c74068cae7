"""Closed-form MAC, parameter and KV-cache counts, and the same counts read off a built ONNX graph.

MACs are those of the matrix products (projections, Q·Kᵀ, attention·V, LM head), the convention of the reference
figures: normalisations, activations, RoPE and the embedding lookup do no multiply-accumulates. Attention is not
halved for causality (the mask does not skip work).
"""

from __future__ import annotations

from math import prod

import onnx

from stream_trapti.workloads.config import DecoderConfig
from stream_trapti.workloads.spec import WorkloadSpec
from stream_trapti.workloads.tensors import TensorClass, classify_tensor


def layer_parameter_count(config: DecoderConfig) -> int:
    """Weights and biases of one decoder layer, its two norms included."""
    widths = {"q_proj": config.hidden, "k_proj": config.kv_dim, "v_proj": config.kv_dim, "o_proj": config.hidden}
    fan_in = {"q_proj": config.hidden, "k_proj": config.hidden, "v_proj": config.hidden, "o_proj": config.hidden}
    widths |= {name: config.intermediate for name in ("gate_proj", "up_proj")} | {"down_proj": config.hidden}
    fan_in |= {"gate_proj": config.hidden, "up_proj": config.hidden, "down_proj": config.intermediate}
    linears = sum(fan_in[n] * widths[n] + (widths[n] if n in config.biases else 0) for n in config.linears)
    return linears + 2 * _norm_parameters(config)


def parameter_count(config: DecoderConfig, spec: WorkloadSpec) -> int:
    """Parameters the graph of ``spec`` holds: its layers, the embedding tables if ``spec.embedding``, the final norm
    and the LM head if ``spec.lm_head`` (a tied head shares the token table, counted once)."""
    total = spec.layers * layer_parameter_count(config)
    token_table = config.vocab * config.hidden
    if spec.embedding:
        total += token_table + (config.max_positions * config.hidden if config.position == "learned" else 0)
    if spec.lm_head != "none":
        total += _norm_parameters(config)
        if not config.tied_lm_head or not spec.embedding:
            total += token_table
    return total


def model_parameter_count(config: DecoderConfig) -> int:
    """Parameters of the whole model (all layers, embeddings, final norm, LM head)."""
    return parameter_count(config, WorkloadSpec("prefill", 1, config.layers, embedding=True, lm_head="all"))


def mac_count(config: DecoderConfig, spec: WorkloadSpec) -> int:
    """Multiply-accumulates of the matrix products of ``spec``'s graph."""
    spec.check_against(config)
    projections = config.hidden * (2 * config.hidden + 2 * config.kv_dim)
    mlp = (3 if config.mlp == "swiglu" else 2) * config.hidden * config.intermediate
    # Q·Kᵀ and attention·V: every query head against every context position.
    attention = 2 * config.heads * config.head_dim * spec.context_len
    per_layer = spec.query_len * (projections + mlp + attention)
    return spec.layers * per_layer + spec.head_rows * config.hidden * config.vocab


def kv_cache_bytes(config: DecoderConfig, tokens: int, precision_bits: int = 8) -> int:
    """Bytes of one layer's K and V cache holding ``tokens`` positions: ``2 · tokens · kv_heads · head_dim · bytes``."""
    return 2 * tokens * config.kv_dim * precision_bits // 8


def graph_mac_count(model: onnx.ModelProto) -> int:
    """MACs of the MatMul nodes of ``model``, from the shapes ONNX infers: output elements × contraction length."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    shapes = tensor_shapes(inferred)
    return sum(
        prod(shapes[node.output[0]]) * shapes[node.input[0]][-1]
        for node in inferred.graph.node
        if node.op_type == "MatMul"
    )


def graph_parameter_count(model: onnx.ModelProto) -> int:
    """Elements of the initializers named as parameters (``*.weight`` / ``*.bias``), not the ``const.*`` tables."""
    return sum(
        prod(init.dims)
        for init in model.graph.initializer
        if classify_tensor(init.name) is TensorClass.WEIGHT and not init.name.startswith("const.")
    )


def graph_input_bytes(model: onnx.ModelProto, names: list[str]) -> int:
    """Bytes of the graph inputs called ``names`` (a layer's K/V cache, say), from their declared shapes and types."""
    sizes = tensor_bytes(model)
    return sum(sizes[name] for name in names)


ELEMENT_BYTES: dict[int, int] = {onnx.TensorProto.INT8: 1, onnx.TensorProto.FLOAT16: 2, onnx.TensorProto.FLOAT: 4}
"""Bytes per element of the data types the builder gives model tensors (one per ``WorkloadSpec.precision_bits``)."""


def tensor_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """The shape of every tensor ``model`` declares: its inputs, outputs and initializers, and its intermediates if
    ``model`` went through ONNX shape inference (which fills ``value_info``)."""
    graph = model.graph
    shapes = {i.name: tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in _infos(graph)}
    shapes |= {init.name: tuple(init.dims) for init in graph.initializer}
    return shapes


def tensor_bytes(model: onnx.ModelProto) -> dict[str, int]:
    """Bytes of every data tensor ``model`` declares (as :func:`tensor_shapes`), those of an element type in
    :data:`ELEMENT_BYTES`. The int64 index tensors of Slice, Gather, ReduceMean and Reshape and the int32 token ids are
    left out: they are operator arguments, not model data."""
    types = {i.name: i.type.tensor_type.elem_type for i in _infos(model.graph)}
    types |= {init.name: init.data_type for init in model.graph.initializer}
    shapes = tensor_shapes(model)
    return {name: prod(shapes[name]) * ELEMENT_BYTES[kind] for name, kind in types.items() if kind in ELEMENT_BYTES}


def _infos(graph: onnx.GraphProto) -> list[onnx.ValueInfoProto]:
    return [*graph.input, *graph.value_info, *graph.output]


def _norm_parameters(config: DecoderConfig) -> int:
    # LayerNorm has a scale and a shift; RMSNorm only a scale.
    return (2 if config.norm == "layernorm" else 1) * config.hidden
