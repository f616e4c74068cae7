"""Fixed Stream mappings for decoder blocks on the TRAPTI-style accelerator (hardware/trapti_edge*.yaml).

A fixed mapping replaces Stream's generic mapping generator with a hand-written policy, stated once here:

- Cores: every contraction (MatMul, Gemm, ...) runs on the systolic-array cores, split evenly over them
  (``inter_core_tiling``) along its largest even parallel dimension; every other operator runs on the vector core.
  A contraction with no even parallel dimension (GPT-2's 25 heads and P+1 cached keys in decode) runs on one array.
- Fused groups: contiguous runs of Stream's dataflow order. A group ends after a contraction unless the next
  contraction reads one of its inputs (Q/K/V or gate/up projections stay together) or both are attention
  contractions (scores and context stay together with their softmax). So a block becomes
  norm + QKV projections / attention core per head tile / output projection / norm + MLP up / MLP down / residual,
  and element-wise operators join the contraction they feed.
- Intra-core tiling: Stream's own capacity tiler (the one its generic generator uses) picks the steady-state tiles
  of each group so that the group fits the shared SRAM, given the cores and splits above. Its plans are checked once
  more with accumulated outputs held beside the other tiles, as Stream's allocator holds them; a group no plan fits
  is split before its second contraction or after its element-wise prefix.

That is the ``operator`` scope, the one the committed mapping YAMLs hold. The fused scopes of
:mod:`stream_trapti.fusion` (``attention``, ``layer``) group whole sub-blocks or layers instead, split every
contraction of a group on its tokens (or run it on one array), and tile with more room (:func:`_fused_tiling`); they
are built inside Stream's pipeline by :func:`generate_mapping`, not written as YAML.

The mapping is built from the ONNX file itself (node names, op types and shapes as Stream parses them), so it works
for any workload our builder writes, at any sequence length, past length and layer count.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path
from typing import Any, Literal

import yaml
from stream.datatypes import LayerDim
from stream.frontends import load_workload
from stream.hardware.architecture.accelerator import Accelerator
from stream.hardware.architecture.core import Core
from stream.mapping.capacity_tiler import CapacityTiler
from stream.parser.mapping_validator import MappingValidator
from stream.stages.parsing.accelerator_parser import parse_accelerator
from stream.workload.affine_access import map_dim_positions
from stream.workload.iterator_type import IteratorType, derive_iterator_types, nonlinear_reduction_dims, sequential_dims
from stream.workload.node import ComputationNode, InEdge
from stream.workload.workload import Workload, determine_fusion_cut_points

from stream_trapti.atomic import atomic_write
from stream_trapti.errors import SolveError
from stream_trapti.tracker import stream_internals as internals
from stream_trapti.tracker.group import on_chip_memories

FusionScope = Literal["operator", "attention", "layer"]
"""What our generator fuses: each operator, attention block or decoder layer (:mod:`stream_trapti.fusion`)."""

logger = logging.getLogger(__name__)

# Operator types that are contractions and therefore belong on the systolic arrays.
CONTRACTION_TYPES: frozenset[str] = frozenset({"MatMul", "Gemm", "Einsum", "Conv"})

SCOPE_BLOCKS: dict[str, re.Pattern[str]] = {
    # The attention sub-block: its norm, the attention operators and the residual add after the output projection.
    "attention": re.compile(r"^(layer\d+)\.attn(?:_norm|\.|_residual$)"),
    "layer": re.compile(r"^(layer\d+)\."),
}
"""Per fused scope, the node names (:mod:`stream_trapti.workloads.builder`'s) of one block, which it fuses; the first
group is the block's name."""


@dataclass(frozen=True)
class TraptiCores:
    """The compute cores a TRAPTI-style accelerator offers a fixed mapping: the arrays and the vector core."""

    arrays: tuple[int, ...]
    vector: int


@dataclass(frozen=True)
class LayerPlacement:
    """Where one computation node runs: its cores and, on several cores, the node dimension split over them."""

    name: str
    cores: tuple[int, ...]
    split_dim: int | None  # node-relative dimension position, None on a single core


def find_cores(accelerator: Accelerator) -> TraptiCores:
    """The array cores (those that execute MatMul) and the single vector core (executes Softmax) of ``accelerator``.

    Raises ValueError when the accelerator does not have that shape, since the mapping policy assumes it."""
    compute = [c for c in accelerator.core_list if c.type == "compute"]
    arrays = tuple(sorted(c.id for c in compute if _serves(c, "MatMul")))
    vectors = sorted(c.id for c in compute if _serves(c, "Softmax") and c.id not in arrays)
    if not arrays or len(vectors) != 1:
        raise ValueError(
            f"{accelerator.name}: a TRAPTI fixed mapping needs array cores listing MatMul in operator_types and "
            f"exactly one other core listing Softmax; found arrays {list(arrays)} and vector cores {vectors}."
        )
    return TraptiCores(arrays=arrays, vector=vectors[0])


def _serves(core: Core, op_type: str) -> bool:
    served = getattr(core, "operator_types", None)
    return served is not None and op_type in served


def weight_names(workload: Workload) -> frozenset[str]:
    """Names of the tensors Stream's parsed workload marks as weights (``InEdge`` with ``parameter=True``).

    Taken from Stream's own graph rather than from the ONNX initializer names: Stream renames or re-routes some
    weights (DeepSeek's o_proj weight reaches it under another name), so an initializer-name match misses them."""
    return frozenset(t.name for n in workload.nodes if isinstance(n, InEdge) and n.parameter for t in n.outputs)


def place_layers(workload: Workload, cores: TraptiCores, fused: dict[str, int] | None = None) -> list[LayerPlacement]:
    """Cores and inter-core split of every computation node, in Stream's dataflow order. ``fused`` gives, for the
    nodes of fused groups, the node-relative position of the group's token dim (-1: none the arrays divide): there a
    contraction is split on the tokens or runs on one array."""
    placements: list[LayerPlacement] = []
    for cn in _computation_nodes(workload):
        if cn.type not in CONTRACTION_TYPES:
            placements.append(LayerPlacement(cn.name, (cores.vector,), None))
            continue
        if fused is not None and cn.name in fused:
            split_dim = fused[cn.name] if fused[cn.name] >= 0 else None
        else:
            split_dim = _split_dim(workload, cn, len(cores.arrays))
        if split_dim is None:
            placements.append(LayerPlacement(cn.name, cores.arrays[:1], None))
        else:
            placements.append(LayerPlacement(cn.name, cores.arrays, split_dim))
    return placements


def _computation_nodes(workload: Workload) -> list[ComputationNode]:
    return [n for n in workload.dataflow_sort() if isinstance(n, ComputationNode)]


def _split_dim(workload: Workload, cn: ComputationNode, n_cores: int) -> int | None:
    """The largest parallel dimension ``n_cores`` divides (ties: the innermost), so each array gets an equal share
    without partial sums to combine across cores; None if there is none."""
    types = derive_iterator_types(cn)
    dims = workload.get_dims(cn)
    candidates = [
        (workload.get_dimension_size(dim), pos)
        for pos, dim in enumerate(dims)
        if types.get(pos) == IteratorType.PARALLEL and workload.get_dimension_size(dim) % n_cores == 0
    ]
    return max(candidates)[1] if candidates and n_cores > 1 else None


def fused_groups(
    workload: Workload, weights: frozenset[str], scope: FusionScope = "operator"
) -> list[list[ComputationNode]]:
    """Cut the dataflow order into fused groups. ``operator``: a group ends after a contraction unless the next
    contraction reads one of its inputs or both are attention contractions (no weight operand). ``attention`` and
    ``layer``: the nodes of each attention sub-block, or of each decoder layer (by the builder's node names,
    :data:`SCOPE_BLOCKS`), form one group, the others are grouped as ``operator``. A FusionEdge (a layout Stream could
    not fold) ends a group in every scope: Stream always cuts there."""
    nodes = _computation_nodes(workload)
    # A FusionEdge (a layout op Stream could not fold, such as GQA's K/V head repeat) always splits Stream's groups.
    segment = {cn.name: i for i, sub in enumerate(workload.split_fusion_groups()) for cn in sub.get_computation_nodes()}
    operator = _start_at_slices(_operator_groups(nodes, segment, weights))
    if scope == "operator":
        return operator
    group_of = {cn.name: i for i, group in enumerate(operator) for cn in group}

    def key(cn: ComputationNode) -> tuple:
        block = SCOPE_BLOCKS[scope].match(cn.name)
        return ("block", block.group(1), segment[cn.name]) if block else ("operator", group_of[cn.name])

    return _start_at_slices(_end_at_shared_outputs([list(run) for _, run in groupby(nodes, key)]))


def _start_at_slices(groups: list[list[ComputationNode]]) -> list[list[ComputationNode]]:
    """Start a group at every Slice of rows (the LM head's last position): inside the group of its input's producer
    Stream 2.1.1's lowering gives that input two iteration spaces and fails (``update_tensor_ssis`` in
    ``stream/allocation/lowering.py``). Start one too at a Slice of columns (GPT-2's Q/K/V split of its fused
    projection) whose input a contraction's group produces: the Slice ties the projection's output dimension to its
    own, so Stream's steady state would compute the projection over a third of its columns (the tracker's check of
    Stream's ``total_mac_ops`` catches it)."""
    result: list[list[ComputationNode]] = []
    for group in groups:
        result.append([])
        for cn in group:
            rows = cn.type == "Slice" and cn.inputs[0].shape[:1] != cn.outputs[0].shape[:1]
            columns = cn.type == "Slice" and not rows and any(n.type in CONTRACTION_TYPES for n in result[-1])
            if (rows and result[-1]) or (columns and cn.inputs[0].name in _outputs(result[-1])):
                result.append([])
            result[-1].append(cn)
    return result


def _outputs(nodes: list[ComputationNode]) -> set[str]:
    return {t.name for cn in nodes for t in cn.outputs}


def _operator_groups(
    nodes: list[ComputationNode], segment: dict[str, int], weights: frozenset[str]
) -> list[list[ComputationNode]]:
    """The ``operator`` scope of :func:`fused_groups`."""
    contractions = [cn for cn in nodes if cn.type in CONTRACTION_TYPES]
    following = dict(zip(contractions, contractions[1:], strict=False))
    groups: list[list[ComputationNode]] = [[]]
    for cn in nodes:
        if groups[-1] and _boundary(groups[-1][-1], cn, segment):
            groups.append([])
        groups[-1].append(cn)
        nxt = following.get(cn)
        if nxt is None:
            continue
        shares_input = bool({t.name for t in cn.inputs} & {t.name for t in nxt.inputs})
        both_attention = not _reads_weight(cn, weights) and not _reads_weight(nxt, weights)
        if not shares_input and not both_attention:
            groups.append([])
    return _end_at_shared_outputs([g for g in groups if g])


def _boundary(last: ComputationNode, cn: ComputationNode, segment: dict[str, int]) -> bool:
    """Whether a group must end between ``last`` and ``cn``: at a FusionEdge (Stream cuts there), and where a decoder
    layer ends (the layers of an inference are solved once and repeated by name, so a group holding one layer's end
    and the LM head would be repeated with it)."""
    return segment[last.name] != segment[cn.name] or _layer_of(last.name) != _layer_of(cn.name)


def _layer_of(name: str) -> str | None:
    """The decoder layer a node belongs to (``layer3``), by the builder's names; None outside the layers."""
    match = SCOPE_BLOCKS["layer"].match(name)
    return match.group(1) if match else None


def _end_at_shared_outputs(groups: list[list[ComputationNode]]) -> list[list[ComputationNode]]:
    """End a group right after any node whose output both leaves the group and is read inside it (a residual
    stream read by the next norm and by the next residual add): Stream 2.1.1's lowering sends a group output to
    exactly one destination (``add_two_transfer_nodes_for_constant_output_transfer``)."""
    group_of = {cn: i for i, g in enumerate(groups) for cn in g}
    readers: dict[str, list[ComputationNode]] = {}
    for cn in group_of:
        for t in cn.inputs:
            readers.setdefault(t.name, []).append(cn)
    result: list[list[ComputationNode]] = []
    for i, group in enumerate(groups):
        current: list[ComputationNode] = []
        for cn in group:
            current.append(cn)
            users = [r for t in cn.outputs for r in readers.get(t.name, [])]
            inside = any(group_of[r] == i for r in users)
            outside = any(group_of[r] != i for r in users)
            if inside and outside and cn is not group[-1]:
                result.append(current)
                current = []
        result.append(current)
    return result


def _reads_weight(cn: ComputationNode, weights: frozenset[str]) -> bool:
    return any(t.name in weights for t in cn.inputs)


@dataclass(frozen=True)
class _GroupSetup:
    """A group as Stream's capacity tiler takes it: its sub-workload and nodes, each node's cores, the splits over
    them (per unique dim and per node) and the dims a tile must keep whole."""

    sub: Workload
    cns: tuple[ComputationNode, ...]
    cores_per_node: dict[ComputationNode, list[Core]]
    unroll: dict[LayerDim, int]
    node_unroll: dict[ComputationNode, dict[LayerDim, int]]
    protected: set[LayerDim]

    @classmethod
    def of(
        cls,
        workload: Workload,
        accelerator: Accelerator,
        group: list[ComputationNode],
        placements: dict[str, LayerPlacement],
    ) -> _GroupSetup:
        sub = _sub_workload(workload, group)
        cns = tuple(sub.get_computation_nodes())
        cores_per_node = {cn: [accelerator.get_core(i) for i in placements[cn.name].cores] for cn in cns}
        node_unroll: dict[ComputationNode, dict[LayerDim, int]] = {}
        unroll: dict[LayerDim, int] = {}
        for cn in cns:
            placement = placements[cn.name]
            if placement.split_dim is None:
                continue
            dim = sub.get_dims(cn)[placement.split_dim]
            node_unroll[cn] = {dim: len(placement.cores)}
            unroll[dim] = max(unroll.get(dim, 1), len(placement.cores))
        # Stream never tiles a softmax/layernorm reduction or a recurrence carry: a tile must see the whole row.
        protected = {sub.get_dims(cn)[p] for cn in cns for p in nonlinear_reduction_dims(cn) | sequential_dims(cn)}
        return cls(sub, cns, cores_per_node, unroll, node_unroll, protected)


def intra_core_tiling(
    workload: Workload,
    accelerator: Accelerator,
    group: list[ComputationNode],
    placements: dict[str, LayerPlacement],
    weights: frozenset[str],
    seed: list[dict[str, Any]] | None = None,
    tiler_class: type[CapacityTiler] = CapacityTiler,
) -> list[dict[str, Any]]:
    """Steady-state tiles of one fused group, from Stream's capacity tiler (``tiler_class``) so that the group fits its
    memories; ``seed`` is the tiling the tiler starts from (default: one tile for the whole group)."""
    g = _GroupSetup.of(workload, accelerator, group, placements)
    sub, cns, cores_per_node, unroll, node_unroll, protected = (
        g.sub,
        g.cns,
        g.cores_per_node,
        g.unroll,
        g.node_unroll,
        g.protected,
    )
    whole = seed or _whole_group_tiling(sub, cns, unroll)
    tiler = tiler_class(sub, accelerator)
    # Stream's tiler does not count weight refetches: tiling the token axis of a projection streams all its weights
    # from DRAM once per token tile. Keep the token axis whole where the group still fits, tiling the weights instead.
    # A plan whose accumulators do not fit beside the rest of the group is no fit either (see _accumulators_fit).
    tiling = None
    for keep_whole in (protected | _token_dims(sub, cns, weights), protected):
        tiling = tiler.plan(cns, cores_per_node, unroll, keep_whole, whole, node_unroll)
        if tiling is not None and _accumulators_fit(tiler, cores_per_node, unroll, keep_whole, node_unroll, tiling):
            break
        tiling = None
    if tiling is None:
        raise ValueError(
            f"No intra-core tiling fits fused group {[cn.name for cn in cns]} into {accelerator.name}'s memories."
        )
    return tiling or whole


def _accumulators_fit(
    tiler: CapacityTiler,
    cores_per_node: dict[ComputationNode, list[Core]],
    unroll: dict[LayerDim, int],
    protected: set[LayerDim],
    node_unroll: dict[ComputationNode, dict[LayerDim, int]],
    tiling: list[dict[str, Any]],
) -> bool:
    """Whether the group still fits its memories with ``tiling`` once a tiled reduction loop outside tiled output loops
    keeps its outputs resident along those loops. Stream's tiler checks these accumulators against the budget alone,
    without the operand tiles resident beside them, but Stream's allocator has to hold both at once (their reuse is
    forced to the reduction's level): DeepSeek's MLP gate/up projections at L = 128 then need more than the shared SRAM
    and the allocation MILP is infeasible."""
    cns = tuple(cores_per_node)
    resident, order = _plan_tiles(tiler.sub_workload, cns, unroll, protected, tiling)
    accumulators, inside = _accumulators(tiler.sub_workload, cns, order)
    if not accumulators:
        return True
    tiles = _resident_tiles(tiler, cores_per_node, unroll, node_unroll, resident, accumulators, inside)
    bits = {memory: sum(held.values()) for memory, held in tiles.items()}
    # The memories the group's cores use, with their capacities, as the tiler sees them.
    capacities = {
        tiler.accelerator.memory_of(core).id: core.get_memory_capacity()
        for cn in cns
        for core in cores_per_node.get(cn, [])
    }
    return all(bits.get(memory, 0) <= capacity for memory, capacity in capacities.items())


def _plan_tiles(
    sub: Workload,
    cns: tuple[ComputationNode, ...],
    unroll: dict[LayerDim, int],
    protected: set[LayerDim],
    tiling: list[dict[str, Any]],
) -> tuple[dict[LayerDim, int], list[LayerDim]]:
    """A tiler plan read back in leading dims: the per-core size every dim has in one tile, and the tiled dims,
    innermost steady-state loop first (the plan's order)."""
    lead = sub.leading_dim
    unroll_lead = {lead(d)[0]: f for d, f in unroll.items()}
    protected_lead = {lead(d)[0] for d in protected}
    resident: dict[LayerDim, int] = {}
    for dim in dict.fromkeys(lead(d)[0] for cn in cns for d in sub.get_dims(cn)):
        full, factor = sub.get_dimension_size(dim), unroll_lead.get(dim, 1)
        size = full // factor if factor > 1 and full % factor == 0 else full
        if dim not in protected_lead and size > 1:
            resident[dim] = size
    by_name = {cn.name: cn for cn in cns}
    order: list[LayerDim] = []
    for entry in tiling:
        node_name, _, pos = str(entry["dim"]).rpartition(".D")
        dim, coefficient = lead(sub.get_dims(by_name[node_name])[int(pos)])
        resident[dim] = int(entry["tile"]) // abs(coefficient)
        order.append(dim)
    return resident, order


def _accumulators(
    sub: Workload, cns: tuple[ComputationNode, ...], order: list[LayerDim]
) -> tuple[tuple[ComputationNode, ...], frozenset[LayerDim]]:
    """The nodes that reduce over the outermost tiled reduction loop while tiled output loops run inside it, and
    those inner output dims (their outputs stay whole along them); no nodes when there is no such loop nest."""
    lead = sub.leading_dim
    reduced_by = {
        cn: {
            lead(dims[p])[0]
            for p, kind in derive_iterator_types(cn).items()
            if kind != IteratorType.PARALLEL and p < len(dims)
        }
        for cn in cns
        for dims in [sub.get_dims(cn)]
    }
    reductions = set().union(*reduced_by.values())
    outer = max((i for i, d in enumerate(order) if d in reductions), default=0)
    inside = frozenset(d for d in order[:outer] if d not in reductions)
    return tuple(cn for cn in cns if inside and order[outer] in reduced_by[cn]), inside


def _resident_tiles(
    tiler: CapacityTiler,
    cores_per_node: dict[ComputationNode, list[Core]],
    unroll: dict[LayerDim, int],
    node_unroll: dict[ComputationNode, dict[LayerDim, int]],
    resident: dict[LayerDim, int],
    accumulators: tuple[ComputationNode, ...],
    inside: frozenset[LayerDim],
) -> dict[int, dict[tuple, int]]:
    """Bits each memory holds at once, per tile (keyed by its tensor's name first): every tile as the tiler counts it
    (double-buffered where a loop steps it) but the accumulators' outputs whole along ``inside``, and each tile once
    per memory where cores sharing that memory hold the same data, as Stream's allocator counts it."""
    sub = tiler.sub_workload
    lead = sub.leading_dim
    unroll_lead = {lead(d)[0]: f for d, f in unroll.items()}
    full = {dim: sub.get_dimension_size(dim) for dim in resident}
    stepped = {dim for dim, tile in resident.items() if tile * unroll_lead.get(dim, 1) < full[dim]}
    whole = {dim: full[dim] // unroll_lead.get(dim, 1) for dim in inside}
    produced = {t for cn in cores_per_node for t in cn.outputs}
    tiles: dict[int, dict[tuple, int]] = {}
    for cn, cores in cores_per_node.items():
        dims = sub.get_dims(cn)
        split = {lead(d)[0] for d in node_unroll.get(cn, {})}
        for t in dict.fromkeys(cn.tensors):
            kept = cn in accumulators and t in cn.outputs
            extents = resident | whole if kept else resident
            sizes = internals.tiler_node_sizes(tiler, cn, cores_per_node, unroll, extents, node_unroll)
            indexed = {lead(dims[p])[0] for p in map_dim_positions(cn.get_mapping(t))}
            buffers = 1 if kept or not indexed & stepped else 2
            shape = tuple(sub.get_tensor_shape_with_dimension_sizes(t, sizes, cn))
            bits = buffers * math.prod(shape) * t.operand_type.bitwidth
            for i, core in enumerate(cores):
                part = i if indexed & split else None
                key = (t.name, shape, part) if t in produced else (t.name, cn.name, shape, part)
                held = tiles.setdefault(tiler.accelerator.memory_of(core).id, {})
                held[key] = max(bits, held.get(key, 0))
    return tiles


def _token_dims(sub: Workload, cns: tuple[ComputationNode, ...], weights: frozenset[str]) -> set[LayerDim]:
    """Unique dims along which the group's weight-reading nodes index an activation but no weight: the tokens."""
    tokens: set[LayerDim] = set()
    for cn in cns:
        if not _reads_weight(cn, weights):
            continue
        dims = sub.get_dims(cn)
        weight_positions = set().union(*(map_dim_positions(cn.get_mapping(t)) for t in cn.inputs if t.name in weights))
        output_positions = set().union(*(map_dim_positions(cn.get_mapping(t)) for t in cn.outputs))
        tokens |= {sub.leading_dim(dims[p])[0] for p in output_positions - weight_positions}
    return tokens


def _sub_workload(workload: Workload, group: list[ComputationNode]) -> Workload:
    """The group as Stream will see it: cut out of the full workload at the group's boundaries (and at any
    FusionEdge, which Stream always cuts at)."""
    nodes = _computation_nodes(workload)
    first = nodes.index(group[0])
    cuts = [nodes[first - 1].name] if first > 0 else []
    cuts += [group[-1].name] if group[-1] is not nodes[-1] else []
    for sub in workload.split_fusion_groups(cut_points=cuts):
        if group[0].name in {cn.name for cn in sub.get_computation_nodes()}:
            return sub
    raise ValueError(f"Stream's split has no group starting at {group[0].name}")


def _whole_group_tiling(sub: Workload, cns: tuple[ComputationNode, ...], unroll: dict[LayerDim, int]) -> list[dict]:
    """One steady-state tile for the whole group: the first node's first dimension at its per-core extent."""
    cn = cns[0]
    dim = sub.get_dims(cn)[0]
    size = sub.get_dimension_size(dim)
    factor = unroll.get(dim, 1)
    tile = size // factor if factor > 1 and size % factor == 0 else size
    return [{"dim": f"{cn.name}.D0", "tile": tile}]


def build_mapping(onnx_path: str | Path, hardware: str | Path | Accelerator) -> dict[str, Any]:
    """The fixed mapping of the ONNX workload on ``hardware`` as a Stream 2.1.1 mapping dict (``layers``,
    ``fused_groups``), validated by Stream's MappingValidator: the ``operator`` scope, whose groups Stream's
    fixed-mapping stage keeps (checked here), written as a mapping YAML."""
    accelerator = hardware if isinstance(hardware, Accelerator) else parse_accelerator(str(hardware))
    workload = load_workload(str(onnx_path))
    groups, mapping = generate_mapping(workload, accelerator, "operator")
    _check_grouping_is_used(workload, groups)
    return mapping


def generate_mapping(
    workload: Workload, accelerator: Accelerator, scope: FusionScope, retry: TokenRetry | None = None
) -> tuple[list[list[str]], dict[str, Any]]:
    """The fused groups (node names, in order) of ``workload`` in ``scope`` and its mapping on ``accelerator`` as a
    Stream 2.1.1 mapping dict, validated by Stream's MappingValidator. In the fused scopes a group that no tiling fits
    is an error saying what it holds (:func:`cannot_fit`), and ``retry`` (after Stream's allocation rejected the
    last mapping) cuts the tokens of the groups tiled on them finer (:func:`_token_tiling`); in ``operator`` a group
    no tiling fits is split."""
    cores = find_cores(accelerator)
    weights = weight_names(workload)
    groups = fused_groups(workload, weights, scope)
    fused = None if scope == "operator" else _token_splits(workload, groups, weights, len(cores.arrays))
    placements = {p.name: p for p in place_layers(workload, cores, fused)}
    token_tiled = False
    if scope == "operator":
        groups, tilings = _tile_groups(workload, accelerator, groups, placements, weights)
    else:
        fused_tilings = [
            _fused_tiling(workload, accelerator, group, placements, weights, scope, retry) for group in groups
        ]
        tilings = [tiling for tiling, _ in fused_tilings]
        token_tiled = any(cut for _, cut in fused_tilings)
    if retry is not None and not token_tiled:
        raise FusionError(f"fusion {scope!r}: no group is cut on its tokens, and {retry.rejected}")

    layers = [
        {
            "name": p.name,
            "core_allocation": [list(p.cores)],
            "inter_core_tiling": [] if p.split_dim is None else [[{"dim": f"D{p.split_dim}", "split": len(p.cores)}]],
        }
        for p in placements.values()
    ]
    groups_data = [
        {
            "name": f"group_{i}",
            "layers": [cn.name for cn in group],
            "intra_core_tiling": tiling,
        }
        for i, (group, tiling) in enumerate(zip(groups, tilings, strict=True))
    ]
    mapping = {"layers": layers, "fused_groups": groups_data}
    validator = MappingValidator(mapping)
    if not validator.validate():
        raise ValueError(f"Stream rejects the generated mapping: {validator.errors}")
    return [[cn.name for cn in group] for group in groups], mapping


def _token_splits(
    workload: Workload, groups: list[list[ComputationNode]], weights: frozenset[str], n_cores: int
) -> dict[str, int]:
    """Per contraction of a fused group, the node-relative position of the group's token dim, where the arrays split
    it (-1 where they cannot: one array). Inside a group Stream ties the dims of its nodes together, so a split on
    another dim (GPT-2's 4800 QKV outputs) meets the 25 heads it is tied to and cannot be cut evenly; the tokens are
    the one dim every node of a decoder layer shares (in decode there is one, and every contraction takes one array)."""
    splits: dict[str, int] = {}
    for group in groups:
        if len(group) == 1:
            continue
        sub = _sub_workload(workload, group)
        contractions = tuple(cn for cn in sub.get_computation_nodes() if cn.type in CONTRACTION_TYPES)
        # The projections' tokens: an element-wise constant (the attention scale) indexes no token either.
        tokens = _token_dims(sub, contractions, weights)
        for cn in contractions:
            types = derive_iterator_types(cn)
            dims = sub.get_dims(cn)
            positions = [
                pos
                for pos, dim in enumerate(dims)
                if types.get(pos) == IteratorType.PARALLEL
                and sub.leading_dim(dim)[0] in tokens
                and sub.get_dimension_size(dim) % n_cores == 0
            ]
            splits[cn.name] = positions[0] if positions and n_cores > 1 else -1
    return splits


@dataclass(frozen=True)
class TokenRetry:
    """A fused solve again after Stream's allocation rejected its mapping (``rejected``, its one line): the groups
    tiled on their tokens take the ``finer``-th token tile below their first choice."""

    finer: int
    rejected: str

    @classmethod
    def after(cls, last: TokenRetry | None, rejected: str) -> TokenRetry:
        """The retry after ``last`` (None: the first solve) was rejected."""
        return cls(1 if last is None else last.finer + 1, rejected)


_TILER_VERDICTS: dict[tuple, list[dict[str, Any]] | None] = {}
"""Stream's tiler's tiling per fused group and accelerator (None: none found), kept for the process: a retry with
finer tokens (:class:`TokenRetry`) does not search again, which takes minutes for a full-size layer."""


def _fused_tiling(
    workload: Workload,
    accelerator: Accelerator,
    group: list[ComputationNode],
    placements: dict[str, LayerPlacement],
    weights: frozenset[str],
    scope: FusionScope,
    retry: TokenRetry | None = None,
) -> tuple[list[dict[str, Any]], bool]:
    """:func:`intra_core_tiling` of a group of a fused scope, or a :class:`FusionError` saying why none fits, and
    whether the tiling is :func:`_token_tiling`'s (a retry can cut it finer).

    Stream's tiler shrinks first the dim that keeps its arrays fullest, so in a layer it cuts the MLP's 6400 outputs
    until the tiles it may take (1024) leave none for the attention heads, and finds nothing. Where it does, it starts
    again from one attention head per tile (the depth-first order of a fused layer: each head, then the MLP in
    slices)."""
    g = _GroupSetup.of(workload, accelerator, group, placements)
    head = _one_head(g, weights)
    key = _verdict_key(workload, accelerator, group)
    if key not in _TILER_VERDICTS:
        _TILER_VERDICTS[key] = None
        for seed in (None, head):
            try:
                tiling = intra_core_tiling(workload, accelerator, group, placements, weights, seed, DepthFirstTiler)
            except ValueError:
                continue
            _TILER_VERDICTS[key] = tiling
            break
    if (found := _TILER_VERDICTS[key]) is not None:
        return found, False
    reason, finest_fits = cannot_fit(g, accelerator, group, scope)
    if head is None or not finest_fits:
        raise FusionError(reason)
    logger.info("%s; tiling one head and one array-wide MLP slice per tile instead", reason)
    base = [*head, *_array_slices(g, weights, head)]
    return _token_tiling(g, accelerator, group, weights, base, scope, retry)


def _verdict_key(workload: Workload, accelerator: Accelerator, group: list[ComputationNode]) -> tuple:
    """What Stream's tiler decides a group's tiling from: its nodes with their shapes, and the cores' memories and
    arrays."""
    nodes = tuple((cn.name, tuple(workload.get_dimension_size(d) for d in workload.get_dims(cn))) for cn in group)
    cores = tuple(
        (core.id, core.get_memory_capacity(), tuple(sorted(core.operational_array.dimension_sizes.items())))
        for core in accelerator.core_list
        if core.type == "compute"
    )
    return accelerator.name, cores, nodes


def _token_tiling(
    g: _GroupSetup,
    accelerator: Accelerator,
    group: list[ComputationNode],
    weights: frozenset[str],
    tiling: list[dict[str, Any]],
    scope: FusionScope,
    retry: TokenRetry | None,
) -> tuple[list[dict[str, Any]], bool]:
    """``tiling`` (one head and one MLP slice per tile) of ``group`` (set up as ``g``) with the group's tokens cut as
    its outermost loop, into as few tiles as Stream's allocation may take, and whether the group has tokens to cut; a
    :class:`FusionError` when one token per tile cannot fit.

    The tokens are the rows of the projections and the MLP and the queries of the attention: Stream ties them
    together in a group, apart from the keys, which the softmax reduces over and a tile holds whole (its K and V;
    ``Workload._held_axes`` keeps the rows of the attention's input apart where they reach the scores as both). The
    first choice is the fewest token tiles (each streams the group's weights from DRAM again) whose tensors pass
    Stream's capacity screen (``capacity_screen`` in ``stream/opt/allocation/constraint_optimization/families/
    memory.py``: what the group's nodes produce, each at its tile, double-buffered where a loop steps it, all at once)
    within the tiler's budget. The screen is a lower bound: what the allocation also holds (the weights, K and V it
    reads, the copies it moves) is its own to place, so where it rejects the mapping, the solve asks again (``retry``)
    and each retry takes the next finer cut."""
    tiler = DepthFirstTiler(g.sub, accelerator)
    lead = g.sub.leading_dim
    contractions = tuple(cn for cn in g.cns if cn.type in CONTRACTION_TYPES)
    tokens = _token_dims(g.sub, contractions, weights) - {lead(d)[0] for d in g.protected}
    positions = [
        (cn.name, p, lead(dims[p])[0])
        for cn in contractions
        for dims in [g.sub.get_dims(cn)]
        for p in range(len(dims))
        if lead(dims[p])[1] == 1 and lead(dims[p])[0] in tokens
    ]
    if not positions:
        return tiling, False
    # The dim most of the group's contractions index (the queries and the MLP's rows, not a head's keys).
    count = {dim: sum(dim == d for _, _, d in positions) for _, _, dim in positions}
    node, pos, dim = max(positions, key=lambda item: count[item[2]])
    per_core = g.sub.get_dimension_size(dim) // {lead(d)[0]: f for d, f in g.unroll.items()}.get(dim, 1)
    cuts = [t for t in range(per_core, 0, -1) if per_core % t == 0]
    produced = {t.name for cn in g.cns for t in cn.outputs}
    first = None

    def cut_at(tile: int) -> list[dict[str, Any]]:
        return [*tiling, {"dim": f"{node}.D{pos}", "tile": tile}] if tile < per_core else tiling

    for i, tile in enumerate(cuts):
        resident, _ = _plan_tiles(g.sub, g.cns, g.unroll, g.protected, cut_at(tile))
        memory, budget, held = _held_bytes(g, tiler, resident)
        pinned = {name: size for name, size in held.items() if name in produced}
        if sum(pinned.values()) <= budget:
            first = i
            break
    if first is None:
        raise FusionError(
            f"{_where(scope, group)} fits no tiling in {memory} ({budget:,} B usable): at one token, one head and one "
            f"MLP slice per tile the tensors it produces hold {sum(pinned.values()):,} B, largest {_largest(pinned)}"
        )
    finer = first + (retry.finer if retry else 0)
    if finer >= len(cuts):
        raise FusionError(
            f"{_where(scope, group)} fits no token tiling in {memory}: Stream's allocation rejects every cut from "
            f"{cuts[first]} to 1 token per array (at 1: {retry.rejected if retry else ''})"
        )
    tile = cuts[finer]
    logger.info("fusion %r: %d of %d tokens per array in a tile", scope, tile, per_core)
    return cut_at(tile), True


def _held_bytes(g: _GroupSetup, tiler: CapacityTiler, resident: dict[LayerDim, int]) -> tuple[str, int, dict[str, int]]:
    """The memory holding most of ``g``'s tiles when its cores hold ``resident`` of each dim (every tile at once,
    double-buffered where a loop steps it): its name, its usable bytes as the tiler budgets them, and its bytes per
    tensor."""
    tiles = _resident_tiles(tiler, g.cores_per_node, g.unroll, g.node_unroll, resident, (), frozenset())
    memory, held = max(tiles.items(), key=lambda item: sum(item[1].values()))
    by_tensor: dict[str, int] = {}
    for key, bits in held.items():
        by_tensor[key[0]] = by_tensor.get(key[0], 0) + bits // 8
    budget = int(tiler.accelerator.get_core(memory).get_memory_capacity() * tiler.fill_fraction) // 8
    names = {owner.id: info.name for owner, info in on_chip_memories(tiler.accelerator)}
    return names[memory], budget, by_tensor


def _where(scope: FusionScope, group: list[ComputationNode]) -> str:
    """A fused group as its one-line errors name it."""
    return f"fusion {scope!r}: group {group[0].name} … {group[-1].name} ({len(group)} operators)"


def _largest(by_tensor: dict[str, int]) -> str:
    """The three largest tensors with their bytes (ties by name), as ``name N B, ...``."""
    largest = sorted(by_tensor.items(), key=lambda item: (-item[1], item[0]))[:3]
    return ", ".join(f"{name} {size:,} B" for name, size in largest)


def _array_slices(g: _GroupSetup, weights: frozenset[str], head: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The widest dim of the group set up as ``g`` that is not a token, head or whole-row dim (the MLP's hidden
    units), cut to the width of the arrays; nothing when the arrays do not divide it."""
    lead = g.sub.leading_dim
    contractions = tuple(cn for cn in g.cns if cn.type in CONTRACTION_TYPES)
    by_name = {cn.name: cn for cn in g.cns}
    heads = set()
    for entry in head:
        node, _, pos = str(entry["dim"]).rpartition(".D")
        heads.add(lead(g.sub.get_dims(by_name[node])[int(pos)])[0])
    skip = _token_dims(g.sub, contractions, weights) | heads | {lead(d)[0] for d in g.protected}
    width = max(
        max(core.operational_array.dimension_sizes.values()) for cn in contractions for core in g.cores_per_node[cn]
    )
    candidates = [
        (g.sub.get_dimension_size(dims[p]), cn.name, p)
        for cn in contractions
        for dims in [g.sub.get_dims(cn)]
        for p in range(len(dims))
        if lead(dims[p])[1] == 1 and lead(dims[p])[0] not in skip
    ]
    size, node, pos = max(candidates, default=(0, "", 0))
    return [{"dim": f"{node}.D{pos}", "tile": width}] if size > width and size % width == 0 else []


class DepthFirstTiler(CapacityTiler):
    """Stream's capacity tiler with room for the tiles of a fused layer: one per attention head and MLP slice, which
    for GPT-2 XL at L = 128 is 25 × 100 over two arrays, 1,250 steady-state tiles, past the 1,024 Stream's generic
    generator allows itself."""

    MAX_STEADY_STATE_TILES = 4096


def _one_head(g: _GroupSetup, weights: frozenset[str]) -> list[dict[str, Any]] | None:
    """A seed tiling of one attention head per tile: every dim the attention contractions (those reading no weight)
    of the group set up as ``g`` all run in parallel, but the tokens, at 1; None without attention contractions."""
    lead = g.sub.leading_dim
    attention = [cn for cn in g.cns if cn.type in CONTRACTION_TYPES and not _reads_weight(cn, weights)]
    if not attention:
        return None
    tokens = _token_dims(g.sub, tuple(cn for cn in g.cns if cn.type in CONTRACTION_TYPES), weights)
    protected = {lead(d)[0] for d in g.protected}

    def parallel(cn: ComputationNode) -> dict[LayerDim, int]:
        dims = g.sub.get_dims(cn)
        return {
            lead(dims[p])[0]: p
            for p, kind in derive_iterator_types(cn).items()
            if kind == IteratorType.PARALLEL and lead(dims[p])[1] == 1
        }

    first = parallel(attention[0])
    heads = set(first).intersection(*(parallel(cn) for cn in attention[1:])) - tokens - protected
    seed = [{"dim": f"{attention[0].name}.D{first[d]}", "tile": 1} for d in sorted(heads, key=str)]
    return seed or None


class FusionError(SolveError):
    """A fused group no tiling fits in its memories; the message names the group, the tensors and their bytes."""


def cannot_fit(
    g: _GroupSetup, accelerator: Accelerator, group: list[ComputationNode], scope: FusionScope
) -> tuple[str, bool]:
    """Why Stream's tiler finds no tiling of ``group`` (set up as ``g``), in one line, and whether the finest tiling
    Stream may cut fits: what its tiles hold at that cut (one element along every dim but those a tile must keep whole,
    the softmax and norm rows), against the tiler's budget; where that fits, the tiles it takes exceed the tiler's
    limit or its greedy search missed them."""
    tiler = DepthFirstTiler(g.sub, accelerator)
    lead = g.sub.leading_dim
    protected = {lead(d)[0] for d in g.protected}
    dims = dict.fromkeys(lead(d)[0] for cn in g.cns for d in g.sub.get_dims(cn))
    memory, budget, by_tensor = _held_bytes(g, tiler, {dim: 1 for dim in dims if dim not in protected})
    total = sum(by_tensor.values())
    if total > budget:
        return (
            f"{_where(scope, group)} fits no tiling in {memory} ({budget:,} B usable): even tiled to one row of every "
            f"dim but the softmax/norm rows its tiles hold {total:,} B, largest {_largest(by_tensor)}"
        ), False
    return (
        f"{_where(scope, group)} fits {memory} ({budget:,} B usable) only in more than "
        f"{DepthFirstTiler.MAX_STEADY_STATE_TILES:,} steady-state tiles, or none Stream's tiler finds (its largest "
        f"tiles at the finest cut: {_largest(by_tensor)})"
    ), True


def _tile_groups(
    workload: Workload,
    accelerator: Accelerator,
    groups: list[list[ComputationNode]],
    placements: dict[str, LayerPlacement],
    weights: frozenset[str],
) -> tuple[list[list[ComputationNode]], list[list[dict[str, Any]]]]:
    """Each group with its intra-core tiling. A group no tiling fits that starts with element-wise operators (the
    epilogue of the previous contraction, such as GPT-2's QKV bias and head split before the attention core) has
    that prefix split off as a group of its own, which frees the memory its inputs held."""
    done: list[list[ComputationNode]] = []
    tilings: list[list[dict[str, Any]]] = []
    pending = list(groups)
    while pending:
        group = pending.pop(0)
        try:
            tilings.append(intra_core_tiling(workload, accelerator, group, placements, weights))
        except ValueError:
            positions = [i for i, cn in enumerate(group) if cn.type in CONTRACTION_TYPES]
            first = positions[0] if positions else 0
            if first == 0:
                # Several contractions that do not fit together (DeepSeek's gate/up projections at L = 1024): split
                # before the second one.
                if len(positions) < 2:
                    raise
                first = positions[1]
            pending[:0] = _end_at_shared_outputs([group[:first], group[first:]])
            continue
        done.append(group)
    return done, tilings


def _check_grouping_is_used(workload: Workload, groups: list[list[ComputationNode]]) -> None:
    """Stream's fixed-mapping stage takes its own fusion cut points whenever they give as many groups as the mapping
    declares, and only derives cuts from the mapping otherwise; refuse a mapping that Stream would regroup."""
    stream_groups = workload.split_fusion_groups(cut_points=determine_fusion_cut_points(workload))
    if len(stream_groups) != len(groups):
        return
    ours = [[cn.name for cn in g] for g in groups]
    theirs = [[cn.name for cn in sub.get_computation_nodes()] for sub in stream_groups]
    if ours != theirs:
        raise ValueError(
            f"Stream would split this workload into its own {len(groups)} fused groups instead of the mapping's: "
            f"{theirs} vs {ours}."
        )


def dump_mapping(mapping: dict[str, Any]) -> str:
    """The mapping as deterministic YAML text (key order kept, so regeneration is byte-identical)."""
    return yaml.safe_dump(mapping, default_flow_style=False, sort_keys=False, width=math.inf)


def write_mapping(onnx_path: str | Path, hardware: str | Path | Accelerator, out_path: str | Path) -> Path:
    """Build the fixed mapping of ``onnx_path`` on ``hardware`` and write it to ``out_path``."""
    return atomic_write(out_path, dump_mapping(build_mapping(onnx_path, hardware)).encode())


def mapping_path_for(onnx_path: str | Path, mappings_dir: str | Path) -> Path:
    """Where the mapping of an ONNX workload lives: ``<mappings_dir>/<ONNX stem>.yaml``."""
    return Path(mappings_dir) / f"{Path(onnx_path).stem}.yaml"
