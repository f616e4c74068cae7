"""A TRAPTI experiment: Stage I and Stage II on one accelerator for one or more workloads, written as one directory.

An experiment is a small YAML file (or the INPUTS block of ``scripts/main_trapti.py``)::

    experiment_id: mha_vs_gqa_L1024
    hardware: hardware/trapti_edge.yaml
    models: [gpt2-xl, deepseek-r1-distill-qwen-1.5b]   # presets; or  onnx: path/to/block.onnx  (+ mapping:)
                                                       # or a Hugging Face export, imported for prefill (L or P)
    prefill: 1024
    decode_steps: 0
    layers: null           # default: each model's depth
    kv_residency: streamed # or resident, fit: where the KV cache lives (stream_trapti.residency)
    kv_budget: 0.5         # with fit: the share of the SRAM the cache may take
    fusion: committed      # or operator, attention, layer: what Stream fuses (stream_trapti.fusion)
    sram_capacities_mib: null  # e.g. [2, 4, 8]: one run per capacity, on a variant of the hardware with that SRAM
    sweep: inputs/sweep_default.yaml
    output_dir: outputs

Relative paths are taken from the current directory, as Stream's own ``main.py`` scripts take theirs. The run writes
``<output_dir>/<experiment_id>/``: per workload ``trace/`` (trace, CSV, Perfetto JSON, occupancy plot, summary) and
``sram/`` (configurations, Pareto front, plots), then ``summary.json`` and ``report.md`` over all of them; with
``sram_capacities_mib`` a workload is named ``<model>_<capacity>mib``. Solves and
CACTI runs are cached, so re-running the same experiment recomputes nothing expensive.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from stream_trapti.api import TraceOptions, TraceResult, explore_result, trace_workload
from stream_trapti.atomic import atomic_directory
from stream_trapti.config_model import ConfigModel, Int, PlainName, PresetName, UniqueTuple, load_yaml, parse_config
from stream_trapti.fusion import Fusion
from stream_trapti.hardware_variants import sram_capacity_variant
from stream_trapti.importer.cached import is_export
from stream_trapti.importer.compose import trace_export
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.provenance import file_identity, hardware_identity
from stream_trapti.reports.report_md import write_report
from stream_trapti.reports.trace_outputs import trace_summary, write_trace_outputs
from stream_trapti.residency import DEFAULT_KV_BUDGET, KvResidency
from stream_trapti.scratch import scratch_directory, scratch_root
from stream_trapti.sram.explore import ExplorationResult
from stream_trapti.sram.sweep_config import SweepSpec, check_sweep_memory, load_sweep_spec
from stream_trapti.summary import ExperimentRecord, ExperimentSummary, SramHeadline, WorkloadSummary
from stream_trapti.tracker.inputs import hardware_memories
from stream_trapti.workloads.config import PRESETS
from stream_trapti.workloads.spec import PRECISIONS

_PRESET_KEYS = ("prefill", "decode_steps", "layers", "precision_bits", "kv_residency", "kv_budget")
"""The keys that shape preset workloads; an ``onnx`` workload is solved as given, so they do not apply to it."""
_EXPORT_KEYS = ("prefill", "precision_bits")
"""The keys that shape an ``onnx`` Hugging Face export: it is imported (:mod:`stream_trapti.importer`) for a prefill
of ``prefill`` tokens, or for a decode step after ``prefill`` cached ones if it is a decode export."""


class Experiment(ConfigModel):
    """What to run; see the module docstring. Exactly one of ``models`` (presets) and ``onnx`` (one workload) is
    given; ``prefill``, ``decode_steps``, ``layers`` and ``precision_bits`` shape preset workloads and are errors
    with ``onnx``, ``mapping`` is one without it. Constructing an Experiment validates it (a
    :class:`pydantic.ValidationError`); :func:`parse_experiment` reports the same as a ConfigError naming the file."""

    experiment_id: PlainName
    hardware: Path
    models: UniqueTuple[PresetName] = ()
    onnx: Path | None = None
    mapping: Path | None = None
    prefill: Annotated[Int, Field(ge=1)] = 1024
    decode_steps: Annotated[Int, Field(ge=0)] = 0
    layers: Annotated[Int, Field(ge=1)] | None = None
    precision_bits: Literal[PRECISIONS] = 8
    kv_residency: KvResidency = "streamed"
    kv_budget: Annotated[float, Field(gt=0, le=1)] = DEFAULT_KV_BUDGET
    fusion: Fusion = "committed"
    sram_capacities_mib: UniqueTuple[Annotated[float, Field(gt=0)]] | None = None
    sweep: Path | None = None
    output_dir: Path = Path("outputs")

    @model_validator(mode="after")
    def _keys_apply_to_the_workload(self) -> Self:
        if bool(self.models) == (self.onnx is not None):
            given = "both" if self.models else "neither"
            raise ValueError(f"give exactly one of 'models' or 'onnx' (presets, or one ONNX workload), got {given}")
        allowed = _EXPORT_KEYS if self.onnx is not None and self.onnx.is_file() and is_export(self.onnx) else ()
        given = [key for key in _PRESET_KEYS if key in self.model_fields_set and key not in allowed]
        if allowed and "mapping" in self.model_fields_set:
            raise ValueError("key 'mapping': a Hugging Face export is imported and mapped by Stream's generic mapper")
        if self.onnx is not None and given:
            raise ValueError(
                f"key '{given[0]}': applies to model presets only (and prefill, precision_bits to a Hugging Face "
                "export); an 'onnx' workload is solved as given"
            )
        if self.onnx is None and "mapping" in self.model_fields_set:
            raise ValueError("key 'mapping': applies to an 'onnx' workload only; presets use Stream's generic mapper")
        if "kv_budget" in self.model_fields_set and self.kv_residency != "fit":
            raise ValueError("key 'kv_budget': applies to kv_residency: fit only")
        if self.mapping is not None and self.fusion != "committed":
            raise ValueError(f"key 'mapping': is the committed schedule; fusion {self.fusion!r} generates its own")
        return self

    @model_validator(mode="after")
    def _fits_every_model(self) -> Self:
        for name in self.models:
            config = PRESETS[name]
            if self.layers is not None and self.layers > config.layers:
                raise ValueError(f"key 'layers': {name} has {config.layers} decoder layers, got {self.layers}")
            # The last decode step attends to the prompt and every generated token.
            if (positions := self.prefill + self.decode_steps) > config.max_positions:
                raise ValueError(
                    f"keys 'prefill' and 'decode_steps': {name} has {config.max_positions} positions, got "
                    f"prefill + decode_steps = {positions}"
                )
        return self

    @property
    def directory(self) -> Path:
        """Where the experiment's outputs go."""
        return self.output_dir / self.experiment_id


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML; errors name the file and the key."""
    return parse_experiment(load_yaml(path, "experiment YAML"), str(path))


def parse_experiment(data: Mapping[str, Any], source: str = "experiment") -> Experiment:
    """An :class:`Experiment` from a mapping of its keys; a bad key or value is a :class:`ConfigError` naming
    ``source`` and the key."""
    return parse_config(Experiment, data, source)


def check_experiment(experiment: Experiment) -> SweepSpec:
    """What would otherwise fail only after the Stream solves, checked before the first: the sweep file, and the
    sweep's memory, capacities, banks and port width against the on-chip memories of the experiment's hardware
    (which is parsed for that). Returns the sweep."""
    if experiment.sweep is None:
        spec, source = SweepSpec(), "the default sweep"
    else:
        spec, source = load_sweep_spec(experiment.sweep), str(experiment.sweep)
    memories = hardware_memories(experiment.hardware)
    for capacity in experiment.sram_capacities_mib or (None,):
        if capacity is None:
            check_sweep_memory(spec, memories, source)
            continue
        # Every memory this experiment's sweep can name must be checked at the capacity it will have.
        resized = tuple(replace(m, capacity_bytes=round(capacity * 2**20)) for m in memories)
        check_sweep_memory(spec, resized, f"{source} (with sram_capacities_mib {capacity:g})")
    return spec


def run_experiment(experiment: Experiment, options: TraceOptions | None = None) -> ExperimentSummary:
    """Run Stage I and Stage II for every workload of ``experiment`` and write its directory (replaced whole, only
    once everything is written). Returns the summary also written to ``summary.json``."""
    options = options or TraceOptions()
    spec = check_experiment(experiment)
    inputs = _inputs(experiment)
    workloads: dict[str, WorkloadSummary] = {}
    with (
        atomic_directory(experiment.directory, inputs) as staging,
        scratch_directory(scratch_root(), "experiment") as work,
    ):
        for name, result in _traces(experiment, options, work):
            write_trace_outputs(result, staging / name / "trace")
            sram = explore_result(result, spec, staging / name / "sram")
            workloads[name] = WorkloadSummary(trace=trace_summary(result), sram=sram_summary(sram))
        summary = ExperimentSummary(experiment=experiment_record(experiment), workloads=workloads)
        (staging / "summary.json").write_text(summary.to_json())
        write_report(summary, staging)
    return summary


def _inputs(experiment: Experiment) -> tuple[Path, ...]:
    """The files the experiment reads: its output directory must not hold any of them."""
    return tuple(p for p in (experiment.hardware, experiment.onnx, experiment.mapping, experiment.sweep) if p)


def experiment_record(experiment: Experiment) -> ExperimentRecord:
    """What ran, for ``summary.json``: input files by name and content hash (:mod:`stream_trapti.provenance`), so the
    record does not depend on how their paths were spelled; the shape of preset workloads, None when an ONNX workload
    ran as given."""
    presets = bool(experiment.models)
    imported = experiment.onnx is not None and is_export(experiment.onnx)
    return ExperimentRecord(
        experiment_id=experiment.experiment_id,
        hardware=hardware_identity(experiment.hardware),
        models=experiment.models,
        onnx=file_identity(experiment.onnx) if experiment.onnx else None,
        mapping=file_identity(experiment.mapping) if experiment.mapping else None,
        sweep=file_identity(experiment.sweep) if experiment.sweep else None,
        prefill=experiment.prefill if presets or imported else None,
        decode_steps=experiment.decode_steps if presets else None,
        layers=experiment.layers,
        precision_bits=experiment.precision_bits if presets or imported else None,
        kv_residency=experiment.kv_residency if presets else None,
        kv_budget=experiment.kv_budget if presets and experiment.kv_residency == "fit" else None,
        fusion=experiment.fusion,
        sram_capacities_mib=experiment.sram_capacities_mib,
    )


def _traces(experiment: Experiment, options: TraceOptions, work: Path) -> Iterator[tuple[str, TraceResult]]:
    """Each workload's name and trace, in order; Stream's own outputs go under ``work``."""
    for suffix, hardware in _hardware(experiment):
        if experiment.onnx is not None:
            name = experiment.onnx.stem + suffix
            if is_export(experiment.onnx):
                # One decoder layer imported and solved, then repeated, as presets are.
                args = (experiment.prefill, experiment.precision_bits, options, work / name)
                yield name, trace_export(hardware, experiment.onnx, *args)
                continue
            yield (
                name,
                trace_workload(
                    hardware, experiment.onnx, work / name, experiment.mapping, options, fusion=experiment.fusion
                ),
            )
            continue
        phases = Phases(experiment.prefill, experiment.decode_steps)
        for model in experiment.models:
            result = trace_inference(
                hardware,
                model,
                phases,
                layers=experiment.layers,
                precision_bits=experiment.precision_bits,
                kv_residency=experiment.kv_residency,
                kv_budget=experiment.kv_budget,
                fusion=experiment.fusion,
                options=options,
                work_dir=work / (model + suffix),
            )
            yield model + suffix, result


def _hardware(experiment: Experiment) -> list[tuple[str, Path]]:
    """The accelerators to run on, each with the suffix its workloads' names take: the experiment's hardware, or
    one variant of it per SRAM capacity, priced by CACTI for that capacity."""
    if experiment.sram_capacities_mib is None:
        return [("", experiment.hardware)]
    return [
        (f"_{mib:g}mib", sram_capacity_variant(experiment.hardware, round(mib * 2**20)))
        for mib in experiment.sram_capacities_mib
    ]


def sram_summary(result: ExplorationResult) -> SramHeadline:
    """The headline of an exploration: the best configuration per objective, the always-on baseline it is measured
    against, and Stream's own estimate of the same SRAM."""
    energy = result.configs[result.best["energy"]]
    stream = result.stream_estimate_pj
    return SramHeadline(
        memory=result.memory,
        configurations=len(result.configs),
        pareto_size=len(result.pareto),
        best={objective: result.configs[index] for objective, index in result.best.items()},
        stream_estimate_pj=stream,
        best_vs_stream=(energy.total_pj / stream) if stream else None,
    )


def jsonable(value: Any) -> Any:
    """``value`` with paths as strings, tuples as lists and mapping keys as strings, for ``json.dumps``."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
