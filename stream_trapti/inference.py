"""Whole-inference traces: a prefill of L tokens followed by N decode steps, composed without solving every layer.

With one fused group per layer (the default solve), every group's inputs and outputs go through the off-chip core,
so the groups of one decoder layer do not depend on the layers around them: the decoder layers of a model are
structurally identical and solve identically. Each step (prefill at L, decode at P) is therefore solved once, as a
one-layer model with the LM head (and the embedding, when asked for); its layer groups are then repeated for every
layer, renamed ``layer0.`` → ``layerK.``. Solves are cached on disk, so a rerun, or another run sharing a step,
solves nothing. A fixed mapping's fused groups may span layers, so a workload with one is traced whole, by
:func:`stream_trapti.api.trace_workload`. With the KV cache resident (:mod:`stream_trapti.residency`) a step is solved
on the SRAM the cache leaves at the step's end, which bounds what it leaves each earlier layer of the step.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import cache, partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from stream_trapti.api import TraceOptions, TraceResult, with_fusion
from stream_trapti.errors import ConfigError, SolveError, StreamContractError, TraptiError
from stream_trapti.fusion import Fusion
from stream_trapti.hardware_variants import sram_capacity_variant
from stream_trapti.provenance import hardware_identity
from stream_trapti.residency import DEFAULT_KV_BUDGET, KvResidency, ResidencyPlan, check_single_sram, keep_cache_on_chip
from stream_trapti.scratch import scratch_directory, scratch_root
from stream_trapti.trace import LAYER_PREFIX, MemoryInfo
from stream_trapti.tracker.compose import ResidentCache, compose
from stream_trapti.tracker.estimate import StreamEstimate
from stream_trapti.tracker.group import GroupOccupancy
from stream_trapti.tracker.inputs import hardware_memories
from stream_trapti.tracker.parallel import SolveJob, presolve
from stream_trapti.tracker.solve import solve_groups_cached
from stream_trapti.workloads.analytics import kv_cache_bytes
from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import DecoderConfig, preset
from stream_trapti.workloads.spec import WorkloadSpec
from stream_trapti.workloads.tensors import classify_tensor

__all__ = ["InferencePlan", "Phases", "Step", "plan_inference", "trace_inference", "trace_planned"]


@dataclass(frozen=True)
class Phases:
    """An inference: a prefill of ``prefill`` tokens, then ``decode_steps`` decode steps with P = L … L+N−1 past
    tokens. ``prefill=0`` with decode steps traces decode alone, from P = ``decode_from``."""

    prefill: int
    decode_steps: int = 0
    decode_from: int | None = None

    def __post_init__(self) -> None:
        if self.prefill < 0 or self.decode_steps < 0:
            raise ConfigError(
                f"Phases needs prefill >= 0 and decode_steps >= 0, got {self.prefill}, {self.decode_steps}"
            )
        if self.prefill == 0 and self.decode_steps == 0:
            raise ConfigError("Phases is empty: give a prefill length or some decode steps")
        if self.prefill == 0 and not self.decode_from:
            raise ConfigError("Phases without a prefill needs decode_from, the cache length of the first decode step")

    def steps(self) -> tuple[Step, ...]:
        """The phase and length of every step, in order."""
        first = self.decode_from or self.prefill
        prefill = (Step("prefill", self.prefill),) if self.prefill else ()
        return (*prefill, *(Step("decode", p) for p in range(first, first + self.decode_steps)))


@dataclass(frozen=True)
class Step:
    """One forward pass: ``prefill`` of ``length`` tokens, or ``decode`` over a cache of ``length`` past tokens."""

    phase: str
    length: int

    @property
    def label(self) -> str:
        return f"{self.phase}{'_L' if self.phase == 'prefill' else '_P'}{self.length}"

    @property
    def cache_tokens(self) -> int:
        """The cache length once the step has run: the prompt, or the past tokens and the one appended."""
        return self.length if self.phase == "prefill" else self.length + 1

    @property
    def appended_tokens(self) -> int:
        """The positions each layer appends to its cache in this step."""
        return self.length if self.phase == "prefill" else 1


@dataclass(frozen=True)
class InferencePlan:
    """An inference made ready to solve: its steps, the one-layer solve of each (``jobs``, inputs written), what the
    resident cache leaves Stream in each (``free``), and what composing the solved steps needs."""

    hardware: Path
    config: DecoderConfig
    depth: int
    precision_bits: int
    embedding: bool
    memories: tuple[MemoryInfo, ...]
    residency: ResidencyPlan
    steps: tuple[Step, ...]
    free: tuple[int, ...]
    jobs: tuple[SolveJob, ...]


def plan_inference(
    hardware: str | Path,
    model: str | DecoderConfig,
    phases: Phases,
    root: Path,
    *,
    layers: int | None = None,
    precision_bits: int = 8,
    gqa: str = "broadcast",
    embedding: bool = False,
    kv_residency: KvResidency = "streamed",
    kv_budget: float = DEFAULT_KV_BUDGET,
) -> InferencePlan:
    """Everything :func:`trace_inference` checks and prepares before its first solve: every step checked against the
    model, the cache's residency planned (a cache that cannot fit fails here), each step's hardware variant made and
    its one-layer workload written under ``root``. Arguments as for :func:`trace_inference`."""
    config = preset(model) if isinstance(model, str) else model
    depth = config.layers if layers is None else layers
    if not 1 <= depth <= config.layers:
        raise ConfigError(f"layers must be from 1 to {config.name}'s depth {config.layers}, got {depth}")
    steps = phases.steps()
    specs = [
        WorkloadSpec(s.phase, s.length, 1, precision_bits, embedding=embedding, lm_head="last", gqa=gqa) for s in steps
    ]
    for spec in specs:  # every step is checked before the first is solved
        spec.check_against(config)
    memories = hardware_memories(hardware)
    check_single_sram(len(memories), kv_residency)
    plan = ResidencyPlan(
        kv_residency,
        depth,
        kv_cache_bytes(config, 1, precision_bits),
        memories[0].capacity_bytes,
        steps[-1].cache_tokens,
        kv_budget,
    )
    free = tuple(plan.free_capacity(s.label, s.cache_tokens) for s in steps)  # a cache that cannot fit fails first
    jobs = tuple(
        SolveJob(
            _step_hardware(hardware, plan, capacity),
            write_workload(config, spec, root / f"{config.name}_{step.label}.onnx"),
            root / step.label,
        )
        for step, spec, capacity in zip(steps, specs, free, strict=True)
    )
    return InferencePlan(Path(hardware), config, depth, precision_bits, embedding, memories, plan, steps, free, jobs)


def trace_inference(
    hardware: str | Path,
    model: str | DecoderConfig,
    phases: Phases,
    *,
    layers: int | None = None,
    precision_bits: int = 8,
    gqa: str = "broadcast",
    embedding: bool = False,
    kv_residency: KvResidency = "streamed",
    kv_budget: float = DEFAULT_KV_BUDGET,
    fusion: Fusion = "committed",
    options: TraceOptions | None = None,
    work_dir: str | Path | None = None,
) -> TraceResult:
    """The trace of a whole inference of ``model`` (a preset name or a config) on ``hardware``: every step of
    ``phases`` over ``layers`` decoder layers (default: the model's depth) and the LM head over the last position.
    ``embedding`` adds the token lookup; it is off by default because Stream 2.1.1 prices a Gather as a pass over
    the whole table (GPT-2 XL's 80 MB one costs more cycles than 25 decoder layers at L = 128), so the hidden states
    enter from DRAM instead. ``kv_residency`` says where the KV cache lives between operators
    (:mod:`stream_trapti.residency`; ``kv_budget`` is the SRAM share ``fit`` gives it); the hardware variants it
    solves on are cached under the cache root. ``fusion`` is the scope Stream fuses (:mod:`stream_trapti.fusion`;
    ``committed``: Stream's generic mapping generator, one group per operator). Stream's outputs and the generated
    ONNX go under ``work_dir`` (default: a scratch directory under the cache root)."""
    with _work_dir(work_dir) as root:
        planned = plan_inference(
            hardware,
            model,
            phases,
            root,
            layers=layers,
            precision_bits=precision_bits,
            gqa=gqa,
            embedding=embedding,
            kv_residency=kv_residency,
            kv_budget=kv_budget,
        )
        return trace_planned(planned, options, fusion)


def trace_planned(
    planned: InferencePlan, options: TraceOptions | None = None, fusion: Fusion = "committed"
) -> TraceResult:
    """The trace of a planned inference: its steps solved (those the cache does not hold side by side first, see
    :func:`~stream_trapti.tracker.parallel.presolve`) with ``fusion``'s scope, their layers repeated and the whole
    composed in order."""
    options = with_fusion(options or TraceOptions(), fusion)
    plan, memories, depth, steps, jobs = planned.residency, planned.memories, planned.depth, planned.steps, planned.jobs
    composed: list[GroupOccupancy] = []
    added: list[int] = []
    if (cache_dir := options.cache()) is not None:
        presolve(jobs, options.solve, cache_dir, options.solve_workers(), options.progress)
    bar = tqdm(
        zip(steps, jobs, planned.free, strict=True),
        total=len(steps),
        desc=f"tracing {planned.config.name}",
        unit="step",
        disable=not options.progress,
    )
    for step, job, capacity in bar:
        bar.set_postfix_str(step.label)
        try:
            groups = solve_groups_cached(job.hardware, job.workload, job.output_path, None, options.solve, cache_dir)
        except SolveError as error:
            if capacity == plan.capacity_bytes:
                raise
            raise SolveError(
                f"step {step.label}: with {plan.resident_bytes(step.cache_tokens):,} B of KV cache resident, the "
                f"{capacity:,} B of SRAM left do not hold the step's tiles ({error.__cause__ or error})"
            ) from error
        solved = [_on_memories(g, memories) for g in groups]
        layers_of_step = _step_groups(solved, depth, plan.resident_layers, f"{step.label}/")
        composed += layers_of_step
        added += _appended(layers_of_step, plan, step)
    stream = StreamEstimate.of(composed)
    meta = {
        **stream.metadata(),
        "hardware": hardware_identity(planned.hardware),
        "model": planned.config.name,
        "layers": str(depth),
        "precision_bits": str(planned.precision_bits),
        "embedding": str(planned.embedding),
        "steps": ",".join(s.label for s in steps),
        "kv_residency": plan.policy,
        "kv_resident_layers": str(plan.resident_layers),
        "fusion": fusion,
    }
    first = steps[0]
    resident = ResidentCache(
        0, plan.resident_bytes(first.cache_tokens - first.appended_tokens), np.array(added, dtype=np.int64)
    )
    trace = compose(composed, window=options.window, metadata=meta, resident=resident)
    return TraceResult(trace, stream, tuple(composed))


def _step_hardware(hardware: str | Path, plan: ResidencyPlan, capacity: int) -> Path:
    """The hardware a step is solved on: ``hardware`` itself, or a variant whose SRAM offers Stream only
    ``capacity`` bytes, at the physical macro's per-access costs."""
    if capacity == plan.capacity_bytes:
        return Path(hardware)
    return sram_capacity_variant(hardware, capacity, cost_capacity_bytes=plan.capacity_bytes)


def _on_memories(group: GroupOccupancy, memories: tuple[MemoryInfo, ...]) -> GroupOccupancy:
    """``group``, solved on a capacity variant, described with the physical hardware's memories: the trace of a whole
    run is of one SRAM, whatever share of it each step left Stream."""
    if group.memories == memories:
        return group
    if [(m.name, m.core_ids) for m in group.memories] != [(m.name, m.core_ids) for m in memories]:
        raise StreamContractError(f"group {group.name!r} was solved on other memories than {memories}")
    return replace(group, memories=memories)


def _step_groups(
    groups: Sequence[GroupOccupancy], depth: int, resident_layers: int, prefix: str
) -> list[GroupOccupancy]:
    """The one-layer solve's ``groups`` as a step runs them (:func:`repeat_layers`), the first ``resident_layers``
    layers with their cache kept on chip, every group's name prefixed with ``prefix``. The cache is taken off the
    solved layer once, so repeated layers share their arrays (and :func:`~stream_trapti.tracker.compose.compose`
    reduces each array once)."""
    kept = [keep_cache_on_chip(g, 0, _class_of) if _layer(g) == 0 else g for g in groups] if resident_layers else None
    return repeat_layers(groups, depth, prefix, kept, resident_layers)


def _class_of(tensor: str) -> str:
    """The class of a tensor this package's builder named (:func:`~stream_trapti.workloads.tensors.classify_tensor`)."""
    return classify_tensor(tensor).value


def _appended(groups: Sequence[GroupOccupancy], plan: ResidencyPlan, step: Step) -> list[int]:
    """Bytes each group adds to the resident cache as it starts: a resident layer's first group appends the layer's
    entries of the step."""
    entries = step.appended_tokens * plan.layer_token_bytes
    first_of_layer = {}
    for i, g in enumerate(groups):
        first_of_layer.setdefault(_layer(g), i)
    starts = {i for layer, i in first_of_layer.items() if 0 <= layer < plan.resident_layers}
    return [entries if i in starts else 0 for i in range(len(groups))]


def _layer(group: GroupOccupancy) -> int:
    """The decoder layer a group belongs to, or -1 (embedding, LM head)."""
    found = LAYER_PREFIX.search(group.name)
    return int(found.group(1)) if found else -1


def repeat_layers(
    groups: Sequence[GroupOccupancy],
    depth: int,
    prefix: str = "",
    kept: Sequence[GroupOccupancy] | None = None,
    kept_layers: int = 0,
) -> list[GroupOccupancy]:
    """The groups of a one-layer solve with its layer's groups repeated ``depth`` times, renamed per layer and
    prefixed with ``prefix``: the groups before the first layer group (the embedding) stay first, those after the
    last (the LM head) stay last. The first ``kept_layers`` layers repeat ``kept`` (the same groups, changed)."""
    in_layer = [i for i, g in enumerate(groups) if LAYER_PREFIX.match(g.name)]
    if not in_layer:
        raise TraptiError("the one-layer solve has no group named 'layer0.…': was the workload built by stream_trapti?")
    first, last = in_layer[0], in_layer[-1] + 1
    layer, kept_layer = groups[first:last], (kept or groups)[first:last]
    repeated = [
        g.renamed(partial(_layer_name, layer=k), prefix)
        for k in range(depth)
        for g in (kept_layer if k < kept_layers else layer)
    ]
    unchanged = partial(_layer_name, layer=None)
    return [
        *(g.renamed(unchanged, prefix) for g in groups[:first]),
        *repeated,
        *(g.renamed(unchanged, prefix) for g in groups[last:]),
    ]


@cache
def _layer_name(name: str, layer: int | None) -> str:
    """``name`` (of layer 0) as layer ``layer`` names it; None leaves it unchanged. Cached: every step repeats the same
    names over the same layers."""
    return name if layer is None else LAYER_PREFIX.sub(f"layer{layer}.", name)


@contextmanager
def _work_dir(path: str | Path | None) -> Iterator[Path]:
    """``path``, created, or a scratch directory under the cache root, removed afterwards (or by a later run, if this
    one is killed)."""
    if path is None:
        with scratch_directory(scratch_root(), "inference") as scratch:
            yield scratch
        return
    Path(path).mkdir(parents=True, exist_ok=True)
    yield Path(path)
