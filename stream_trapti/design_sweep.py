"""The design-space sweep YAML of ``stream-trapti sweep``: the points of a design space, each one whole inference.

Not to be confused with the Stage II sweep (:mod:`stream_trapti.sram.sweep_config`), which sweeps the banks and
gating policies of one SRAM on one trace: a design sweep names one (``sram_sweep``) and runs it at every point.

A point gives a value to every axis (:data:`AXES`); an axis it does not name takes its default. ``grids`` are
cartesian products (each axis a list), ``points`` explicit points; the points of the sweep are the grids' in order
(the first axis of :data:`AXES` outermost), then the explicit ones, each distinct point once::

    sweep_id: mha_vs_gqa                 # output directory name under output_dir
    hardware: hardware/trapti_edge.yaml  # the default of the 'hardware' axis
    sram_sweep: inputs/sweep_default.yaml  # Stage II sweep run at every point (default: every sweep default)
    output_dir: outputs
    grids:
      - model: [gpt2-xl, deepseek-r1-distill-qwen-1.5b]
        prefill: [128, 512, 1024]
      - model: [gpt2-xl, deepseek-r1-distill-qwen-1.5b]
        prefill: [0]
        decode_steps: [1]
        decode_from: [128, 512]
        sram_mib: [4, 16]
        kv_residency: [streamed, resident]
    points:
      - {model: deepseek-r1-distill-qwen-1.5b, prefill: 0, decode_steps: 1, decode_from: 1024, sram_mib: 16,
         kv_residency: resident}

A point whose inference cannot run (a length beyond the model's positions, a resident cache that does not fit, a
step Stream cannot schedule) is not an error: the sweep reports it skipped, with the reason. Relative paths are
taken from the current directory, as in an experiment YAML.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import Field, model_validator

from stream_trapti.config_model import ConfigModel, Int, NonEmptyTuple, PlainName, PresetName, load_yaml, parse_config
from stream_trapti.residency import DEFAULT_KV_BUDGET, KvResidency
from stream_trapti.workloads.spec import PRECISIONS


@dataclass(frozen=True)
class Point:
    """One point of a design sweep: an inference of ``model`` (``prefill`` tokens, then ``decode_steps`` decode steps
    from a cache of ``decode_from`` past tokens, as :class:`~stream_trapti.inference.Phases` takes them) over
    ``layers`` decoder layers (None: the model's depth) at ``precision_bits``, on ``hardware`` with its shared SRAM
    resized to ``sram_mib`` (None: as the file has it), the KV cache ``kv_residency`` (``kv_budget``: with ``fit``
    only, else None)."""

    model: str
    hardware: Path
    sram_mib: float | None = None
    prefill: int = 0
    decode_steps: int = 0
    decode_from: int | None = None
    kv_residency: KvResidency = "streamed"
    kv_budget: float | None = None
    layers: int | None = None
    precision_bits: int = 8

    def label(self) -> str:
        """The point in a few words, for progress and the dry run: the axes that differ from their defaults."""
        values = [self.model, self.hardware.name]
        for axis in AXES[2:]:
            value = getattr(self, axis)
            if value != _DEFAULTS[axis]:
                values.append(f"{axis}={value:g}" if isinstance(value, float) else f"{axis}={value}")
        return " ".join(values)


AXES: tuple[str, ...] = tuple(f.name for f in fields(Point))
"""The axes a design sweep can vary, in the order a grid's product runs them (the first outermost)."""
_DEFAULTS = {f.name: f.default for f in fields(Point) if f.name not in ("model", "hardware")}


Model = PresetName
Mib = Annotated[float, Field(gt=0)]
Length = Annotated[Int, Field(ge=0)]
Positive = Annotated[Int, Field(ge=1)]
Budget = Annotated[float, Field(gt=0, le=1)]
Precision = Literal[PRECISIONS]


class GridSpec(ConfigModel):
    """A cartesian product: per axis, the list of its values (an axis not named takes its default)."""

    model: NonEmptyTuple[Model] | None = None
    hardware: NonEmptyTuple[Path] | None = None
    sram_mib: NonEmptyTuple[Mib] | None = None
    prefill: NonEmptyTuple[Length] | None = None
    decode_steps: NonEmptyTuple[Length] | None = None
    decode_from: NonEmptyTuple[Positive] | None = None
    kv_residency: NonEmptyTuple[KvResidency] | None = None
    kv_budget: NonEmptyTuple[Budget] | None = None
    layers: NonEmptyTuple[Positive] | None = None
    precision_bits: NonEmptyTuple[Precision] | None = None

    def values(self) -> list[dict[str, Any]]:
        """The product's points, each as the axes it names."""
        named = {axis: getattr(self, axis) for axis in AXES if getattr(self, axis) is not None}
        return [dict(zip(named, combination, strict=True)) for combination in itertools.product(*named.values())]


class PointSpec(ConfigModel):
    """One explicit point: a value per axis it names."""

    model: Model | None = None
    hardware: Path | None = None
    sram_mib: Mib | None = None
    prefill: Length | None = None
    decode_steps: Length | None = None
    decode_from: Positive | None = None
    kv_residency: KvResidency | None = None
    kv_budget: Budget | None = None
    layers: Positive | None = None
    precision_bits: Precision | None = None

    def values(self) -> list[dict[str, Any]]:
        """The point, as the axes it names."""
        return [{axis: getattr(self, axis) for axis in AXES if getattr(self, axis) is not None}]


class DesignSweep(ConfigModel):
    """A design sweep; see the module docstring. Constructing one validates it (a :class:`pydantic.ValidationError`);
    :func:`load_design_sweep` reports the same as a ConfigError naming the file."""

    sweep_id: PlainName
    hardware: Path
    sram_sweep: Path | None = None
    output_dir: Path = Path("outputs")
    grids: tuple[GridSpec, ...] = ()
    points: tuple[PointSpec, ...] = ()

    @model_validator(mode="after")
    def _every_point_is_an_inference(self) -> Self:
        if not self.grids and not self.points:
            raise ValueError("keys 'grids' and 'points': give at least one grid or point")
        for key, specs in (("grids", self.grids), ("points", self.points)):
            for i, spec in enumerate(specs):
                for values in spec.values():
                    if problem := _not_an_inference(values):
                        raise ValueError(f"{key}[{i}]: {problem}")
        return self

    @property
    def directory(self) -> Path:
        """Where the sweep's outputs go."""
        return self.output_dir / self.sweep_id

    def expand(self) -> tuple[Point, ...]:
        """Every point of the sweep, in order, each once."""
        found = [_point(values, self.hardware) for spec in (*self.grids, *self.points) for values in spec.values()]
        return tuple(dict.fromkeys(found))


def _not_an_inference(values: Mapping[str, Any]) -> str | None:
    """Why the axes ``values`` (with defaults for those not named) make no inference, or None."""
    if "model" not in values:
        return "key 'model' is required (in the grid or point, as a preset name)"
    prefill, steps = values.get("prefill", 0), values.get("decode_steps", 0)
    if prefill == 0 and steps == 0:
        return "prefill 0 and decode_steps 0 make an empty inference; give a prefill length or decode steps"
    if prefill == 0 and values.get("decode_from") is None:
        return "decode steps without a prefill need 'decode_from', the cache length of the first decode step"
    return None


def _point(values: Mapping[str, Any], hardware: Path) -> Point:
    """The point of the axes ``values``: defaults for the others, ``kv_budget`` only where ``fit`` reads it."""
    point = {"hardware": hardware, **values}
    if point.get("kv_residency", "streamed") != "fit":
        point["kv_budget"] = None
    elif point.get("kv_budget") is None:
        point["kv_budget"] = DEFAULT_KV_BUDGET
    return Point(**point)


def load_design_sweep(path: str | Path) -> DesignSweep:
    """Read and validate a design sweep YAML; errors name the file and the key."""
    return parse_design_sweep(load_yaml(path, "design sweep YAML"), str(path))


def parse_design_sweep(data: Mapping[str, Any], source: str = "design sweep") -> DesignSweep:
    """A :class:`DesignSweep` from a mapping of its keys; a bad key or value is a :class:`ConfigError` naming
    ``source`` and the key."""
    return parse_config(DesignSweep, data, source)
