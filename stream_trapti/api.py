"""stream-trapti's entry points: trace what the on-chip memories of an accelerator hold while Stream's schedule of a
workload runs (Stage I), and explore banked, power-gated SRAM organisations on such a trace (Stage II).

A workload is an ONNX path; an accelerator is a Stream hardware YAML path. :func:`trace_workload` runs one Stream
solve with the occupancy tracker on; :func:`stream_trapti.inference.trace_inference` composes a whole inference from
solves of its distinct parts, reused and cached.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from stream.api import SolveOptions

from stream_trapti.cache_dir import cache_root
from stream_trapti.errors import ConfigError
from stream_trapti.fusion import FUSIONS, Fusion, scope_stage_options
from stream_trapti.provenance import file_identity, hardware_identity
from stream_trapti.sram.activity import Allocation
from stream_trapti.sram.cacti_build import available_cpus
from stream_trapti.sram.exploration import explore_and_write
from stream_trapti.sram.explore import ExplorationResult
from stream_trapti.sram.sweep_config import SweepSpec
from stream_trapti.trace import OccupancyTrace
from stream_trapti.tracker.compose import compose, needed_intervals
from stream_trapti.tracker.estimate import StreamEstimate
from stream_trapti.tracker.group import GroupOccupancy
from stream_trapti.tracker.solve import solve_groups_cached

__all__ = [
    "StreamEstimate",
    "TraceOptions",
    "TraceResult",
    "default_solve_options",
    "explore_result",
    "tensor_allocations",
    "trace_workload",
    "with_fusion",
]

logger = logging.getLogger(__name__)


def default_solve_options() -> SolveOptions:
    """Stream's solve as the tracker runs it by default: no per-solve reports, and one fused group per layer, which
    made Stream's generic mapping generator about ten times faster on a decoder block."""
    return SolveOptions(artifacts=False, stage_options={"fusion_cut_points": "per-layer"})


@dataclass(frozen=True)
class TraceOptions:
    """How a trace is made. ``solve`` are Stream's own options; the tracker adds itself to their
    ``instrumentation``. ``window`` is the access-statistics window in cycles (None: the trace is cut in 4096).
    ``cache_dir`` keeps solved groups across runs (None: ``$STREAM_TRAPTI_CACHE`` or ``~/.cache/stream-trapti``;
    set ``use_cache`` False to solve everything afresh). ``progress`` shows a progress bar on long runs. ``workers``
    is how many Stream solves of an inference run at once, each in its own process (None: one per available CPU;
    they share results through the cache, so with the cache off solves run one by one)."""

    solve: SolveOptions = field(default_factory=default_solve_options)
    window: int | None = None
    cache_dir: str | Path | None = None
    use_cache: bool = True
    progress: bool = True
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"TraceOptions.workers must be at least 1, got {self.workers}")

    def solve_workers(self) -> int:
        """How many solves run at once."""
        return self.workers or available_cpus()

    def cache(self) -> Path | None:
        """The directory solved groups are cached in, or None when caching is off."""
        return (Path(self.cache_dir) if self.cache_dir else cache_root()) if self.use_cache else None


@dataclass(frozen=True)
class TraceResult:
    """A trace, Stream's own estimate of the schedule it records, and the groups it was composed from."""

    trace: OccupancyTrace
    stream: StreamEstimate
    groups: tuple[GroupOccupancy, ...]


def with_fusion(options: TraceOptions, fusion: Fusion) -> TraceOptions:
    """``options`` whose solves fuse ``fusion``'s scope (:mod:`stream_trapti.fusion`); ``committed`` keeps them."""
    if fusion not in FUSIONS:
        raise ConfigError(f"fusion must be one of {list(FUSIONS)}, got {fusion!r}")
    stage_options = scope_stage_options(fusion, dict(options.solve.stage_options))
    return replace(options, solve=replace(options.solve, stage_options=stage_options))


def trace_workload(
    hardware: str | Path,
    workload: str | Path,
    output_path: str | Path,
    mapping: str | Path | None = None,
    options: TraceOptions | None = None,
    metadata: dict[str, str] | None = None,
    fusion: Fusion = "committed",
) -> TraceResult:
    """Solve ``workload`` on ``hardware`` with Stream (``mapping`` fixed, or Stream's generic mapping generator when
    None; or, with a ``fusion`` scope other than ``committed``, our generator's mapping of that scope,
    :mod:`stream_trapti.fusion`) and record what each on-chip memory holds at every cycle. Stream's own outputs go
    under ``output_path``."""
    if fusion != "committed" and mapping is not None:
        raise ConfigError(f"a mapping YAML is the committed schedule; fusion {fusion!r} generates its own")
    options = with_fusion(options or TraceOptions(), fusion)
    groups = solve_groups_cached(hardware, workload, output_path, mapping, options.solve, options.cache())
    stream = StreamEstimate.of(groups)
    meta = {
        "hardware": hardware_identity(hardware),
        "workload": file_identity(workload),
        "mapping": file_identity(mapping) if mapping else "generic" if fusion == "committed" else "stream-trapti",
        "fusion": fusion,
        **stream.metadata(),
        **(metadata or {}),
    }
    return TraceResult(compose(groups, window=options.window, metadata=meta), stream, tuple(groups))


def explore_result(result: TraceResult, spec: SweepSpec, out_dir: str | Path) -> ExplorationResult:
    """Stage II on a fresh trace (:func:`~stream_trapti.sram.exploration.explore_and_write`), whose solved groups
    also give the first-fit allocator its per-tensor allocations (a trace file does not hold them)."""
    allocations = tensor_allocations(result, spec.memory) if spec.allocator == "first_fit" else None
    return explore_and_write(result.trace, spec, out_dir, allocations)


def tensor_allocations(result: TraceResult, memory: int | str) -> list[Allocation]:
    """Every needed interval of ``memory`` in ``result`` as an allocation: the tensors' stays, in trace order."""
    intervals = needed_intervals(result.groups)
    keep = (intervals.memory == result.trace.memory_index(memory)) & (intervals.size > 0)
    return [
        Allocation(int(begin), int(end), int(size))
        for begin, end, size in zip(intervals.begin[keep], intervals.end[keep], intervals.size[keep], strict=True)
    ]
