"""A TRAPTI experiment: Stage I and Stage II on one accelerator for one or more workloads, written as one directory.

An experiment is a small YAML file (or the INPUTS block of ``scripts/main_trapti.py``)::

    experiment_id: mha_vs_gqa_L1024
    hardware: hardware/trapti_edge.yaml
    models: [gpt2-xl, deepseek-r1-distill-qwen-1.5b]   # presets; or  onnx: path/to/block.onnx  (+ mapping:)
    prefill: 1024
    decode_steps: 0
    layers: null           # default: each model's depth
    sweep: inputs/sweep_default.yaml
    output_dir: outputs

Relative paths are taken from the current directory, as Stream's own ``main.py`` scripts take theirs. The run writes
``<output_dir>/<experiment_id>/``: per workload ``trace/`` (trace, CSV, Perfetto JSON, occupancy plot, summary) and
``sram/`` (configurations, Pareto front, plots), then ``summary.json`` and ``report.md`` over all of them. Solves and
CACTI runs are cached, so re-running the same experiment recomputes nothing expensive.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from stream_trapti.api import TraceOptions, TraceResult, trace_workload
from stream_trapti.atomic import atomic_directory
from stream_trapti.errors import TraptiError
from stream_trapti.inference import Phases, trace_inference
from stream_trapti.reports.report_md import write_report
from stream_trapti.reports.trace_outputs import trace_summary, write_trace_outputs
from stream_trapti.sram.exploration import explore_result
from stream_trapti.sram.explore import ExplorationResult
from stream_trapti.sram.sweep_config import SweepSpec, load_sweep_spec


@dataclass(frozen=True)
class Experiment:
    """What to run; see the module docstring. Exactly one of ``models`` and ``onnx`` is given."""

    experiment_id: str
    hardware: Path
    models: tuple[str, ...] = ()
    onnx: Path | None = None
    mapping: Path | None = None
    prefill: int = 1024
    decode_steps: int = 0
    layers: int | None = None
    precision_bits: int = 8
    sweep: Path | None = None
    output_dir: Path = Path("outputs")

    def __post_init__(self) -> None:
        if not self.experiment_id or "/" in self.experiment_id:
            raise TraptiError(f"experiment_id must be a non-empty name without '/', got {self.experiment_id!r}")
        if bool(self.models) == (self.onnx is not None):
            raise TraptiError("an experiment gives either 'models' (presets) or 'onnx' (one workload), not both")
        if self.mapping is not None and self.onnx is None:
            raise TraptiError("'mapping' applies to an 'onnx' workload; model presets use Stream's generic mapper")

    @property
    def directory(self) -> Path:
        """Where the experiment's outputs go."""
        return self.output_dir / self.experiment_id


_PATHS = {"hardware", "onnx", "mapping", "sweep", "output_dir"}


def load_experiment(path: str | Path) -> Experiment:
    """Read and validate an experiment YAML; errors name the file and the key."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TraptiError(f"{path}: cannot read the experiment ({error})") from error
    return parse_experiment(data, str(path))


def parse_experiment(data: Mapping[str, Any], source: str = "experiment") -> Experiment:
    """An :class:`Experiment` from a mapping of its keys; unknown or ill-typed keys are errors naming ``source``."""
    if not isinstance(data, Mapping):
        raise TraptiError(f"{source}: expected a mapping of experiment keys, got {type(data).__name__}")
    allowed = {f.name for f in fields(Experiment)}
    if unknown := sorted(set(data) - allowed):
        raise TraptiError(f"{source}: unknown key(s) {unknown}; allowed keys are {sorted(allowed)}")
    for key in ("experiment_id", "hardware"):
        if key not in data:
            raise TraptiError(f"{source}: key {key!r} is required")
    values: dict[str, Any] = {}
    for key, value in data.items():
        if value is None:
            continue
        if key in _PATHS:
            values[key] = Path(value)
        elif key == "models":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise TraptiError(f"{source}: key 'models' must be a list of preset names, got {value!r}")
            values[key] = tuple(value)
        elif key in ("prefill", "decode_steps", "layers", "precision_bits"):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise TraptiError(f"{source}: key {key!r} must be a non-negative integer, got {value!r}")
            values[key] = value
        else:
            values[key] = str(value)
    return Experiment(**values)


def run_experiment(experiment: Experiment, options: TraceOptions | None = None) -> dict[str, Any]:
    """Run Stage I and Stage II for every workload of ``experiment`` and write its directory (replaced whole, only
    once everything is written). Returns the summary also written to ``summary.json``."""
    options = options or TraceOptions()
    spec = load_sweep_spec(experiment.sweep) if experiment.sweep is not None else SweepSpec()
    workloads: dict[str, Any] = {}
    with atomic_directory(experiment.directory) as staging, tempfile.TemporaryDirectory(prefix="trapti-") as work:
        for name, result in _traces(experiment, options, Path(work)):
            write_trace_outputs(result, staging / name / "trace")
            sram = explore_result(result, spec, staging / name / "sram")
            workloads[name] = {"trace": trace_summary(result), "sram": sram_summary(sram)}
        summary = {"experiment": jsonable(asdict(experiment)), "workloads": workloads}
        (staging / "summary.json").write_text(json.dumps(summary, indent=1))
        write_report(summary, staging)
    return summary


def _traces(experiment: Experiment, options: TraceOptions, work: Path) -> Iterator[tuple[str, TraceResult]]:
    """Each workload's name and trace, in order; Stream's own outputs go under ``work``."""
    if experiment.onnx is not None:
        yield (
            experiment.onnx.stem,
            trace_workload(experiment.hardware, experiment.onnx, work, experiment.mapping, options),
        )
        return
    phases = Phases(experiment.prefill, experiment.decode_steps)
    for model in experiment.models:
        result = trace_inference(
            experiment.hardware,
            model,
            phases,
            layers=experiment.layers,
            precision_bits=experiment.precision_bits,
            options=options,
            work_dir=work / model,
        )
        yield model, result


def sram_summary(result: ExplorationResult) -> dict[str, Any]:
    """The headline of an exploration: the best configuration per objective, the always-on baseline it is measured
    against, and Stream's own estimate of the same SRAM."""
    best = {objective: asdict(result.configs[index]) for objective, index in result.best.items()}
    energy = result.configs[result.best["energy"]]
    stream = result.stream_estimate_pj
    return {
        "memory": result.memory,
        "configurations": len(result.configs),
        "pareto_size": len(result.pareto),
        "best": best,
        "stream_estimate_pj": stream,
        "best_vs_stream": (energy.total_pj / stream) if stream else None,
    }


def jsonable(value: Any) -> Any:
    """``value`` with paths as strings, tuples as lists and mapping keys as strings, for ``json.dumps``."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
