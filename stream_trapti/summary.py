"""The typed figures of a trace and of an experiment, and ``summary.json``, the file that holds them.

An experiment's summary is built once, after its runs, and written with :meth:`ExperimentSummary.to_json`; the
report, the console output and ``stream-trapti report`` render from the model (the last after
:meth:`ExperimentSummary.load`), so every renderer reads the same figures by name. Each workload names the memory
its SRAM exploration swept (:attr:`WorkloadSummary.memory`), and that is the memory the renderers talk about.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stream_trapti.errors import InputFileError
from stream_trapti.sram.explore import ConfigResult

SCHEMA_VERSION = 3
"""The version of ``summary.json``'s layout; bump it when a field changes meaning or name."""


class _Figures(BaseModel):
    # Frozen and closed: a summary is a record, and a key this version does not know means another layout.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class TensorFigures(_Figures):
    """One of the largest tensors of a memory and view, at its most concurrent."""

    tensor: str
    tensor_class: str = Field(alias="class")
    bytes: int


class AccessFigures(_Figures):
    """Bytes and port words one access source reads and writes in a memory over the trace."""

    bytes_read: int
    bytes_written: int
    reads: int
    writes: int


class MemoryFigures(_Figures):
    """One on-chip memory of a trace: per view (``reserved``, ``needed``) its peak, when and in which fused group it
    happens, the peak of each class and the largest tensors; its accesses, in total and by source
    (``transfer``, ``compute``); and the SRAM energy Stream itself charges for them, by source (None when the trace
    does not carry it)."""

    name: str
    core_ids: tuple[int, ...]
    capacity_bytes: int
    peak_reserved_bytes: int
    peak_reserved_cycle: int
    peak_reserved_group: str | None
    peak_reserved_by_class: dict[str, int]
    top_reserved_tensors: tuple[TensorFigures, ...]
    peak_needed_bytes: int
    peak_needed_cycle: int
    peak_needed_group: str | None
    peak_needed_by_class: dict[str, int]
    top_needed_tensors: tuple[TensorFigures, ...]
    bytes_read: int
    bytes_written: int
    accesses: dict[str, AccessFigures]
    stream_sram_energy_pj: dict[str, float] | None


Bound = Literal["compute", "sram_port", "dram"]
"""The three lower bounds of a group's cycles, in the order the roofline lists them."""


class RooflineRow(_Figures):
    """One fused group of the run, or the same group of every layer (``layer*.``, ``count`` of them), its figures
    summed over them: its nodes and the cores they run on, the MACs of its matmul/conv nodes, and its cycles against
    three lower bounds. ``compute_cycles``: its nodes on the busiest core at full use of that core's PEs (ZigZag's
    ideal cycles, every op of the vector core included); ``sram_port_cycles``: the bits through the busiest on-chip
    memory port over its rate; ``dram_cycles``: the bits through the off-chip memory's port over its rate (the bounds
    Stream's ``memory_ports`` family puts on each iteration). ``zigzag_cycles`` is what ZigZag gives the busiest
    core's nodes, each core alone at its memories' ports; ``bound`` the largest of the three bounds (the one nearest
    ``stream_cycles``) and ``slack`` Stream's cycles over it."""

    group: str
    count: int
    nodes: int
    cores: tuple[int, ...]
    macs: int
    compute_cycles: int
    zigzag_cycles: int
    sram_port_cycles: int
    dram_bytes: int
    dram_cycles: int
    stream_cycles: int
    bound: Bound
    slack: float | None


class RooflineFigures(_Figures):
    """The roofline of a run, one row per group (:class:`RooflineRow`, in run order), and the whole run's: its MACs,
    cycles, the peak MACs per cycle of the cores that ran MACs, the utilisation ``macs / (cycles · peak)``, the
    cycles if every group ran at its nearest bound (``bound_cycles``) and how many of Stream's cycles each bound
    explains (``cycles_by_bound``: Stream's cycles of the groups it bounds)."""

    rows: tuple[RooflineRow, ...]
    macs: int
    cycles: int
    peak_macs_per_cycle: int
    utilisation: float | None
    bound_cycles: int
    cycles_by_bound: dict[str, int]


class TraceFigures(_Figures):
    """The headline figures of a trace (a trace's own ``summary.json``): cycles, Stream's cycles and energy, the
    bytes moved across the off-chip interface (in total and, both directions, by tensor class), the number of fused
    groups, the trace's metadata, its on-chip memories and its roofline per group."""

    cycles: int
    stream_cycles: int
    stream_energy_pj: float
    dram_bytes_read: int
    dram_bytes_written: int
    dram_bytes_by_class: dict[str, int]
    groups: int
    metadata: dict[str, str]
    memories: tuple[MemoryFigures, ...]
    roofline: RooflineFigures

    def to_json(self) -> str:
        """The trace's ``summary.json``."""
        return _dump(self)


class SramHeadline(_Figures):
    """The headline of an SRAM exploration: the memory it swept, how many configurations it priced and how many are
    Pareto-optimal, the best configuration per objective (each with its always-on baseline), and Stream's own
    estimate of the same SRAM with the best energy's ratio to it."""

    memory: str
    configurations: int
    pareto_size: int
    best: dict[str, ConfigResult]
    stream_estimate_pj: float | None
    best_vs_stream: float | None

    @property
    def best_energy(self) -> ConfigResult:
        """The configuration of least energy, the headline's best."""
        return self.best["energy"]


class ExperimentRecord(_Figures):
    """What ran: input files by name and content hash (:mod:`stream_trapti.provenance`); the shape of preset
    workloads (``None`` when an ONNX workload ran as given)."""

    experiment_id: str
    hardware: str
    models: tuple[str, ...]
    onnx: str | None
    mapping: str | None
    sweep: str | None
    prefill: int | None
    decode_steps: int | None
    layers: int | None
    precision_bits: int | None
    kv_residency: str | None
    kv_budget: float | None
    fusion: str = "committed"
    sram_capacities_mib: tuple[float, ...] | None


class WorkloadSummary(_Figures):
    """One workload of an experiment: its trace figures and the headline of the exploration of one of its
    memories."""

    trace: TraceFigures
    sram: SramHeadline

    @model_validator(mode="after")
    def _swept_memory_is_traced(self) -> WorkloadSummary:
        if self.sram.memory not in (m.name for m in self.trace.memories):
            raise ValueError(f"the swept memory {self.sram.memory!r} is not a memory of the trace")
        return self

    @property
    def memory(self) -> MemoryFigures:
        """The trace figures of the memory the SRAM exploration swept."""
        return next(m for m in self.trace.memories if m.name == self.sram.memory)


class ExperimentSummary(_Figures):
    """An experiment's ``summary.json``: what ran and, per workload in run order, its figures."""

    schema_version: Literal[SCHEMA_VERSION] = SCHEMA_VERSION
    experiment: ExperimentRecord
    workloads: dict[str, WorkloadSummary]

    def to_json(self) -> str:
        """The summary as ``summary.json`` holds it: the same model gives the same bytes."""
        return _dump(self)

    @classmethod
    def load(cls, path: str | Path) -> ExperimentSummary:
        """Read an experiment's ``summary.json``. A missing, truncated or malformed file, or one written with another
        schema version, is a one-line :class:`InputFileError` naming it."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise InputFileError(f"{path}: not the summary of a stream-trapti experiment ({error})") from None
        version = data.get("schema_version") if isinstance(data, dict) else None
        if version != SCHEMA_VERSION:
            raise InputFileError(
                f"{path}: not the summary of a stream-trapti experiment of this version (schema version {version}, "
                f"expected {SCHEMA_VERSION}); rerun the experiment"
            )
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(map(str, first["loc"])) or "top level"
            raise InputFileError(
                f"{path}: not the summary of a stream-trapti experiment ({where}: {first['msg']})"
            ) from None


def _dump(model: BaseModel) -> str:
    # Keys by alias ('class'), in field order, indented as the files always were: deterministic bytes.
    return json.dumps(model.model_dump(mode="json", by_alias=True), indent=1)
