"""Token and position lookups as Stream 2.1.1 takes them: an int32 graph input (it rejects int64 ones) and Gathers
with a one-dimensional index, as the builder's embedding is (``Gather(table, input_ids[L])``)."""

from __future__ import annotations

import onnx_ir as ir

from stream_trapti.importer.graph_edit import Editor, attribute, dims, nodes_of, through_layouts, values_of


def narrow_ids(ed: Editor, roles: dict[str, str]) -> None:
    """Each int64 token-id input ``[1, L]`` becomes an int32 ``[L]``: same element count, and Stream parses it."""
    for value in ed.graph.inputs:
        if roles.get(value.name) == "ids":
            before = dims(value)
            if any(d != 1 for d in before[:-1]):
                raise ed.fail(value.uses()[0].node, "token ids of batch 1, [1, L]")
            value.shape = ir.Shape([before[-1]])
            value.type = ir.TensorType(ir.DataType.INT32)
            for use in value.uses():
                if use.node.op_type != "Gather":
                    raise ed.fail(use.node, "token ids read by the embedding Gather only")
            ed.log.append(f"input {value.name!r}: int64 {list(before)} -> int32 [{before[-1]}]")


def flat_gathers(ed: Editor) -> None:
    """A lookup ``Gather(table, index[1, L])`` (token or learned-position embedding) as ``Gather(table, index[L])``
    and a ``Reshape`` to the ``[1, L, hidden]`` it had: Stream's Gather parser takes a 1-D index."""
    for node in nodes_of(ed.graph, "Gather"):
        table, index = node.inputs
        shape = dims(index)
        if len(shape) < 2 or attribute(node, "axis", 0) != 0:
            continue
        if any(d != 1 for d in shape[:-1]):
            raise ed.fail(node, "a lookup Gather whose index is one row of positions [1, L]")
        values = values_of(index)
        if values is not None:
            flat = ed.ints("positions", values.reshape(-1).tolist())
        elif (source := through_layouts(index)).is_graph_input():
            flat = source  # the token ids (GPT-2 views them as [-1, L] first), which narrow_ids makes 1-D
        else:
            flat = ed.add_before(node, "Reshape", [index, ed.ints("shape", [shape[-1]])], f"{node.name}.flat_index")
        out = node.outputs[0]
        looked_up = ed.add_before(node, "Gather", [table, flat], f"{node.name}.lookup", axis=0)
        ed.replace(
            out, ed.add_before(node, "Reshape", [looked_up, ed.ints("shape", list(dims(out)))], f"{node.name}.view")
        )
        ed.note(node, f"Gather with index [{shape[-1]}] and a Reshape to {list(dims(out))}")
