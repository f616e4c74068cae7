"""Rewrites of what Hugging Face exports contain, after folding, into operators Stream 2.1.1 parses, each with the
MACs and tensor sizes of what it replaces, as :mod:`stream_trapti.workloads.builder` formulates the same parts.

Patterns are matched by structure (operator types, which inputs are constant, shapes), never by node or tensor name,
so exports from torch's legacy and dynamo exporters and from optimum match alike. Each rewrite logs one line per
node it rewrote.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from stream_trapti.importer.graph_edit import Editor, attribute, dims, live, nodes_of, only_reader, values_of

MASK_FLOOR = -1e4
"""An additive mask holds 0 where a query may attend and a large negative number (−inf, the dtype's minimum, or
−10 000 in older models) where it may not."""


def drop_masks(ed: Editor, parameters: set[str]) -> None:
    """The causal and padding masks before each Softmax: ``Add(scores, mask)`` or ``Where(allowed, scores, −inf)``
    with a folded constant mask. No MACs; the builder has no mask and Stream has no ``Where``, so they are dropped."""
    for softmax in nodes_of(ed.graph, "Softmax"):
        while (node := softmax.inputs[0].producer()) is not None and _mask_operand(node, parameters) is not None:
            scores = _mask_operand(node, parameters)
            ed.replace(node.outputs[0], scores)
            ed.note(node, f"constant attention mask on {scores.name!r} dropped (no MACs)")


def _mask_operand(node: ir.Node, parameters: set[str]) -> ir.Value | None:
    """The scores a mask node masks, if ``node`` applies a constant mask to them."""
    if node.op_type == "Add":
        constant = [v for v in node.inputs if v.const_value is not None and v.name not in parameters]
        others = [v for v in node.inputs if v.const_value is None]
        if len(constant) == 1 and len(others) == 1 and _is_mask(values_of(constant[0]), additive=True):
            return others[0] if dims(others[0]) == dims(node.outputs[0]) else None
    if node.op_type == "Where":
        condition, a, b = node.inputs
        if values_of(condition) is None:
            return None
        for scores, fill in ((a, b), (b, a)):
            if scores.const_value is None and _is_mask(values_of(fill), additive=False):
                return scores if dims(scores) == dims(node.outputs[0]) else None
    return None


def _is_mask(values: np.ndarray | None, additive: bool) -> bool:
    if values is None or values.dtype.kind != "f" or values.ndim < (2 if additive else 0):
        return False
    return bool(np.all((values == 0) | (values <= MASK_FLOOR))) if additive else bool(np.all(values <= MASK_FLOOR))


def gemm_to_matmul(ed: Editor) -> None:
    """``Gemm(A, B, C)`` (GPT-2's Conv1D as the legacy exporter writes it): Stream's Gemm parser ignores transB and
    drops the bias, so it becomes ``MatMul`` (B transposed first if transB) and ``Add`` of the bias."""
    for node in nodes_of(ed.graph, "Gemm"):
        if attribute(node, "transA", 0) or attribute(node, "alpha", 1.0) != 1.0 or attribute(node, "beta", 1.0) != 1.0:
            raise ed.fail(node, "Gemm with transA=0, alpha=1 and beta=1 (a linear layer)")
        a, b, *c = node.inputs
        if attribute(node, "transB", 0):
            b = ed.add_before(node, "Transpose", [b], f"{node.name}.weight_transpose", perm=[1, 0])
        out = ed.add_before(node, "MatMul", [a, b], f"{node.name}.matmul")
        if c and c[0] is not None:
            out = ed.add_before(node, "Add", [out, c[0]], f"{node.name}.add_bias")
        ed.replace(node.outputs[0], out)
        ed.note(node, "MatMul and Add of the bias")


def split_to_slices(ed: Editor) -> None:
    """``Split`` (GPT-2's fused QKV, Phi-3's gate/up): one ``Slice`` per output, as the builder cuts GPT-2's QKV."""
    for node in nodes_of(ed.graph, "Split"):
        axis = attribute(node, "axis", 0)
        source = node.inputs[0]
        axis %= len(dims(source))
        start = 0
        for output in node.outputs:
            end = start + dims(output)[axis]
            piece = ed.add_before(
                node,
                "Slice",
                [source, ed.ints("slice", [start]), ed.ints("slice", [end]), ed.ints("slice", [axis])],
                f"{node.name}.slice",
            )
            ed.replace(output, piece)
            start = end
        ed.note(node, f"{len(node.outputs)} Slices along axis {axis}")


def rsqrt_to_pow(ed: Editor) -> None:
    """RMSNorm's ``1/sqrt(v)`` in any of its exported forms (``Reciprocal(Sqrt(v))``, ``Div(1, Sqrt(v))``,
    ``Div(x, Sqrt(v))``) as ``Pow(v, −0.5)`` (and a ``Mul``), the builder's formulation; a lone ``Sqrt`` or
    ``Reciprocal`` is ``Pow`` 0.5 or −1. Elementwise, no MACs."""
    for node in nodes_of(ed.graph, "Sqrt"):
        reader = only_reader(node.outputs[0])
        v = node.inputs[0]
        if reader is not None and reader.op_type == "Reciprocal":
            _pow(ed, reader, v, -0.5)
            ed.note(reader, "with the Sqrt before it: Pow(v, -0.5)")
        elif reader is not None and reader.op_type == "Div" and reader.inputs[1] is node.outputs[0]:
            numerator = reader.inputs[0]
            inverse = _pow(ed, reader, v, -0.5, replace=False)
            one = values_of(numerator)
            if one is not None and one.size == 1 and float(one.reshape(())) == 1.0:
                ed.replace(reader.outputs[0], inverse)
                ed.note(reader, "with the Sqrt before it: Pow(v, -0.5)")
            else:
                ed.replace(reader.outputs[0], ed.add_before(reader, "Mul", [numerator, inverse], f"{reader.name}.mul"))
                ed.note(reader, "with the Sqrt before it: Mul(x, Pow(v, -0.5))")
        else:
            _pow(ed, node, v, 0.5)
            ed.note(node, "Pow(v, 0.5)")
    for node in nodes_of(ed.graph, "Reciprocal"):
        if live(node):  # not one the Sqrt loop replaced
            _pow(ed, node, node.inputs[0], -1.0)
            ed.note(node, "Pow(v, -1)")


def _pow(ed: Editor, node: ir.Node, base: ir.Value, exponent: float, replace: bool = True) -> ir.Value:
    out = ed.add_before(
        node, "Pow", [base, ed.constant("exponent", np.array(exponent, np.float32))], f"{node.name}.pow"
    )
    if replace:
        ed.replace(node.outputs[0], out)
    return out


def self_products(ed: Editor) -> None:
    """``Mul(x, x)`` as ``Pow(x, 2)``: Stream parses a node reading one tensor twice with one operand, which ZigZag
    cannot cost (the builder's norm does the same)."""
    for node in nodes_of(ed.graph, "Mul"):
        if node.inputs[0] is node.inputs[1]:
            _pow(ed, node, node.inputs[0], 2.0)
            ed.note(node, "Pow(x, 2)")


def rotate_half(ed: Editor) -> None:
    """RoPE's ``rotate_half(x) = Concat(Neg(x[..., d/2:]), x[..., :d/2])`` as a Gather along the last axis with index
    ``[d/2 … d−1, 0 … d/2−1]`` swapping the halves and a sign ``Mul`` by ``[−1 … −1, +1 … +1]``: the builder's
    rotation without its ``[…, 2, d/2]`` view, which Stream cannot cost when read through the exports' head transpose.
    Same element counts, no MACs."""
    for node in nodes_of(ed.graph, "Concat"):
        match = _rotate_half_source(node)
        if match is None:
            continue
        x, half = match
        shape = dims(x)
        order = [*range(half, shape[-1]), *range(half)]
        # Read without the size-1 axes (batch, a decode's one position): through a view with them Stream cannot size
        # the Gather's source axis (the builder drops the decode position axis for the same reason).
        squeezed = [d for d in shape[:-1] if d != 1] + [shape[-1]]
        if len(squeezed) != len(shape):
            x = ed.add_before(node, "Reshape", [x, ed.ints("shape", squeezed)], f"{node.name}.squeeze")
        swapped = ed.add_before(node, "Gather", [x, ed.ints("swap_halves", order)], f"{node.name}.swap", axis=-1)
        sign = ed.constant("rope_sign", np.array([-1.0] * half + [1.0] * half, np.float32))
        out = ed.add_before(node, "Mul", [swapped, sign], f"{node.name}.sign")
        if len(squeezed) != len(shape):
            out = ed.add_before(node, "Reshape", [out, ed.ints("shape", list(shape))], f"{node.name}.view")
        ed.replace(node.outputs[0], out)
        ed.note(node, "rotate_half: Gather swapping the halves and a sign Mul (with the Neg and Slices before it)")


def _rotate_half_source(node: ir.Node) -> tuple[ir.Value, int] | None:
    """``(x, d/2)`` if ``node`` is ``Concat(Neg(Slice(x, d/2:)), Slice(x, :d/2))`` along the last axis."""
    if len(node.inputs) != 2 or (negated := node.inputs[0].producer()) is None or negated.op_type != "Neg":
        return None
    second, first = negated.inputs[0].producer(), node.inputs[1].producer()
    if second is None or first is None or second.op_type != "Slice" or first.op_type != "Slice":
        return None
    x = first.inputs[0]
    if second.inputs[0] is not x:
        return None
    d = dims(x)[-1]
    rank = len(dims(x))
    if attribute(node, "axis") % rank != rank - 1 or d % 2:
        return None
    half = d // 2
    if _slice_range(first, rank, d) != (0, half) or _slice_range(second, rank, d) != (half, d):
        return None
    return x, half


def _slice_range(node: ir.Node, rank: int, size: int) -> tuple[int, int] | None:
    """``(start, end)`` of a step-1 Slice of the last axis (clamped to ``size``), else None."""
    args = [values_of(v) if v is not None else None for v in node.inputs[1:]]
    starts, ends = args[0], args[1]
    if starts is None or ends is None or len(starts) != 1:
        return None
    axes = args[2] if len(args) > 2 and args[2] is not None else np.zeros(1, np.int64)
    steps = args[3] if len(args) > 3 and args[3] is not None else np.ones(1, np.int64)
    if int(steps[0]) != 1 or int(axes[0]) % rank != rank - 1:
        return None
    start, end = (int(v) + size if int(v) < 0 else int(v) for v in (starts[0], ends[0]))
    return min(start, size), min(end, size)


def neg_to_mul(ed: Editor) -> None:
    """A ``Neg`` outside rotate_half as ``Mul(x, −1)``."""
    for node in nodes_of(ed.graph, "Neg"):
        if not live(node):
            continue
        minus = ed.constant("minus_one", np.array(-1.0, np.float32))
        ed.replace(node.outputs[0], ed.add_before(node, "Mul", [node.inputs[0], minus], f"{node.name}.mul"))
        ed.note(node, "Mul(x, -1)")


def repeat_kv(ed: Editor) -> None:
    """GQA's ``repeat_kv``: ``Reshape(Expand(Unsqueeze(kv, a), …g…), heads merged)``, which copies each K/V head to
    its ``g`` query heads, as the builder's ``repeat_kv`` mode: one ``Gather`` over the head axis with index
    ``[h // g for h in heads]``. The copy keeps its size, so occupancy still counts it. An ``Expand`` that changes
    no shape is dropped."""
    for node in nodes_of(ed.graph, "Expand"):
        source, out = node.inputs[0], node.outputs[0]
        before, after = dims(source), dims(out)
        if before == after:
            ed.replace(out, source)
            ed.note(node, "expands nothing: dropped")
            continue
        reshape = only_reader(out)
        grown = [axis for axis, (a, b) in enumerate(zip(before, after, strict=False)) if a != b]
        if (
            len(before) != len(after)
            or len(grown) != 1
            or before[grown[0]] != 1
            or grown[0] == 0
            or reshape is None
            or reshape.op_type != "Reshape"
        ):
            raise ed.fail(node, _EXPAND)
        axis, groups = grown[0], after[grown[0]]
        merged = dims(reshape.outputs[0])
        expected = (*after[: axis - 1], after[axis - 1] * groups, *after[axis + 1 :])
        if merged != expected:
            raise ed.fail(node, _EXPAND)
        if before[axis - 1] == 1:
            # One K/V head (multi-query attention): Stream cannot size a Gather's source axis of extent 1, so the
            # copies are a broadcasting Mul by ones, as large as the Gather's and as free of MACs.
            ones = ed.constant(
                "repeat_kv_ones", np.ones([groups if i == axis else 1 for i in range(len(after))], np.float32)
            )
            copies = ed.add_before(node, "Mul", [source, ones], f"{node.name}.repeat_kv")
            gathered = ed.add_before(node, "Reshape", [copies, ed.ints("shape", list(merged))], f"{node.name}.view")
            ed.replace(reshape.outputs[0], gathered)
            ed.note(
                node,
                f"repeat_kv: Mul by ones copying the one K/V head to {merged[axis - 1]} (with the Reshape after it)",
            )
            continue
        # Without size-1 axes, as rotate_half's view: [kv_heads, …] gathered to [heads, …], then the merged view.
        heads = [d for i, d in enumerate(before) if i != axis and (d != 1 or i == axis - 1)]
        head_axis = len([d for d in before[: axis - 1] if d != 1])
        kv = ed.add_before(node, "Reshape", [source, ed.ints("shape", heads)], f"{node.name}.heads")
        index = ed.ints("repeat_kv_index", [head // groups for head in range(merged[axis - 1])])
        copies = ed.add_before(node, "Gather", [kv, index], f"{node.name}.repeat_kv", axis=head_axis)
        gathered = ed.add_before(node, "Reshape", [copies, ed.ints("shape", list(merged))], f"{node.name}.view")
        ed.replace(reshape.outputs[0], gathered)
        ed.note(
            node, f"repeat_kv: Gather of {before[axis - 1]} K/V heads to {merged[axis - 1]} (with the Reshape after it)"
        )


_EXPAND = (
    "repeat_kv, an Expand growing one size-1 axis after the K/V-head axis, read by one Reshape merging the two, or an "
    "Expand that changes no shape"
)


def erf_gelu(ed: Editor) -> None:
    """The exact GELU ``0.5·x·(1 + erf(x/√2))`` as ONNX ``Gelu``: the Erf node, the scaling before it and the
    products after it become one elementwise node. No MACs."""
    for node in nodes_of(ed.graph, "Erf"):
        scaled = node.inputs[0].producer()
        if scaled is None or scaled.op_type not in ("Div", "Mul"):
            raise ed.fail(node, _GELU)
        x = next((v for v in scaled.inputs if v.const_value is None), None)
        end = only_reader(node.outputs[0])
        if x is None or end is None or end.op_type != "Add":
            raise ed.fail(node, _GELU)
        # Follow the single-reader chain of Muls by constants or by x: 0.5·x·(1 + erf) in any association.
        while (nxt := only_reader(end.outputs[0])) is not None and nxt.op_type == "Mul" and _gelu_factor(nxt, x, end):
            end = nxt
        if end.op_type != "Mul":
            raise ed.fail(node, _GELU)
        ed.replace(end.outputs[0], ed.add_before(node, "Gelu", [x], f"{node.name}.gelu"))
        ed.note(node, "exact GELU 0.5·x·(1+erf(x/√2)): Gelu (with the Div/Mul around it)")


_GELU = "the exact GELU 0.5·x·(1 + erf(x/√2)): Erf of x scaled by a constant, then Add 1 and Muls by x and 0.5"


def _gelu_factor(node: ir.Node, x: ir.Value, previous: ir.Node) -> bool:
    other = node.inputs[1] if node.inputs[0] is previous.outputs[0] else node.inputs[0]
    if other is x or other.const_value is not None:
        return True
    producer = other.producer()  # Mul(x, 0.5) computed on the side
    return producer is not None and producer.op_type == "Mul" and x in producer.inputs


def nan_guards(ed: Editor) -> None:
    """``Where(IsNaN(x), c, x)``, the guard torch's scaled-dot-product attention puts after its Softmax (a fully
    masked row): it changes no value of a finite ``x`` and does no MACs, so ``x`` replaces it."""
    for node in nodes_of(ed.graph, "Where"):
        condition, a, b = node.inputs
        test = condition.producer()
        if test is None or test.op_type != "IsNaN":
            continue
        x = test.inputs[0]
        if (a is x and b.const_value is not None) or (b is x and a.const_value is not None):
            ed.replace(node.outputs[0], x)
            ed.note(node, f"NaN guard on {x.name!r} dropped (no MACs)")
