"""Fix an export's graph inputs for one step: static dimensions, and the inputs that are data rather than model state
(the attention mask and the positions) turned into the constants they are for that step.

Roles are told by element type, rank and name, not by exporter: torch's legacy and dynamo exporters and optimum all
name the inputs ``input_ids``, ``attention_mask``, ``position_ids`` (or ``cache_position``) and
``past_key_values.{i}.key/value`` (or ``past_key_{i}``…), with a batch axis first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from stream_trapti.errors import ConfigError


@dataclass(frozen=True)
class Step:
    """The step an export is imported for: ``seq`` new tokens after ``past`` cached ones (0 for a prefill)."""

    seq: int
    past: int = 0

    def __post_init__(self) -> None:
        if self.seq < 1 or self.past < 0:
            raise ConfigError(f"import needs --seq >= 1 and --past >= 0, got --seq {self.seq} --past {self.past}")

    @property
    def total(self) -> int:
        """Positions the attention mask covers: the past and the new tokens."""
        return self.past + self.seq


def role(value: onnx.ValueInfoProto) -> str:
    """What a graph input holds: ``ids``, ``mask``, ``positions``, ``past`` (a K or V cache), or ``embeds``."""
    name = value.name.lower()
    elem = value.type.tensor_type.elem_type
    rank = len(value.type.tensor_type.shape.dim)
    if elem in (TensorProto.INT64, TensorProto.INT32):
        if "mask" in name:
            return "mask"
        if "position" in name:
            return "positions"
        return "ids"
    if "past" in name or "cache" in name or rank == 4:
        return "past"
    return "embeds"


def fix_inputs(model: onnx.ModelProto, step: Step, source: str) -> dict[str, str]:
    """Give every graph input static dims for ``step`` and replace the mask and position inputs by constants (all
    ones; ``past … past+seq−1``). Returns each remaining input's role. ``source`` names the file in errors. A past
    key/value input of a prefill (``past`` 0, as optimum's with-past exports run one) is empty."""
    graph = model.graph
    roles: dict[str, str] = {}
    kept = []
    for value in graph.input:
        kind = role(value)
        dims = value.type.tensor_type.shape.dim
        if kind in ("mask", "positions"):
            length = step.total if kind == "mask" else step.seq
            shape = [1] * (len(dims) - 1) + [length]
            data = np.ones(shape, np.int64) if kind == "mask" else np.arange(step.past, step.total).reshape(shape)
            elem = value.type.tensor_type.elem_type
            graph.initializer.append(
                numpy_helper.from_array(data.astype(helper.tensor_dtype_to_np_dtype(elem)), value.name)
            )
            continue
        wanted = _dims(kind, len(dims), step)
        for axis, dim in enumerate(dims):
            if wanted[axis] is None:
                if not (dim.HasField("dim_value") and dim.dim_value > 0):
                    raise ConfigError(
                        f"{source}: input {value.name!r} has a dynamic dimension at axis {axis} that is neither the "
                        "batch nor a sequence axis"
                    )
                continue
            if dim.HasField("dim_value") and dim.dim_value > 0 and dim.dim_value != wanted[axis]:
                raise ConfigError(
                    f"{source}: input {value.name!r} has static size {dim.dim_value} at axis {axis}, but the step "
                    f"(--seq {step.seq} --past {step.past}) needs {wanted[axis]}; export with dynamic axes"
                )
            dim.Clear()
            dim.dim_value = wanted[axis]
        roles[value.name] = kind
        kept.append(value)
    if step.past and "past" not in roles.values():
        raise ConfigError(f"{source}: --past {step.past} given, but the export has no past key/value inputs (prefill)")
    del graph.input[:]
    graph.input.extend(kept)
    # Dims inferred for the export's symbolic shapes are stale: shape inference fills them again.
    del graph.value_info[:]
    for output in graph.output:
        output.type.tensor_type.ClearField("shape")
    return roles


def _dims(kind: str, rank: int, step: Step) -> list[int | None]:
    """The size of each axis of an input of ``kind`` (None: keep the export's static size)."""
    if kind == "ids":
        return [1] * (rank - 1) + [step.seq]
    if kind == "embeds":  # [batch, seq, hidden]
        return [1, step.seq, *([None] * (rank - 2))]
    # A K/V cache [batch, heads, past, head_dim]: the past length is the one dynamic axis after the batch.
    return [1, None, step.past, None] if rank == 4 else [1, *([None] * (rank - 1))]
