"""Every read of Stream 2.1.1's internals the tracker relies on, in one place, and the guard that they still mean
what the tracker assumes.

Stream's public results (the stage context's ``allocation`` and ``memory_accesses``, the solution's reports) say
how much a schedule reserves and moves, but not when a tensor is live, nor what a node's own computation reads and
writes in the shared SRAM: those are read off the solver's inputs and the cost model. The internals relied on:

* ``Core.to_zigzag_core()`` and ZigZag's ``get_top_memory_instance(I1)``: the memory Stream treats as the core's;
* ``stream.workload.iterator_type.is_state_operand``: a kernel's carried state;
* ``Allocation.ssis`` (``SteadyStateIterationSpace``: ``get_temporal_variables`` innermost first, each loop's
  ``effect``, ``relevant`` and ``reuse``): in which steady-state iterations a node or transfer fires, and across which
  a tile is kept;
* ``AllocationSolution.latency``, ``slot_latencies``, ``transfer_routes``, ``reuse_factors`` and
  ``AllocationProblem.timeslots``: the schedule, the route each transfer takes and the iterations one firing serves;
* ``DecisionSpace`` (``stream.opt.allocation.constraint_optimization.space``): ``resident_tiles``,
  ``tiles_needed_levels``, ``transfer_nodes``, ``handovers``, ``hardware.shares_memory``,
  ``transfer_latency_for_path`` (0 for a route inside one memory) and ``moved_bits``;
* ``families.overlap._drain``: the part of the fill ``F`` that is the systolic drain after the last iteration (the
  rest, resident fill and warm-up, comes before the first);
* ``families.traffic._sides`` and ``utils.active_fraction``: how the ``energy`` family prices a DMA stream's ports
  and scales a node's ZigZag energy to the iterations it is active in;
* ``CoreCostEntry.cme`` (ZigZag's ``CostModelEvaluation``): ``memory_word_access`` and ``mem_energy_breakdown`` per
  operand and memory level, the counts and energy Stream's node energy is made of, and ``operand_role`` (memory
  operand ``I<k>`` is the node's k-th input, ``O`` its output);
* ``solution.performance["energy"]`` and ``["memory_occupancy"]``: Stream's reports, checked against;
* ``CoreCostEntry.ideal_cycle`` and ``latency_total`` and the workload's loop sizes: per core, the cycles its nodes
  would take at full use of its PEs and the cycles ZigZag gives them, and the MACs of the matmul/conv family
  (``stream.workload.utils.is_mac_operator_type``), checked against the ``total_mac_ops`` of Stream's report;
* ``Accelerator.ports`` (``stream.hardware.ports.PortRegistry``): every top-level memory port, its rate and the
  directions it serves, which the ``memory_ports`` family bounds each iteration by; and that family's report
  (``solution.performance["memory_ports"]``): the bits per iteration each port carries, the roofline's port bounds;
* ``CapacityTiler._node_sizes`` (``stream.mapping.capacity_tiler``): a node's per-core loop extents under a tiling,
  which :mod:`stream_trapti.mappings` uses to re-check the tiler's plans the way the allocator counts them;
* ``DecisionSpace.stops``, ``resident_tiles``, ``may_single_buffer``, ``candidate_cores``, ``memory_capacity_bits``
  and the reuse floors of the allocation model and its ``reuse_levels`` and ``output_reuse`` families: the least
  each tensor holds in a memory, which :mod:`stream_trapti.tracker.infeasibility` sums where Stream's diagnosis of a
  rejected allocation names no memory.

:func:`stream_trapti.tracker.group.check_group` compares what the tracker derives with Stream's reports after every
group and raises a :class:`~stream_trapti.errors.StreamContractError` naming the group on a mismatch, so a Stream
upgrade that changes one of these meanings fails loudly instead of skewing a trace.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from math import ceil, prod
from types import SimpleNamespace
from typing import TYPE_CHECKING

import numpy as np
from stream.hardware.architecture.backends.zigzag import operand_role
from stream.hardware.ports import OUTPUT
from stream.opt.allocation.constraint_optimization.families.overlap import _drain
from stream.opt.allocation.constraint_optimization.families.traffic import _sides
from stream.opt.allocation.constraint_optimization.space import DecisionSpace
from stream.opt.allocation.constraint_optimization.utils import active_fraction
from stream.workload.iterator_type import is_state_operand
from stream.workload.node import TransferType
from stream.workload.steady_state.iteration_space import LoopEffect, Reuse
from stream.workload.utils import is_mac_operator_type
from zigzag.datatypes import MemoryOperand
from zigzag.hardware.architecture.memory_port import DataDirection

from stream_trapti.errors import StreamContractError

if TYPE_CHECKING:
    from stream.allocation.allocation import Allocation
    from stream.allocation.problem import AllocationProblem
    from stream.datatypes import LayerDim
    from stream.hardware.architecture.accelerator import Accelerator
    from stream.hardware.architecture.core import Core
    from stream.mapping.capacity_tiler import CapacityTiler
    from stream.workload.node import TransferNode
    from stream.workload.tensor import Tensor
    from stream.workload.workload import ComputationNode
    from zigzag.hardware.architecture.memory_instance import MemoryInstance

__all__ = [
    "CoreWork",
    "DecisionSpace",
    "MemoryPort",
    "NodeSramAccess",
    "StreamSramEnergy",
    "active_iterations",
    "check_close",
    "core_work",
    "decision_space",
    "drain_cycles",
    "forced_residency",
    "is_state_operand",
    "memory_ports",
    "moves_data",
    "node_sram_accesses",
    "slot_latencies",
    "stream_energy_report",
    "stream_occupancy_report",
    "stream_port_bits",
    "stream_sram_energy",
    "tile_of_iteration",
    "tiler_node_sizes",
    "top_memory",
]

READS = (DataDirection.RD_OUT_TO_HIGH, DataDirection.RD_OUT_TO_LOW)
WRITES = (DataDirection.WR_IN_BY_HIGH, DataDirection.WR_IN_BY_LOW)

ENERGY_TOLERANCE = 1e-3
"""Relative difference allowed between an energy Stream reports and the same energy rebuilt from its parts (the
solver's transfer latencies are floats; measured differences are below 1e-4)."""


def top_memory(core: Core) -> MemoryInstance | None:
    """The memory instance Stream treats as ``core``'s (its top level for operand I1), None without a ZigZag model."""
    try:
        zigzag = core.to_zigzag_core()
    except TypeError:
        return None
    return zigzag.get_top_memory_instance(MemoryOperand("I1"))


def decision_space(allocation: Allocation) -> DecisionSpace:
    """The allocation problem's decision space, as Stream's constraint families read it."""
    return DecisionSpace(allocation.problem)


def slot_latencies(allocation: Allocation) -> list[tuple[int, float]]:
    """Each slot and its solved latency in cycles, in slot order."""
    return sorted(allocation.solution.slot_latencies.items())


def drain_cycles(space: DecisionSpace) -> int:
    """Cycles of the group's fill that come after its last iteration: the results draining out of the systolic
    arrays along the longest chain of dependent nodes, as the ``overlap`` family adds them to the fill."""
    return int(_drain(space))


def tile_of_iteration(allocation: Allocation, node: object, group: str) -> np.ndarray:
    """For every steady-state iteration, the tile of ``node`` (a tensor or transfer) it uses, numbered in the order
    tiles are first used. Iterations that differ only on loops the tile does not change on (ABSENT, or irrelevant
    and reused) share one tile, which Stream loads or produces once (``memory_accesses``: applicable iterations over
    the reuse factor), wherever those loops sit: inside the loops it changes on, the tile's iterations are
    consecutive; outside them, they recur, and the tile stays resident in between."""
    iterations = int(allocation.problem.iterations)
    k = np.arange(iterations, dtype=np.int64)
    if allocation.ssis.get(node) is None:
        return k
    tile = np.zeros(iterations, dtype=np.int64)
    stride = weight = 1
    for loop in _temporal_loops(allocation, node, group):  # innermost first
        if not (loop.effect == LoopEffect.ABSENT or (not loop.relevant and loop.reuse == Reuse.REUSE)):
            tile += (k // stride) % loop.size * weight
            weight *= loop.size
        stride *= loop.size
    return tile


def active_iterations(allocation: Allocation, node: object, group: str) -> np.ndarray:
    """The steady-state iterations ``node`` runs in. Stream charges a node's energy over the share of iterations in
    which it is not idle on a loop it is absent from (``active_fraction``) but does not say which ones: on such a loop
    the node runs once, at the loop's last index when it waits for a node that iterates over the loop (directly or
    through nodes that wait for it: an accumulated output), otherwise at its first (it feeds the iterations after)."""
    loops = _temporal_loops(allocation, node, group)
    iterations = int(allocation.problem.iterations)
    k = np.arange(iterations, dtype=np.int64)
    active = np.ones(iterations, dtype=bool)
    stride = 1
    for i, loop in enumerate(loops):
        if loop.effect == LoopEffect.ABSENT:
            waits = _waits_on_loop(allocation, node, i, group, {})
            active &= (k // stride) % loop.size == (loop.size - 1 if waits else 0)
        stride *= loop.size
    return k[active]


def _waits_on_loop(allocation: Allocation, node: object, loop: int, group: str, seen: dict) -> bool:
    """Whether ``node`` runs after every index of temporal loop ``loop``: a node feeding it iterates over the loop
    (VARYING: it writes another tile at every index), or waits for one that does. A transfer INVARIANT on the loop
    moves the same tile at every index (Stream marks a transfer so when a node beside it iterates over the loop,
    ``_add_temporal_iteration_variables`` in ``stream/workload/utils.py``): what it brings is there at the first."""
    if node not in seen:
        seen[node] = False  # a cycle (none in a dataflow graph) must not recurse forever
        seen[node] = any(
            _temporal_loops(allocation, p, group)[loop].effect == LoopEffect.VARYING
            or _waits_on_loop(allocation, p, loop, group, seen)
            for p in allocation.problem.workload.predecessors(node)
            if p in allocation.ssis
        )
    return seen[node]


def _temporal_loops(allocation: Allocation, node: object, group: str) -> list:
    """``node``'s temporal loops, innermost first; every node and transfer of a group has the same loops (Stream keeps
    the ones it is absent from for alignment), which multiply to the group's iterations."""
    loops = allocation.ssis[node].get_temporal_variables()
    iterations = int(allocation.problem.iterations)
    if prod(v.size for v in loops) != iterations:
        raise StreamContractError(
            f"group {group!r}: {getattr(node, 'name', node)!r} has temporal loops {[v.size for v in loops]} whose "
            f"product is not the group's {iterations} iterations; the tracker cannot place its firings"
        )
    return loops


@dataclass(frozen=True)
class NodeSramAccess:
    """What one evaluation of a node on one core reads and writes of one of its operands (``tensor``) in that core's
    top memory, as ZigZag's cost model gives it to Stream: words of the port serving each access, bytes, and ZigZag's
    energy for them (pJ)."""

    node: object
    core: Core
    tensor: Tensor
    read_words: int
    write_words: int
    read_bytes: int
    write_bytes: int
    energy_pj: float


def node_sram_accesses(allocation: Allocation, group: str) -> list[NodeSramAccess]:
    """Per node, core it runs on (off-chip core excluded) and operand, its accesses to the core's top memory: both
    directions at the memory levels that are that memory instance."""
    problem = allocation.problem
    found = []
    for node in problem.workload.get_computation_nodes():
        placed = _placed_cores(problem, node)
        for core in problem.cost_lut.get_cores(node):
            top = top_memory(core)
            entry = problem.cost_lut.get_cost(node, core)
            if core not in placed or top is None or core.id == problem.accelerator.offchip_core_id or entry.cme is None:
                continue
            found += [_operand_access(group, node, core, entry.cme, op, top) for op in entry.cme.memory_word_access]
    return found


def _placed_cores(problem: AllocationProblem, node: ComputationNode) -> set[Core]:
    """The cores the mapping runs ``node`` on (the cost LUT also holds the cores it was only costed on)."""
    return {core for group in problem.mapping.get(node).resource_allocation for core in group}


def _operand_access(
    group: str, node: ComputationNode, core: Core, cme: object, layer_op: object, top: MemoryInstance
) -> NodeSramAccess:
    mem_op = cme.memory_operand_links.layer_to_mem_op(layer_op)
    words = {"read": 0, "write": 0}
    bits = {"read": 0, "write": 0}
    energy = 0.0
    for lv, accesses in enumerate(cme.memory_word_access[layer_op]):
        level = cme.accelerator.get_memory_level(mem_op, lv)
        if level.memory_instance.name != top.name:
            continue
        energy += cme.mem_energy_breakdown[layer_op][lv]
        for kind, directions in (("read", READS), ("write", WRITES)):
            for direction in directions:
                # ZigZag counts words of the port's maximum bandwidth for that operand and direction.
                n = int(accesses.get(direction))
                words[kind] += n
                bits[kind] += n * int(level.get_max_bandwidth(mem_op, direction) or 0)
    return NodeSramAccess(
        node,
        core,
        _operand_tensor(group, node, str(mem_op)),
        words["read"],
        words["write"],
        -(-bits["read"] // 8),
        -(-bits["write"] // 8),
        energy,
    )


def _operand_tensor(group: str, node: ComputationNode, memory_operand: str) -> Tensor:
    """The node's tensor behind a ZigZag memory operand: ``O`` its output, ``I<k>`` its k-th input, as Stream's
    ``operand_role`` pairs them."""
    role = operand_role(memory_operand)
    tensors = node.outputs if role == OUTPUT else node.inputs
    k = 0 if role == OUTPUT else int(role.removeprefix("input")) - 1
    if k >= len(tensors):
        raise StreamContractError(
            f"group {group!r}: node {node.name!r} has no tensor for ZigZag's memory operand {memory_operand}"
        )
    return tensors[k]


def moves_data(space: DecisionSpace, allocation: Allocation, transfer: TransferNode) -> bool:
    """Whether ``transfer`` on its solved route moves any bits: Stream lowers a route inside one memory (a handover
    between cores that share it) to no DMA and prices it at zero."""
    route = allocation.solution.transfer_routes.get(transfer)
    return route is not None and space.transfer_latency_for_path(transfer, route) > 0


@dataclass(frozen=True)
class StreamSramEnergy:
    """Stream's own energy (pJ, whole group) of each on-chip memory, by owning core id: the DMA streams' reads and
    writes of its ports (``transfer``) and the SRAM levels of its nodes' ZigZag energy (``compute``); and the group's
    node and transfer energy rebuilt from the same parts, to check against Stream's report. ``offchip`` is the
    whole energy (every port side and link) of each transfer that reads or writes the off-chip memory, by the name of
    the tensor it moves, and ``offchip_sram`` the part of it each on-chip memory's ports take, by (tensor name,
    owning core id): what disappears when that tensor stays on chip instead."""

    transfer: dict[int, float]
    compute: dict[int, float]
    node_total_pj: float
    transfer_total_pj: float
    offchip: dict[str, float]
    offchip_sram: dict[tuple[str, int], float]


def stream_sram_energy(allocation: Allocation, space: DecisionSpace, nodes: list[NodeSramAccess]) -> StreamSramEnergy:
    """What Stream's ``energy`` family charges each on-chip memory over the group, as it adds it up: per iteration,
    each node's ZigZag energy times its active fraction, and each DMA stream's bits times the energy per bit of the
    ports it reads and writes (plus its links), times the iterations."""
    problem, accelerator = allocation.problem, allocation.problem.accelerator
    iterations = int(problem.iterations)
    compute: dict[int, float] = {}
    for access in nodes:
        owner = accelerator.memory_of(access.core).id
        compute[owner] = compute.get(owner, 0.0) + access.energy_pj * active_fraction(access.node, space.ssis)
    node_total = sum(
        problem.cost_lut.get_cost(node, core).energy_total * active_fraction(node, space.ssis)
        for node in space.ssc_nodes
        for placed in (_placed_cores(problem, node),)
        for core in problem.cost_lut.get_cores(node)
        if core in placed
    )
    transfer: dict[int, float] = {}
    transfer_total = 0.0
    offchip: dict[str, float] = {}
    offchip_sram: dict[tuple[str, int], float] = {}
    shim = SimpleNamespace(space=space)  # _sides reads only ``ctx.space``
    for tr in space.transfer_nodes:
        if not moves_data(space, allocation, tr):
            continue
        route = allocation.solution.transfer_routes[tr]
        # One firing serves ``reuse_factors[tr]`` iterations: the energy family divides the active latency by it.
        reuse = float(allocation.solution.reuse_factors.get(tr, 1.0)) or 1.0
        bits = space.moved_bits(tr, route) * active_fraction(tr, space.ssis) / reuse
        sides: dict[int, float] = {}
        for side in _sides(shim, tr, route):
            energy = bits * side.share * side.port.energy_per_bit(side.direction)
            owner = accelerator.memory_of(accelerator.get_core(side.port.core_ids[0])).id
            sides[owner] = sides.get(owner, 0.0) + energy
        links = bits * sum(link.unit_energy_cost / link.bandwidth for link in route.links_used)
        transfer_total += sum(sides.values()) + links
        for owner, energy in sides.items():
            if owner != accelerator.offchip_core_id:
                transfer[owner] = transfer.get(owner, 0.0) + energy
        if accelerator.offchip_core_id in sides:
            name = tr.inputs[0].name
            offchip[name] = offchip.get(name, 0.0) + sum(sides.values()) + links
            for owner, energy in sides.items():
                if owner != accelerator.offchip_core_id:
                    offchip_sram[(name, owner)] = offchip_sram.get((name, owner), 0.0) + energy
    scale = float(iterations)
    return StreamSramEnergy(
        {m: e * scale for m, e in transfer.items()},
        {m: e * scale for m, e in compute.items()},
        node_total * scale,
        transfer_total * scale,
        {t: e * scale for t, e in offchip.items()},
        {k: e * scale for k, e in offchip_sram.items()},
    )


@dataclass(frozen=True)
class CoreWork:
    """What one core does over a group: its PEs (the units of its operational array), the MACs of the matmul/conv
    nodes it runs, the cycles its nodes would take at full use of its PEs (ZigZag's ``ideal_cycle``) and the cycles
    ZigZag gives them (``latency_total``: spatial under-use, stalls on its memories' ports, on- and off-loading),
    each node's per-firing figures times the iterations it is active in (Stream's ``active_fraction``)."""

    core_id: int
    units: int
    macs: int
    ideal_cycles: int
    zigzag_cycles: int


def core_work(allocation: Allocation, group: str) -> tuple[CoreWork, ...]:
    """Per core a group's nodes run on (off-chip core excluded), its :class:`CoreWork`, by core id. The MACs add up to
    the ``total_mac_ops`` of Stream's report (checked when it has one)."""
    problem = allocation.problem
    workload, iterations = problem.workload, int(problem.iterations)
    ssis = allocation.ssis
    totals: dict[int, list[float]] = {}
    units: dict[int, int] = {}
    for node in workload.get_computation_nodes():
        cores = [c for c in problem.cost_lut.get_cores(node) if c in _placed_cores(problem, node)]
        cores = [c for c in cores if c.id != problem.accelerator.offchip_core_id]
        if not cores:
            continue
        runs = active_fraction(node, ssis) * iterations
        # The steady-state node's loops span all its cores; an inter-core split gives each core an equal share.
        mac = is_mac_operator_type(node.type)
        macs = prod(workload.get_dimension_size(d) for d in workload.get_dims(node)) if mac else 0
        for core in cores:
            entry = problem.cost_lut.get_cost(node, core)
            row = totals.setdefault(core.id, [0.0, 0.0, 0.0])
            row[0] += macs / len(cores) * runs
            row[1] += float(entry.ideal_cycle) * runs
            row[2] += float(entry.latency_total) * runs
            array = getattr(core, "operational_array", None)
            units[core.id] = int(getattr(array, "total_unit_count", 0) or 0)
    work = tuple(
        CoreWork(core_id, units[core_id], round(m), round(i), round(z)) for core_id, (m, i, z) in sorted(totals.items())
    )
    reported = ((allocation.solution.performance or {}).get("aggregate") or {}).get("total_mac_ops")
    if reported is not None and sum(w.macs for w in work) != round(float(reported)):
        raise StreamContractError(
            f"group {group!r}: the tracker counts {sum(w.macs for w in work):,} MACs over the steady-state "
            f"iterations, Stream's report {float(reported):,.0f}; a Stream upgrade probably changed how nodes are "
            "tiled or how often they fire"
        )
    return work


@dataclass(frozen=True)
class MemoryPort:
    """One top-level memory port of the accelerator: its name (``memory.port``), the owning core of its memory (the
    off-chip core for the DRAM), whether it carries reads and writes, and its rate in bits per cycle, reads and writes
    together (Stream's ``Port.bits_per_cycle``). Stream's ``memory_ports`` family makes every steady-state iteration
    long enough for the bits each port carries, so a group takes at least its bits over this rate."""

    name: str
    owner_id: int
    reads: bool
    writes: bool
    bits_per_cycle: float


def memory_ports(accelerator: Accelerator) -> tuple[MemoryPort, ...]:
    """Every top-level memory port of ``accelerator`` (``accelerator.ports``), by name."""
    return tuple(
        MemoryPort(
            f"{port.key.memory}.{port.key.port}",
            accelerator.memory_of(accelerator.get_core(port.core_ids[0])).id,
            any(direction.startswith("read") for _, direction in port.serves),
            any(direction.startswith("write") for _, direction in port.serves),
            float(port.bits_per_cycle),
        )
        for port in sorted(accelerator.ports, key=lambda p: p.key)
    )


def stream_port_bits(allocation: Allocation) -> dict[str, float]:
    """The bits the group moves through each memory port (``memory.port``) by Stream's ``memory_ports`` report: the
    transfers' and the nodes' own, per iteration times the iterations; empty when the solve has no such report."""
    rows = (allocation.solution.performance or {}).get("memory_ports") or ()
    iterations = int(allocation.problem.iterations)
    return {
        str(row["resource"]): float(row["bits_per_iteration"]) * iterations
        for row in rows
        if row.get("kind") == "memory_port"
    }


def stream_energy_report(allocation: Allocation) -> dict[str, float]:
    """Stream's energy report of the group (``node_pj_per_iteration``, ``transfer_pj_per_iteration``, ``total_pj``),
    empty when the solve did not report it."""
    return dict(((allocation.solution.performance or {}).get("energy")) or {})


def stream_occupancy_report(allocation: Allocation) -> dict[int, int]:
    """Stream's ``memory_occupancy`` report: resident bits per memory-owning core id."""
    rows = (allocation.solution.performance or {}).get("memory_occupancy") or ()
    return {row["core_id"]: row["resident_bits"] for row in rows}


def check_close(group: str, what: str, ours: float, stream: float, tolerance: float = ENERGY_TOLERANCE) -> None:
    """Raise naming ``group`` when ``ours`` and Stream's ``stream`` differ by more than ``tolerance`` (relative)."""
    if abs(ours - stream) > tolerance * max(abs(stream), 1e-9):
        raise StreamContractError(
            f"group {group!r}: {what} is {ours:,.3f} by the tracker but {stream:,.3f} by Stream; a Stream upgrade "
            "probably changed what stream_trapti/tracker/stream_internals.py relies on"
        )


def tiler_node_sizes(
    tiler: CapacityTiler,
    node: ComputationNode,
    cores_per_node: dict[ComputationNode, list[Core]],
    unroll: dict[LayerDim, int],
    resident: dict[LayerDim, int],
    node_unroll: dict[ComputationNode, dict[LayerDim, int]] | None,
) -> dict[LayerDim, int]:
    """The extent of every unique loop dimension on one core running ``node`` when the group's cores hold
    ``resident``, as Stream's capacity tiler computes it (under the node's own split, else the group's ``unroll``)."""
    # A private method of Stream's tiler, listed in the module docstring.
    return tiler._node_sizes(node, cores_per_node, unroll, resident, node_unroll)


def forced_residency(problem: AllocationProblem, families: Iterable[str]) -> dict[int, tuple[float, dict[str, float]]]:
    """Per memory-owning core id: the bytes it has for tensors, and the least bytes each tensor that may live there
    keeps resident when held as long as Stream's reuse rules force it, as the ``memory_capacity`` family counts a
    tensor's residency at a reuse stop. The rules (of the ``families`` selected): a declared reuse is a floor (the
    allocation model's reuse variables), a fused intermediate is held up to its outermost irrelevant loop
    (``reuse_levels``), and so is a final output (``output_reuse``); a kernel's handed-over state counts as
    ``handover``."""
    space = DecisionSpace(problem)
    floors = _reuse_floors(space, frozenset(families))
    held: dict[int, dict[str, float]] = defaultdict(dict)
    for node in space.workload.get_iteration_space_nodes():
        carried = [x for x in node.inputs if is_state_operand(node, x)]
        for t in (*node.outputs, *carried):
            bits = space.workload.get_tensor_single_core(t, node, space.mapping).size_bits()
            stops = space.stops(t)
            floor = min(floors.get(t, -1), stops[-1])
            least = min(
                ceil(space.resident_tiles(t, stop, space.may_single_buffer(t, stop)) * bits)
                for stop in stops
                if stop >= floor
            )
            # A tile of a tensor is held by each core that may hold it; the whole tensor once per memory.
            holders = Counter(space.accelerator.memory_of(c) for c in space.candidate_cores(t))
            for memory, cores in holders.items():
                held[memory.id][t.name] = least / 8 * (1 if bits == t.size_bits() else cores)
    for one, other, bits in space.handovers:
        readers = (one,) if space.hardware.shares_memory(one, other) else (one, other)
        for memory in {space.accelerator.memory_of(c) for c in readers}:
            held[memory.id]["handover"] = held[memory.id].get("handover", 0.0) + bits / 8
    memories = {space.accelerator.memory_of(c) for c in space.accelerator.core_list}
    return {m.id: (space.memory_capacity_bits(m) / 8, held[m.id]) for m in memories if m.id in held}


def _reuse_floors(space: DecisionSpace, families: frozenset[str]) -> dict[Tensor, int]:
    """The innermost reuse stop each tensor may take under Stream's reuse rules (``allocation_model.py``'s reuse
    variables, ``families/reuse.py``'s ``ReuseLevels`` and ``OutputReuse``); a tensor not named may stop at -1."""
    floors: dict[Tensor, int] = {}

    def hold(t: Tensor, stop: int) -> None:
        floors[t] = max(floors.get(t, -1), stop)

    optimized = set(space.tensors_to_optimize_reuse_for)
    for t in space.workload.tensors:
        if t not in optimized:
            reuses = space.ssis[t].get_temporal_reuses()
            hold(t, max((i for i, reuse in enumerate(reuses) if reuse == Reuse.REUSE), default=-1))
    for tr in space.transfer_nodes:
        if tr.transfer_type == TransferType.COMPUTE_TO_COMPUTE and "reuse_levels" in families:
            for t in tr.outputs:
                hold(t, _outermost_irrelevant(space.ssis[tr].get_applicable_temporal_relevancies()))
        elif tr.transfer_type == TransferType.COMPUTE_TO_MEM and "output_reuse" in families:
            for t in tr.inputs:
                hold(t, _outermost_irrelevant(space.ssis[t].get_applicable_temporal_relevancies()))
    return floors


def _outermost_irrelevant(relevancies: list[bool]) -> int:
    """The outermost temporal loop a tile does not change on, -1 for none."""
    return max((i for i, relevant in enumerate(relevancies) if relevant is False), default=-1)
