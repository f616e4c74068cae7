"""Shape-only ONNX graphs of decoder-only transformers that Stream 2.1.1's ONNX frontend parses.

Only operators Stream parses are used (no Split, Concat, Expand, Where, Sqrt, Neg or Constant), so the usual
formulations are rewritten with equivalent ones:

* GPT-2's fused QKV projection is cut into Q, K and V with Slices;
* RMSNorm is ``x · Pow(mean(Pow(x, 2)) + ε, −0.5) · γ``;
* RoPE is ``x·cos + rotate_half(x)·sin``: a Gather along each head's ``d`` elements with the halves swapped and a
  sign tensor negating the first half is ``rotate_half`` without a Concat;
* GELU is ONNX ``Gelu`` with ``approximate="tanh"`` (GPT-2's ``gelu_new``); SiLU is ``x·Sigmoid(x)`` (ONNX has no
  Silu operator);
* grouped-query attention either broadcasts each K/V head over its query group in the MatMuls, or materialises
  Hugging Face's ``repeat_kv`` copy as a Gather over the head axis (a Gather keeps the copy a real node).

Weights and other constants are initializers with dims and element type but no data, so a full-size model is a
few hundred kilobytes; only the int64 index tensors of Slice, ReduceMean, Gather and Reshape carry values. The causal
mask is left out: it adds no MACs and Stream has no ``Where``.

Naming, which mapping YAMLs and the tensor classification rely on: node ``layer{i}.attn.q_proj``,
``layer{i}.mlp.down_proj``, ``layer{i}.attn_norm``, …; a node's output tensor is ``<node>.out``; weights are
``<node>.weight`` / ``<node>.bias``; shared constants are ``const.*``; the K/V cache tensors are
``layer{i}.attn.k_cache`` / ``v_cache`` (see :mod:`stream_trapti.workloads.tensors`).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from stream_trapti.atomic import atomic_write
from stream_trapti.workloads.config import DecoderConfig
from stream_trapti.workloads.spec import WorkloadSpec
from stream_trapti.workloads.tensors import KV_METADATA_KEY, kv_appended_name, kv_cache_name, kv_new_name

OPSET = 20  # the first with Gelu(approximate="tanh")
IR_VERSION = 9  # pinned so the bytes do not change with the installed onnx package
ELEMENT_TYPES: dict[int, int] = {8: TensorProto.INT8, 16: TensorProto.FLOAT16, 32: TensorProto.FLOAT}
INT64_MAX = 2**63 - 1


class _Graph:
    """Accumulates nodes and initializers; every tensor but the int64 indices has element type ``dtype``."""

    def __init__(self, dtype: int) -> None:
        self.dtype = dtype
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: dict[str, TensorProto] = {}

    def op(self, op_type: str, inputs: list[str], name: str, out: str | None = None, **attrs: object) -> str:
        output = out or f"{name}.out"
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attrs))
        return output

    def weight(self, name: str, dims: list[int]) -> str:
        """A data-less initializer: Stream needs only its dims and element type."""
        if name not in self.initializers:
            self.initializers[name] = TensorProto(name=name, data_type=self.dtype, dims=dims)
        return name

    def ints(self, name: str, values: list[int]) -> str:
        if name not in self.initializers:
            self.initializers[name] = helper.make_tensor(name, TensorProto.INT64, [len(values)], values)
        return name

    def reshape(self, x: str, dims: list[int], name: str) -> str:
        shape = self.ints(f"const.shape.{'x'.join(map(str, dims))}", dims)
        return self.op("Reshape", [x, shape], name)

    def transpose(self, x: str, perm: list[int], name: str) -> str:
        return self.op("Transpose", [x], name, perm=perm)

    def slice(self, x: str, start: int, end: int, axis: int, name: str, step: int = 1, out: str | None = None) -> str:
        key = f"{start}_{end}_{axis}_{step}".replace("-", "m")
        inputs = [
            x,
            self.ints(f"const.slice.{key}.starts", [start]),
            self.ints(f"const.slice.{key}.ends", [end]),
            self.ints(f"const.slice.{key}.axes", [axis]),
            self.ints(f"const.slice.{key}.steps", [step]),
        ]
        return self.op("Slice", inputs, name, out=out)

    def linear(self, x: str, d_in: int, d_out: int, name: str, bias: bool, out: str | None = None) -> str:
        y = self.op("MatMul", [x, self.weight(f"{name}.weight", [d_in, d_out])], name, out=None if bias else out)
        if not bias:
            return y
        return self.op("Add", [y, self.weight(f"{name}.bias", [d_out])], f"{name}.add_bias", out=out)


def build_model(config: DecoderConfig, spec: WorkloadSpec) -> onnx.ModelProto:
    """The ONNX graph of ``spec.layers`` layers of ``config`` for one ``spec.phase`` step (see the module doc)."""
    spec.check_against(config)
    g = _Graph(ELEMENT_TYPES[spec.precision_bits])
    s_q, hidden = spec.query_len, config.hidden
    inputs: list[onnx.ValueInfoProto] = []

    if spec.embedding:
        inputs.append(helper.make_tensor_value_info("input_ids", TensorProto.INT32, [s_q]))
        x = g.op("Gather", [g.weight("embed.tokens.weight", [config.vocab, hidden]), "input_ids"], "embed.tokens")
        if config.position == "learned":
            inputs.append(helper.make_tensor_value_info("position_ids", TensorProto.INT32, [s_q]))
            table = g.weight("embed.positions.weight", [config.max_positions, hidden])
            x = g.op("Add", [x, g.op("Gather", [table, "position_ids"], "embed.positions")], "embed.add")
    else:
        inputs.append(helper.make_tensor_value_info("hidden_states", g.dtype, [s_q, hidden]))
        x = "hidden_states"

    present: list[str] = []
    for layer in range(spec.layers):
        x, written = _layer(g, config, spec, layer, x, inputs)
        present += written
    # The cache: what prefill writes, or what decode reads (its inputs) and appends.
    read = [kv_cache_name(layer, kind) for layer in range(spec.layers) for kind in "kv"]
    appended = [kv_appended_name(layer, kind) for layer in range(spec.layers) for kind in "kv"]
    kv_tensors = present if spec.phase == "prefill" else [*read, *present, *appended]

    output = x
    if spec.lm_head != "none":
        h = _norm(g, config, x, "final_norm")
        if spec.lm_head == "last" and s_q > 1:
            h = g.slice(h, -1, INT64_MAX, 0, "lm_head.last_position")
        if config.tied_lm_head:
            table = g.weight("embed.tokens.weight", [config.vocab, hidden])
            head = g.transpose(table, [1, 0], "lm_head.tied_transpose")
        else:
            head = g.weight("lm_head.weight", [hidden, config.vocab])
        output = g.op("MatMul", [h, head], "lm_head", out="logits")

    # Stream makes only graph.output[0] an output edge; the present K/V outputs after it document the cache writes.
    graph = helper.make_graph(
        g.nodes,
        f"{config.name}_{spec.phase}",
        inputs,
        [helper.make_tensor_value_info(name, g.dtype, None) for name in [output, *present]],
        initializer=list(g.initializers.values()),
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION, producer_name="stream-trapti"
    )
    _declare_output_shapes(model)
    helper.set_model_props(
        model,
        {
            "trapti.config": _config_json(config),
            "trapti.spec": json.dumps(asdict(spec)),
            KV_METADATA_KEY: json.dumps(kv_tensors),
        },
    )
    return model


def write_workload(config: DecoderConfig, spec: WorkloadSpec, path: str | Path) -> Path:
    """Build the graph and write it to ``path`` atomically; the bytes depend only on ``config`` and ``spec``."""
    return atomic_write(path, build_model(config, spec).SerializeToString())


def _layer(
    g: _Graph, config: DecoderConfig, spec: WorkloadSpec, layer: int, x: str, inputs: list[onnx.ValueInfoProto]
) -> tuple[str, list[str]]:
    """One decoder layer on residual stream ``x``; returns its output and the K/V tensors it writes to the cache."""
    p, a = f"layer{layer}", f"layer{layer}.attn"
    s_q, d, kv_dim = spec.query_len, config.head_dim, config.kv_dim
    prefill = spec.phase == "prefill"
    # In prefill the computed K/V *are* the cache; in decode they are the one new entry appended to it.
    k_out = kv_cache_name(layer, "k") if prefill else kv_new_name(layer, "k")
    v_out = kv_cache_name(layer, "v") if prefill else kv_new_name(layer, "v")
    rope = config.position == "rope"

    h = _norm(g, config, x, f"{p}.attn_norm")
    if config.fused_qkv:
        qkv = g.linear(h, config.hidden, config.hidden + 2 * kv_dim, f"{a}.qkv_proj", "q_proj" in config.biases)
        q = g.slice(qkv, 0, config.hidden, -1, f"{a}.q_split")
        k = g.slice(qkv, config.hidden, config.hidden + kv_dim, -1, f"{a}.k_split", out=None if rope else k_out)
        v = g.slice(qkv, config.hidden + kv_dim, config.hidden + 2 * kv_dim, -1, f"{a}.v_split", out=v_out)
    else:
        q = g.linear(h, config.hidden, config.hidden, f"{a}.q_proj", "q_proj" in config.biases)
        k = g.linear(h, config.hidden, kv_dim, f"{a}.k_proj", "k_proj" in config.biases, out=None if rope else k_out)
        v = g.linear(h, config.hidden, kv_dim, f"{a}.v_proj", "v_proj" in config.biases, out=v_out)
    if rope:
        q = _rope(g, q, s_q, config.heads, d, f"{a}.q_rope")
        k = _rope(g, k, s_q, config.kv_heads, d, f"{a}.k_rope", out=k_out)
    if not prefill:
        # The cache buffer in Hugging Face's [kv_heads, P+1, d] layout: P past entries and the slot of the new one.
        # The append writes the new entry into its slot; it is an elementwise Add broadcasting the new entry
        # [kv_heads, 1, d] over the buffer, whose result is what the attention reads. Stream makes only
        # graph.output[0] an output edge, so without a reader in the graph the new K/V would be dangling tensors
        # Stream cannot allocate ("no allocations to determine transfer type"). The Add does no MACs. Stream runs
        # it out of place, so while it runs the buffer and its appended copy can both be on chip: the KV-cache
        # occupancy a decode trace shows is an upper bound on an in-place append's.
        appended = []
        for kind, new in (("k", k), ("v", v)):
            cache = kv_cache_name(layer, kind)
            shape = [config.kv_heads, spec.context_len, d]
            inputs.append(helper.make_tensor_value_info(cache, g.dtype, shape))
            entry = g.reshape(new, [config.kv_heads, 1, d], f"{a}.{kind}_new_heads")
            appended.append(g.op("Add", [cache, entry], f"{a}.{kind}_append", out=kv_appended_name(layer, kind)))
        k, v = appended

    context = _attention(g, config, spec, q, k, v, a)
    x = g.op(
        "Add",
        [x, g.linear(context, config.hidden, config.hidden, f"{a}.o_proj", "o_proj" in config.biases)],
        f"{p}.attn_residual",
    )
    h = _mlp(g, config, _norm(g, config, x, f"{p}.mlp_norm"), f"{p}.mlp")
    return g.op("Add", [x, h], f"{p}.mlp_residual"), [k_out, v_out]


def _attention(g: _Graph, config: DecoderConfig, spec: WorkloadSpec, q: str, k: str, v: str, a: str) -> str:
    """softmax(Q·Kᵀ·scale)·V; ``q`` holds [S_q, heads·d] elements, ``k`` and ``v`` are the projections
    (token-major, prefill) or the cache inputs ([kv_heads, S, d], decode). Returns the context as [S_q, hidden].

    Each K/V view is one Reshape and one Transpose at most: Stream folds such layouts into the MatMuls that read
    them, where longer chains of reshapes get materialised as copies."""
    s_q, s, d, kv, groups = spec.query_len, spec.context_len, config.head_dim, config.kv_heads, config.groups
    head_axis = 1 if spec.phase == "prefill" else 0
    if head_axis == 1:
        k = g.reshape(k, [s, kv, d], f"{a}.k_heads")
        v = g.reshape(v, [s, kv, d], f"{a}.v_heads")
    if groups > 1 and spec.gqa == "repeat_kv":
        index = g.ints("const.repeat_kv_index", [head // groups for head in range(config.heads)])
        k = g.op("Gather", [k, index], f"{a}.k_repeat", axis=head_axis)
        v = g.op("Gather", [v, index], f"{a}.v_repeat", axis=head_axis)
        kv, groups = config.heads, 1
    k = g.transpose(k, [1, 2, 0] if head_axis == 1 else [0, 2, 1], f"{a}.k_transpose")
    if head_axis == 1:
        v = g.transpose(v, [1, 0, 2], f"{a}.v_head_major")
    if groups > 1:
        # Q as [groups, kv, S_q, d]: the MatMuls broadcast each K/V head [kv, ·, ·] over its query group.
        q = g.reshape(q, [s_q, kv, groups, d], f"{a}.q_heads")
        order = [2, 1, 0, 3]
    else:
        q = g.reshape(q, [s_q, kv, d], f"{a}.q_heads")
        order = [1, 0, 2]
    q = g.transpose(q, order, f"{a}.q_head_major")
    scores = g.op("MatMul", [q, k], f"{a}.scores")
    scaled = g.op("Mul", [scores, g.weight("const.attn_scale", [])], f"{a}.scale")
    probs = g.op("Softmax", [scaled], f"{a}.softmax", axis=-1)
    context = g.op("MatMul", [probs, v], f"{a}.context")
    # Both orders are their own inverse.
    return g.reshape(g.transpose(context, order, f"{a}.context_token_major"), [s_q, config.hidden], f"{a}.merge_heads")


def _rope(g: _Graph, x: str, s_q: int, heads: int, d: int, name: str, out: str | None = None) -> str:
    """``x·cos + rotate_half(x)·sin`` on ``x`` [S_q, heads·d], computed on the [S_q, heads, d] view it returns
    ([heads, d] when S_q = 1).
    The cos/sin tables hold this step's positions (0…L−1 in prefill, P in decode), one row per query position."""
    # One query position (decode) drops the size-1 position axis: Stream folds the Reshape into the Gather, and a
    # size-1 leading axis there leaves the Gather's source-axis dim without a size ("Could not determine sizes").
    positions = [s_q] if s_q > 1 else []
    heads_view = g.reshape(x, [*positions, heads, d], f"{name}.heads")
    # rotate_half as a Gather along the head dim with the halves swapped, not a Slice of step −1 (ZigZag costs only
    # index expressions with positive coefficients) nor a Gather on a [2, d/2] view of it: the result then needs its
    # halves merged back, and Stream cannot fold that view when the scores also read Q through one (it materializes
    # K's, and a fused prefill is cut there).
    index = g.ints(f"const.rotate_half_index.{d}", [*range(d // 2, d), *range(d // 2)])
    swapped = g.op("Gather", [heads_view, index], f"{name}.swap_halves", axis=len(positions) + 1)
    rotated = g.op("Mul", [swapped, g.weight("const.rope_sign", [d])], f"{name}.sign")
    table = [*positions, 1, d]
    sin = g.op("Mul", [rotated, g.weight("const.rope_sin", table)], f"{name}.sin")
    cos = g.op("Mul", [heads_view, g.weight("const.rope_cos", table)], f"{name}.cos")
    return g.op("Add", [cos, sin], f"{name}.add", out=out)


def _norm(g: _Graph, config: DecoderConfig, x: str, name: str) -> str:
    if config.norm == "layernorm":
        gamma, beta = g.weight(f"{name}.weight", [config.hidden]), g.weight(f"{name}.bias", [config.hidden])
        return g.op("LayerNormalization", [x, gamma, beta], name, axis=-1, epsilon=config.norm_eps)
    # Pow, not Mul(x, x): Stream parses a node reading one tensor twice with one operand, and ZigZag then has no
    # second operand to cost (KeyError 'B') and Stream falls back to an ideal-cycle guess.
    square = g.op("Pow", [x, g.weight("const.square_exponent", [])], f"{name}.square")
    mean = g.op("ReduceMean", [square, g.ints("const.last_axis", [-1])], f"{name}.mean", keepdims=1)
    shifted = g.op("Add", [mean, g.weight("const.norm_eps", [])], f"{name}.add_eps")
    inverse = g.op("Pow", [shifted, g.weight("const.rsqrt_exponent", [])], f"{name}.rsqrt")
    normed = g.op("Mul", [x, inverse], f"{name}.normalize")
    return g.op("Mul", [normed, g.weight(f"{name}.weight", [config.hidden])], f"{name}.scale")


def _mlp(g: _Graph, config: DecoderConfig, h: str, m: str) -> str:
    hidden, inter, biases = config.hidden, config.intermediate, config.biases
    if config.mlp == "gelu":
        up = g.linear(h, hidden, inter, f"{m}.up_proj", "up_proj" in biases)
        act = g.op("Gelu", [up], f"{m}.act", approximate="tanh")
    else:
        # SiLU as x·sigmoid(x), as torch.onnx exports it: ONNX has no Silu operator.
        gate = g.linear(h, hidden, inter, f"{m}.gate_proj", "gate_proj" in biases)
        gate = g.op("Mul", [gate, g.op("Sigmoid", [gate], f"{m}.sigmoid")], f"{m}.act")
        act = g.op("Mul", [gate, g.linear(h, hidden, inter, f"{m}.up_proj", "up_proj" in biases)], f"{m}.gate_mul")
    return g.linear(act, inter, hidden, f"{m}.down_proj", "down_proj" in biases)


def _declare_output_shapes(model: onnx.ModelProto) -> None:
    """Give the graph outputs the shapes ONNX infers, without keeping every intermediate's value_info."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True).graph.output
    for output, shaped in zip(model.graph.output, inferred, strict=True):
        output.CopyFrom(shaped)


def _config_json(config: DecoderConfig) -> str:
    fields = asdict(config)
    fields["biases"] = sorted(config.biases)
    return json.dumps(fields)
