"""What one solved fused group holds in each on-chip memory, and when, relative to the group's own start.

Stream solves each fused group as a steady state: ``N`` iterations of ``P`` cycles, each starting ``P − V`` cycles
after the previous one, plus a fill of ``F = F₀ + D`` cycles (``latency.total = N·P − (N−1)·V + F``): ``F₀`` of
resident fill and warm-up before the first iteration, and the arrays' drain ``D`` after the last. Slots run back to
back inside an iteration, so a node in slot ``s`` of iteration ``k`` starts at ``F₀ + k·(P−V) + Σ_{j<s} slot_j``.
From that schedule this module derives, per group:

* the **reserved** bytes per memory and tensor, reproduced from Stream's ``memory_capacity`` constraint family with
  the solved placements, reuse stops and buffering (so they add up to Stream's ``memory_occupancy`` report);
* the **needed** intervals: a tile is live from its write (the producer's start, or the start of the transfer that
  brings it) to the end of its last read, once per tile Stream loads or produces (the iterations that differ only
  on loops the tile does not change on, ABSENT or reused, share it: :func:`stream_internals.tile_of_iteration`), and
  through handovers inside one memory to the reads of the handover's copy;
* the memory **accesses**, by source: the **transfers'** of Stream's ``MemoryAccessesEstimationStage`` (port-width
  words per core and tensor), spread over the transfer firings that cause them, leaving out the handovers that stay
  inside one memory (Stream moves and prices nothing for them); and the **computation's**, the words ZigZag's cost
  model gives Stream for each node's operand reads and partial-sum writes in the core's top memory, at the start of
  the node's slot in every iteration it is active in.

Every read of Stream's internals goes through :mod:`stream_trapti.tracker.stream_internals`, and
:func:`check_group` checks the result against Stream's own reports.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import astuple, dataclass, replace
from math import ceil
from typing import TYPE_CHECKING

import numpy as np

from stream_trapti.errors import StreamContractError
from stream_trapti.trace import ACCESS_SOURCES, CLASSES, OFFCHIP, MemoryInfo
from stream_trapti.tracker import stream_internals as internals
from stream_trapti.tracker.stream_internals import DecisionSpace, NodeSramAccess

if TYPE_CHECKING:
    from stream.allocation.allocation import Allocation
    from stream.cost_model.memory_accesses import CoreMemoryAccesses
    from stream.hardware.architecture.accelerator import Accelerator
    from stream.hardware.architecture.core import Core
    from stream.workload.workload import Tensor

logger = logging.getLogger(__name__)

Classifier = Callable[[str], str]
"""Maps a workload tensor name (as the ONNX graph names it) to one of :data:`stream_trapti.trace.CLASSES`."""


@dataclass(frozen=True, eq=False)
class GroupOccupancy:
    """One group's occupancy, times relative to its start. Arrays of equal length describe, per needed interval,
    its memory, class, tensor (index into ``tensor_names``), ``[start, end)`` and bytes; per access event, its memory,
    source (index into :data:`~stream_trapti.trace.ACCESS_SOURCES`), direction (0 read, 1 write), cycle, bytes and
    tensor.
    ``reserved`` (memory, class) is constant over the group; ``reserved_tensors`` attributes it by tensor;
    ``stream_reserved`` is what Stream's own report says, ``energy_pj`` is Stream's energy estimate of the group,
    and ``stream_sram_pj`` the part of it Stream charges each memory, per access source (pJ).
    ``dram_bytes`` (class, read/write) is what the group's transfers read from and write to the off-chip memory;
    ``offchip_pj`` (class, 1 + memory) is Stream's energy of those transfers: column 0 all of it (every port and
    link), column ``1 + m`` the part memory ``m``'s ports take.
    ``core_work`` (core, 5) is, per core the group's nodes run on, its id, PEs, MACs, ideal cycles and ZigZag cycles
    (:class:`~stream_trapti.tracker.stream_internals.CoreWork`); ``ports`` each top-level memory port of the
    accelerator as (name, memory index or :data:`OFFCHIP` for the off-chip memory, bits per cycle, bits the group moves
    through it) (:func:`_port_bits`). Together they are the group's roofline."""

    name: str
    cycles: int
    energy_pj: float
    stream_sram_pj: tuple[tuple[float, ...], ...]
    memories: tuple[MemoryInfo, ...]
    reserved: np.ndarray
    reserved_tensors: tuple[tuple[int, str, str, int], ...]
    stream_reserved: tuple[int | None, ...]
    tensor_names: tuple[str, ...]
    needed_memory: np.ndarray
    needed_class: np.ndarray
    needed_tensor: np.ndarray
    needed_start: np.ndarray
    needed_end: np.ndarray
    needed_bytes: np.ndarray
    access_memory: np.ndarray
    access_source: np.ndarray
    access_kind: np.ndarray
    access_time: np.ndarray
    access_bytes: np.ndarray
    access_tensor: np.ndarray
    dram_bytes: np.ndarray
    offchip_pj: np.ndarray
    core_work: np.ndarray
    ports: tuple[tuple[str, int, float, float], ...]

    def arrays(self) -> dict[str, np.ndarray]:
        """The integer array fields by name, for serialisation (``offchip_pj``, in pJ, is not one)."""
        return {name: getattr(self, name) for name in ARRAY_FIELDS}

    def renamed(self, rename: Callable[[str], str], prefix: str = "") -> GroupOccupancy:
        """The same group with every tensor name passed through ``rename`` (a reused layer takes its own names), and
        its own name too, after ``prefix``."""
        return GroupOccupancy(
            **{
                **self.__dict__,
                "name": prefix + rename(self.name),
                "tensor_names": tuple(rename(n) for n in self.tensor_names),
                "reserved_tensors": tuple((m, rename(t), c, b) for m, t, c, b in self.reserved_tensors),
            }
        )


ARRAY_FIELDS = (  # the integer arrays of a group, each with one row per entry (what the cache stores)
    "reserved",
    "needed_memory",
    "needed_class",
    "needed_tensor",
    "needed_start",
    "needed_end",
    "needed_bytes",
    "access_memory",
    "access_source",
    "access_kind",
    "access_time",
    "access_bytes",
    "access_tensor",
    "dram_bytes",
    "core_work",
)


def on_chip_memories(accelerator: Accelerator) -> tuple[tuple[Core, MemoryInfo], ...]:
    """Each on-chip memory instance once, as the core owning it and its description; the off-chip core is left out."""
    owners: dict[int, list[int]] = defaultdict(list)
    for core in accelerator.core_list:
        if core.id == accelerator.offchip_core_id:
            continue
        owners[accelerator.memory_of(core).id].append(core.id)
    found = []
    for owner_id, users in sorted(owners.items()):
        owner = accelerator.get_core(owner_id)
        found.append(
            (
                owner,
                MemoryInfo(
                    name=f"{_top_memory_name(owner)}@core{owner_id}",
                    core_ids=tuple(sorted(users)),
                    capacity_bytes=owner.get_memory_capacity() // 8,
                    read_port_bits=int(owner.get_max_memory_bandwidth("read")),
                    write_port_bits=int(owner.get_max_memory_bandwidth("write")),
                    **_access_energies(owner),
                ),
            )
        )
    return tuple(found)


def _access_energies(core: Core) -> dict[str, float]:
    """The per-access read and write energies (pJ) Stream's cost model charges the core's memory."""
    instance = internals.top_memory(core)
    return {} if instance is None else {"read_pj": float(instance.r_cost), "write_pj": float(instance.w_cost)}


def _top_memory_name(core: Core) -> str:
    """The name the hardware YAML gives the memory Stream uses as the core's (its top level for operand I1)."""
    instance = internals.top_memory(core)
    return f"core{core.id}_memory" if instance is None else str(instance.name)


def record_group(
    name: str, allocation: Allocation, accesses: CoreMemoryAccesses | None, classify: Classifier
) -> GroupOccupancy:
    """Reduce one solved group to its occupancy, in arrays that no longer reference Stream's objects."""
    accelerator = allocation.problem.accelerator
    memories = on_chip_memories(accelerator)
    index_of = {owner.id: i for i, (owner, _) in enumerate(memories)}
    memory_index = {c.id: index_of.get(accelerator.memory_of(c).id) for c in accelerator.core_list}
    space = internals.decision_space(allocation)
    schedule = _Schedule.of(allocation, space)
    origin = _origins(allocation)
    origin_by_name = {t.name: n for t, n in origin.items()}
    tensor_ids: dict[str, int] = {}

    def source_name(t: Tensor | None) -> str:
        # memory_accesses names per-core tiles of a tensor, separate objects with the tensor's name.
        return "handover" if t is None else origin.get(t) or origin_by_name.get(t.name, t.name)

    def class_index(t: Tensor | None) -> int:
        # A handover buffer holds a kernel's running state (a reduction's scale): working data, an activation.
        return CLASSES.index("activation" if t is None else classify(source_name(t)))

    def class_index_of(name: str) -> int:
        return CLASSES.index(classify(name))

    reserved = np.zeros((len(memories), len(CLASSES)), dtype=np.int64)
    by_tensor: dict[tuple[int, str, str], int] = defaultdict(int)
    for (t, owner_id), bits in _reserved_bits(allocation, space).items():
        m = index_of.get(owner_id)
        if m is None or bits <= 0:
            continue
        cls = class_index(t)
        reserved[m, cls] += _bytes(bits)
        by_tensor[(m, source_name(t), CLASSES[cls])] += _bytes(bits)

    report = internals.stream_occupancy_report(allocation)
    rows = [
        (m, tensor_ids.setdefault(source_name(t), len(tensor_ids)), class_index(t), start, end, size)
        for m, t, start, end, size in _needed_intervals(name, allocation, space, schedule, memory_index)
    ]
    needed = np.array(rows, dtype=np.int64).reshape(-1, 6)
    nodes = internals.node_sram_accesses(allocation, name)
    transfers = _transfer_events(name, allocation, space, schedule, accesses, memory_index, len(memories))
    events = np.array(
        [
            (*event[:5], tensor_ids.setdefault(source_name(event[5]), len(tensor_ids)))
            for event in (*transfers.events, *_compute_events(name, allocation, nodes, schedule, memory_index))
        ],
        dtype=np.int64,
    ).reshape(-1, 6)
    energy = internals.stream_sram_energy(allocation, space, nodes)
    offchip_pj = np.zeros((len(CLASSES), 1 + len(memories)))
    for tensor, pj in energy.offchip.items():
        offchip_pj[class_index_of(origin_by_name.get(tensor, tensor)), 0] += pj
    for (tensor, owner_id), pj in energy.offchip_sram.items():
        if (m := index_of.get(owner_id)) is not None:
            offchip_pj[class_index_of(origin_by_name.get(tensor, tensor)), 1 + m] += pj
    group = GroupOccupancy(
        name=name,
        cycles=schedule.total,
        energy_pj=float(internals.stream_energy_report(allocation).get("total_pj") or 0.0),
        stream_sram_pj=tuple(
            (energy.transfer.get(owner.id, 0.0), energy.compute.get(owner.id, 0.0)) for owner, _ in memories
        ),
        memories=tuple(info for _, info in memories),
        reserved=reserved,
        reserved_tensors=tuple((m, t, c, b) for (m, t, c), b in sorted(by_tensor.items())),
        stream_reserved=tuple(_bytes(report[o.id]) if o.id in report else None for o, _ in memories),
        tensor_names=tuple(tensor_ids),
        needed_memory=needed[:, 0],
        needed_tensor=needed[:, 1],
        needed_class=needed[:, 2],
        needed_start=needed[:, 3],
        needed_end=needed[:, 4],
        needed_bytes=needed[:, 5],
        access_memory=events[:, 0],
        access_source=events[:, 1],
        access_kind=events[:, 2],
        access_time=events[:, 3],
        access_bytes=events[:, 4],
        access_tensor=events[:, 5],
        dram_bytes=_dram_bytes(accelerator, accesses, class_index),
        offchip_pj=offchip_pj,
        core_work=np.array(
            [astuple(w) for w in internals.core_work(allocation, name)],
            dtype=np.int64,
        ).reshape(-1, 5),
        ports=(),
    )
    group = replace(group, ports=_port_bits(group, allocation, index_of))
    check_group(group, allocation, accesses, transfers.handovers, energy, memory_index)
    return group


def check_group(
    group: GroupOccupancy,
    allocation: Allocation,
    accesses: CoreMemoryAccesses | None,
    handovers: np.ndarray,
    energy: internals.StreamSramEnergy,
    memory_index: dict[int, int | None],
) -> None:
    """Raise a :class:`StreamContractError` naming the group when what the tracker derived from Stream's internals
    disagrees with Stream's own reports: reserved bytes with ``memory_occupancy``; transfer accesses (plus the
    handovers left out) with ``memory_accesses``; the node and transfer energy rebuilt from their parts with the
    ``energy`` report; and the computation's access counts at the YAML's costs with the SRAM part of ZigZag's node
    energy."""
    for m, stream_bytes in enumerate(group.stream_reserved):
        if stream_bytes is not None and int(group.reserved[m].sum()) != stream_bytes:
            raise StreamContractError(
                f"group {group.name!r}: the tracker reserves {int(group.reserved[m].sum()):,} B in "
                f"{group.memories[m].name}, Stream's memory_occupancy {stream_bytes:,} B"
            )
    if accesses is not None:
        ours = _totals(group, ACCESS_SOURCES.index("transfer")) + handovers
        stream = np.zeros_like(ours)
        for core in accesses.to_ir()["cores"]:
            if (m := memory_index.get(core["core_id"])) is not None:
                stream[m] += (core["read"] * core["read_bandwidth"] // 8, core["write"] * core["write_bandwidth"] // 8)
        if not np.array_equal(ours, stream):
            raise StreamContractError(
                f"group {group.name!r}: the tracker's transfer accesses (bytes read, written per memory) "
                f"{ours.tolist()} differ from Stream's memory_accesses {stream.tolist()}"
            )
    report = internals.stream_energy_report(allocation)
    iterations = int(allocation.problem.iterations)
    if report:
        internals.check_close(
            group.name, "node energy (pJ)", energy.node_total_pj, report["node_pj_per_iteration"] * iterations
        )
        internals.check_close(
            group.name,
            "transfer energy (pJ)",
            energy.transfer_total_pj,
            report["transfer_pj_per_iteration"] * iterations,
        )
    words = _totals(group, ACCESS_SOURCES.index("compute"))
    for m, memory in enumerate(group.memories):
        # The computation's accesses are whole port words: priced at the YAML's costs they are ZigZag's SRAM energy.
        priced = words[m, 0] * 8 / memory.read_port_bits * memory.read_pj
        priced += words[m, 1] * 8 / memory.write_port_bits * memory.write_pj
        internals.check_close(
            group.name, f"compute-side energy of {memory.name} (pJ)", priced, group.stream_sram_pj[m][1]
        )


def _port_bits(
    group: GroupOccupancy, allocation: Allocation, index_of: dict[int, int]
) -> tuple[tuple[str, int, float, float], ...]:
    """Each top-level memory port of the accelerator: its name, memory index (:data:`OFFCHIP` for the off-chip
    memory's), rate (bits per cycle) and the bits the group moves through it, as Stream's ``memory_ports`` report
    counts them (the bits that bound Stream's schedule). Without that report, the tracker's own count: the DRAM bytes,
    or an on-chip memory's accesses of both sources, in the directions the port carries (they differ from Stream's
    where ``memory_accesses`` rounds a transfer up to whole port words)."""
    accelerator = allocation.problem.accelerator
    reported = internals.stream_port_bits(allocation)
    moved = _totals(group, ACCESS_SOURCES.index("transfer")) + _totals(group, ACCESS_SOURCES.index("compute"))
    found = []
    for port in internals.memory_ports(accelerator):
        m = OFFCHIP if port.owner_id == accelerator.offchip_core_id else index_of[port.owner_id]
        both = group.dram_bytes.sum(axis=0) if m == OFFCHIP else moved[m]
        own = 8 * int(both[0] * port.reads + both[1] * port.writes)
        found.append((port.name, m, port.bits_per_cycle, reported.get(port.name, float(own))))
    return tuple(found)


def _totals(group: GroupOccupancy, source: int) -> np.ndarray:
    """Bytes read and written per memory by one access source: (memory, 2)."""
    totals = np.zeros((len(group.memories), 2), dtype=np.int64)
    keep = group.access_source == source
    np.add.at(totals, (group.access_memory[keep], group.access_kind[keep]), group.access_bytes[keep])
    return totals


def _dram_bytes(
    accelerator: Accelerator, accesses: CoreMemoryAccesses | None, class_index: Callable[[Tensor], int]
) -> np.ndarray:
    """Bytes read from and written to the off-chip memory per tensor class, from Stream's access counts (port-width
    words per core and tensor) on the off-chip core: (class, read/write)."""
    totals = np.zeros((len(CLASSES), 2), dtype=np.int64)
    offchip = accelerator.get_core(accelerator.offchip_core_id)
    for tensor, count in (accesses.accesses.get(offchip, {}) if accesses is not None else {}).items():
        c = class_index(tensor)
        totals[c, 0] += count.read * int(offchip.get_max_memory_bandwidth("read")) // 8
        totals[c, 1] += count.write * int(offchip.get_max_memory_bandwidth("write")) // 8
    return totals


def _bytes(bits: int) -> int:
    return -(-int(bits) // 8)


@dataclass(frozen=True)
class _Schedule:
    """When each slot of the steady state runs: slot ``s`` of iteration ``k`` starts at
    ``lead + k·step + start[s]`` cycles after the group starts. Of Stream's fill ``F``, the resident fill and warm-up
    come before the first iteration (``lead``) and the arrays' drain after the last."""

    total: int
    lead: int
    step: int
    iterations: int
    start: dict[int, int]
    end: dict[int, int]
    slot_of: dict

    @classmethod
    def of(cls, allocation: Allocation, space: DecisionSpace) -> _Schedule:
        latency = allocation.solution.latency
        slots = internals.slot_latencies(allocation)
        # Stream's slot latencies are float solver values of whole cycles; the running sum is rounded once.
        bounds = np.rint(np.concatenate([[0.0], np.cumsum([max(lat, 0.0) for _, lat in slots])])).astype(np.int64)
        return cls(
            total=int(latency.total),
            lead=int(latency.fill) - internals.drain_cycles(space),
            step=int(latency.per_iteration - latency.overlap),
            iterations=int(allocation.problem.iterations),
            start={s: int(bounds[i]) for i, (s, _) in enumerate(slots)},
            end={s: int(bounds[i + 1]) for i, (s, _) in enumerate(slots)},
            slot_of=dict(allocation.problem.timeslots),
        )

    def offsets(self) -> np.ndarray:
        """The start of every iteration."""
        return self.lead + np.arange(self.iterations, dtype=np.int64) * self.step


def _origins(allocation: Allocation) -> dict[Tensor, str]:
    """The workload name of every tensor copy. A transfer's input and output are copies of one tensor; of each set of
    copies, the one the group's workload before lowering names is the workload's tensor."""
    named = {
        t.name
        for node in allocation.problem.source_workload.get_computation_nodes()
        for t in (*node.inputs, *node.outputs)
    }
    parent: dict[Tensor, Tensor] = {}

    def root(t: Tensor) -> Tensor:
        while parent.get(t, t) is not t:
            t = parent[t]
        return t

    for transfer in allocation.problem.workload.get_transfer_nodes():
        for copy in (*transfer.inputs[1:], *transfer.outputs):
            a, b = root(transfer.inputs[0]), root(copy)
            if a is not b:
                parent[b] = a
    members: dict[Tensor, list[Tensor]] = defaultdict(list)
    for t in list(parent):
        members[root(t)].append(t)
    origin: dict[Tensor, str] = {}
    for top, copies in members.items():
        names = sorted({t.name for t in (top, *copies)}, key=lambda n: (n not in named, len(n), n))
        origin.update({t: names[0] for t in (top, *copies)})
    return origin


def _reserved_bits(allocation: Allocation, space: DecisionSpace) -> dict[tuple[Tensor | None, int], int]:
    """Bits each tensor holds in each memory (by owning core id) under the solved placement, reuse stop and
    buffering, as Stream's ``memory_capacity`` family charges them: a whole tensor once per memory, a tile once per
    core holding it, an in-place copy only beyond its source, and the handover buffers (tensor None)."""
    problem, solution = allocation.problem, allocation.solution
    workload, mapping, accelerator = problem.workload, problem.mapping, problem.accelerator
    held: dict[tuple[Tensor | None, int], int] = defaultdict(int)
    for node in workload.get_iteration_space_nodes():
        carried = [x for x in node.inputs if internals.is_state_operand(node, x)]
        for t in (*node.outputs, *carried):
            placement = solution.tensor_placements.get(t)
            if not placement or (t, solution.reuse_levels.get(t)) not in space.tiles_needed_levels:
                continue
            tile_bits = workload.get_tensor_single_core(t, node, mapping).size_bits()
            single = t in solution.single_buffered
            per_holder = ceil(space.resident_tiles(t, solution.reuse_levels[t], single) * tile_bits)
            holders: dict[int, int] = defaultdict(int)
            for core in placement:
                holders[accelerator.memory_of(core).id] += 1
            for owner, count in holders.items():
                held[(t, owner)] = per_holder * (1 if tile_bits == t.size_bits() else count)
    source_of = {copy: tr.inputs[0] for tr in space.transfer_nodes for copy in tr.outputs}
    raw = dict(held)
    for (t, owner), bits in raw.items():
        source = raw.get((source_of.get(t), owner)) if t in source_of else None
        if source is not None:
            held[(t, owner)] = max(bits - source, 0)
    for one, other, bits in space.handovers:
        readers = (one,) if space.hardware.shares_memory(one, other) else (one, other)
        for owner in dict.fromkeys(accelerator.memory_of(c).id for c in readers):
            held[(None, owner)] += bits
    return held


def _needed_intervals(
    group: str, allocation: Allocation, space: DecisionSpace, schedule: _Schedule, memory_index: dict[int, int | None]
) -> list[tuple[int, Tensor, int, int, int]]:
    """Per tile held on chip: its memory, tensor, and the ``[start, end)`` and bytes of each time it is live, from
    its write in the first iteration it is kept across to the end of its last read (:func:`_last_reads`).

    A tensor has as many buffers as Stream reserves for it (``resident_tiles``: one when single-buffered, two when
    its windows rotate): a window is written only once the window that held its buffer before has been read, as
    the code Stream generates waits for it. An in-place copy (in the memory of its source) needs only what it holds
    beyond its source, as Stream charges it."""
    problem, solution = allocation.problem, allocation.solution
    workload, mapping = problem.workload, problem.mapping
    held: dict[Tensor, tuple[dict[int, int], int]] = {}
    producers: dict[Tensor, object] = {}
    carried: set[Tensor] = set()
    for node in workload.get_iteration_space_nodes():
        states = [x for x in node.inputs if internals.is_state_operand(node, x)]
        carried.update(states)
        for t in (*node.outputs, *states):
            holders: dict[int, int] = defaultdict(int)
            for core in solution.tensor_placements.get(t, ()):
                if (m := memory_index.get(core.id)) is not None:
                    holders[m] += 1
            tile_bits = workload.get_tensor_single_core(t, node, mapping).size_bits()
            copies = 1 if tile_bits == t.size_bits() else None
            held[t] = ({m: _bytes(tile_bits) * (copies or n) for m, n in holders.items()}, tile_bits)
            producers[t] = node
    source_of = {copy: tr.inputs[0] for tr in space.transfer_nodes for copy in tr.outputs}
    rows: list[tuple[int, Tensor, int, int, int]] = []
    for t, (sizes, _) in held.items():
        node = producers[t]
        if t not in solution.tensor_placements or not sizes:
            continue
        if t in carried:
            # A kernel's carried state lives for the whole group.
            rows.extend((m, t, 0, schedule.total, size) for m, size in sizes.items())
            continue
        readers = _readers(allocation, space, schedule, node, t)
        # One tile per run of iterations it is kept across, not one per iteration: Stream loads or produces it once.
        tiles = internals.tile_of_iteration(allocation, t, group)
        written = _firings(group, allocation, node, tiles)
        firsts = schedule.lead + written * schedule.step + schedule.start[schedule.slot_of[node]]
        lasts = _last_reads(group, allocation, schedule, node, readers, tiles, written)
        stop = solution.reuse_levels.get(t)
        buffers = (
            space.resident_tiles(t, stop, t in solution.single_buffered)
            if (t, stop) in space.tiles_needed_levels
            else 1
        )
        if 0 < buffers < len(firsts):
            firsts[buffers:] = np.maximum(firsts[buffers:], lasts[:-buffers])
        source = held.get(source_of.get(t)) if t in source_of else None
        for m, size in sizes.items():
            if source is not None and m in source[0]:
                size = max(size - source[0][m], 0)
            if size:
                rows.extend((m, t, int(a), int(b), size) for a, b in zip(firsts, lasts, strict=True))
    return rows


def _readers(allocation: Allocation, space: DecisionSpace, schedule: _Schedule, node: object, t: Tensor) -> list:
    """The nodes that read ``t`` after ``node`` writes it. A handover inside one memory moves nothing, so the data
    stays where it is until the nodes reading the handover's copy have read it: they are ``t``'s readers."""
    transfers = set(space.transfer_nodes)
    found = []
    for reader in allocation.problem.workload.successors(node):
        if t not in getattr(reader, "inputs", ()) or reader not in schedule.slot_of:
            continue
        if reader in transfers and not internals.moves_data(space, allocation, reader):
            found += [r for copy in reader.outputs for r in _readers(allocation, space, schedule, reader, copy)]
        else:
            found.append(reader)
    return found


def _firings(group: str, allocation: Allocation, node: object, tiles: np.ndarray) -> np.ndarray:
    """Per tile (``tiles``: the tile of each iteration, :func:`internals.tile_of_iteration`), the iteration ``node``
    (a transfer, or a tensor's producer) first fires in: the first of the tile's iterations it is active in (the
    tile's first iteration when it is active in none)."""
    count = int(tiles.max()) + 1
    first = np.full(count, len(tiles), dtype=np.int64)
    np.minimum.at(first, tiles, np.arange(len(tiles), dtype=np.int64))
    active = internals.active_iterations(allocation, node, group)
    first_active = np.full(count, len(tiles), dtype=np.int64)
    np.minimum.at(first_active, tiles[active], active)
    return np.where(first_active < len(tiles), first_active, first)


def _last_reads(
    group: str,
    allocation: Allocation,
    schedule: _Schedule,
    producer: object,
    readers: list,
    tiles: np.ndarray,
    written: np.ndarray,
) -> np.ndarray:
    """Per tile (``tiles``: the tile of each iteration), the end of its last read: the latest slot end of a reader in
    the last of the tile's iterations the reader is active in (a reader idle on a loop reads the tile once); the
    producer's own end in the iteration it writes the tile (``written``) when no reader reads it. A reader whose slot
    comes before its producer's reads what the producer wrote in the iteration before: its iterations are one
    later."""
    lasts = schedule.lead + written * schedule.step + schedule.end[schedule.slot_of[producer]]
    for reader in readers:
        later = int(schedule.slot_of[reader] < schedule.slot_of[producer])
        active = internals.active_iterations(allocation, reader, group)
        active = active[active >= later]
        last = np.full(len(written), -1, dtype=np.int64)
        np.maximum.at(last, tiles[active - later], active)
        reads = (last >= 0) & (last >= written + later)
        ends = schedule.lead + last * schedule.step + schedule.end[schedule.slot_of[reader]]
        lasts = np.where(reads, np.maximum(lasts, ends), lasts)
    return lasts


@dataclass(frozen=True)
class _TransferEvents:
    """Access events of a group's transfers, and the bytes (memory, read/write) of the handovers left out."""

    events: list[tuple[int, int, int, int, int, Tensor]]
    handovers: np.ndarray


def _transfer_events(
    group: str,
    allocation: Allocation,
    space: DecisionSpace,
    schedule: _Schedule,
    accesses: CoreMemoryAccesses | None,
    memory_index: dict[int, int | None],
    memory_count: int,
) -> _TransferEvents:
    """Stream's transfer access counts (port-width words per core and tensor) as bytes per memory, split evenly over
    the firings of the transfer that moves the tensor (:func:`_firings`), at the start of its slot: (memory, source,
    0 read / 1 write,
    cycle, bytes, tensor). A transfer whose route stays inside one memory moves nothing (Stream prices it at zero,
    though ``memory_accesses`` counts a read and a write per core): its bytes go to ``handovers`` instead."""
    handovers = np.zeros((memory_count, 2), dtype=np.int64)
    if accesses is None:
        return _TransferEvents([], handovers)
    transfers = {
        t.name: tr for tr in allocation.problem.workload.get_transfer_nodes() for t in (*tr.inputs, *tr.outputs)
    }
    source = ACCESS_SOURCES.index("transfer")
    events: list[tuple[int, int, int, int, int, Tensor]] = []
    for core, per_tensor in accesses.accesses.items():
        m = memory_index.get(core.id)
        if m is None:
            continue
        for tensor, count in per_tensor.items():
            transfer = transfers.get(tensor.name)
            if transfer is None:
                fires = schedule.offsets()
            else:
                tiles = internals.tile_of_iteration(allocation, transfer, group)
                fires = schedule.lead + _firings(group, allocation, transfer, tiles) * schedule.step
                fires += schedule.start[schedule.slot_of[transfer]]
            moved = transfer is None or internals.moves_data(space, allocation, transfer)
            for kind, words, direction in ((0, count.read, "read"), (1, count.write, "write")):
                total = words * int(core.get_max_memory_bandwidth(direction)) // 8
                if not moved:
                    handovers[m, kind] += total
                elif total:
                    share, extra = divmod(total, len(fires))
                    events.extend(
                        (m, source, kind, int(fire), share + (extra if i == 0 else 0), tensor)
                        for i, fire in enumerate(fires)
                    )
    return _TransferEvents(events, handovers)


def _compute_events(
    group: str,
    allocation: Allocation,
    nodes: list[NodeSramAccess],
    schedule: _Schedule,
    memory_index: dict[int, int | None],
) -> list[tuple[int, int, int, int, int, Tensor]]:
    """Each node's accesses to its core's top memory, one event per operand and direction at the start of its slot
    in every iteration it is active in: (memory, source, 0 read / 1 write, cycle, bytes, tensor)."""
    source = ACCESS_SOURCES.index("compute")
    events: list[tuple[int, int, int, int, int, Tensor]] = []
    for access in nodes:
        m = memory_index.get(access.core.id)
        if m is None:
            continue
        starts = schedule.lead + internals.active_iterations(allocation, access.node, group) * schedule.step
        starts += schedule.start[schedule.slot_of[access.node]]
        for kind, size in ((0, access.read_bytes), (1, access.write_bytes)):
            if size:
                events.extend((m, source, kind, int(at), size, access.tensor) for at in starts)
    return events
