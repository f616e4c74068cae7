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
      - model: [gpt2-xl]                 # generated from the template: 2 array sizes x 2 DRAM bandwidths
        decode_steps: [1]
        decode_from: [512]
        array: [32x32, 64x64]
        dram_gbps: [16, 64]
        fusion: [committed, layer]
    points:
      - {model: deepseek-r1-distill-qwen-1.5b, prefill: 0, decode_steps: 1, decode_from: 1024, sram_mib: 16,
         kv_residency: resident}

A point that names ``array``, ``array_count`` or ``dram_gbps`` (:data:`GENERATED_AXES`) runs on an accelerator
generated from ``template`` (default ``hardware/templates/trapti_edge.yaml``) with those values, the others the
template's, and its SRAM at ``sram_mib`` (CACTI-priced by the generator); such a point may not also name
``hardware``. The other points run on their ``hardware`` file (the top-level ``hardware`` by default, which a sweep
of generated points only may leave out).

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

from stream_trapti.config_model import (
    ConfigModel,
    Int,
    NonEmptyTuple,
    PlainName,
    PresetName,
    load_yaml,
    matching,
    parse_config,
)
from stream_trapti.fusion import Fusion
from stream_trapti.hardware_generator import HARDWARE_DIR, HardwareTemplate, load_template
from stream_trapti.residency import DEFAULT_KV_BUDGET, KvResidency
from stream_trapti.workloads.spec import PRECISIONS


@dataclass(frozen=True)
class Point:
    """One point of a design sweep: an inference of ``model`` (``prefill`` tokens, then ``decode_steps`` decode steps
    from a cache of ``decode_from`` past tokens, as :class:`~stream_trapti.inference.Phases` takes them) over
    ``layers`` decoder layers (None: the model's depth) at ``precision_bits``, on ``hardware`` with its shared SRAM
    resized to ``sram_mib`` (None: as the file has it), the KV cache ``kv_residency`` (``kv_budget``: with ``fit``
    only, else None), Stream fusing ``fusion``'s scope (:mod:`stream_trapti.fusion`).

    With any of :data:`GENERATED_AXES` set, ``hardware`` is a hardware template
    (:mod:`stream_trapti.hardware_generator`) and the accelerator is generated from it with ``array`` (``"RxC"``:
    rows x columns of every systolic array), ``array_count`` arrays and ``dram_gbps`` GB/s of DRAM bandwidth (each
    None: the template's; :func:`template_overrides`), and an SRAM of ``sram_mib``."""

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
    array: str | None = None
    array_count: int | None = None
    dram_gbps: float | None = None
    fusion: Fusion = "committed"

    @property
    def generated(self) -> bool:
        """Whether the point's accelerator is generated from the template ``hardware`` (an array or DRAM axis set)."""
        return any(getattr(self, axis) is not None for axis in GENERATED_AXES)

    def label(self) -> str:
        """The point in a few words, for progress and the dry run: the axes that differ from their defaults."""
        values = [self.model, f"template {self.hardware.name}" if self.generated else self.hardware.name]
        for axis in AXES[2:]:
            value = getattr(self, axis)
            if value != _DEFAULTS[axis]:
                values.append(f"{axis}={value:g}" if isinstance(value, float) else f"{axis}={value}")
        return " ".join(values)


AXES: tuple[str, ...] = tuple(f.name for f in fields(Point))
"""The axes a design sweep can vary, in the order a grid's product runs them (the first outermost)."""
GENERATED_AXES: tuple[str, ...] = ("array", "array_count", "dram_gbps")
"""The axes that generate a point's accelerator from the sweep's ``template`` instead of taking a ``hardware`` file."""
DEFAULT_TEMPLATE = HARDWARE_DIR / "templates" / "trapti_edge.yaml"
_DEFAULTS = {f.name: f.default for f in fields(Point) if f.name not in ("model", "hardware")}


Model = PresetName
Mib = Annotated[float, Field(gt=0)]
Length = Annotated[Int, Field(ge=0)]
Positive = Annotated[Int, Field(ge=1)]
Budget = Annotated[float, Field(gt=0, le=1)]
Precision = Literal[PRECISIONS]


ArraySize = Annotated[
    str, matching(r"[1-9][0-9]*x[1-9][0-9]*", "expected the rows x columns of a systolic array, such as '64x64'")
]
"""Rows x columns of a systolic array, as ``"64x64"``."""
Gbps = Annotated[float, Field(gt=0)]


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
    array: NonEmptyTuple[ArraySize] | None = None
    array_count: NonEmptyTuple[Positive] | None = None
    dram_gbps: NonEmptyTuple[Gbps] | None = None
    fusion: NonEmptyTuple[Fusion] | None = None

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
    array: ArraySize | None = None
    array_count: Positive | None = None
    dram_gbps: Gbps | None = None
    fusion: Fusion | None = None

    def values(self) -> list[dict[str, Any]]:
        """The point, as the axes it names."""
        return [{axis: getattr(self, axis) for axis in AXES if getattr(self, axis) is not None}]


class DesignSweep(ConfigModel):
    """A design sweep; see the module docstring. Constructing one validates it (a :class:`pydantic.ValidationError`);
    :func:`load_design_sweep` reports the same as a ConfigError naming the file."""

    sweep_id: PlainName
    hardware: Path | None = None
    template: Path = DEFAULT_TEMPLATE
    sram_sweep: Path | None = None
    output_dir: Path = Path("outputs")
    grids: tuple[GridSpec, ...] = ()
    points: tuple[PointSpec, ...] = ()

    @model_validator(mode="after")
    def _every_point_is_an_inference(self) -> Self:
        if not self.grids and not self.points:
            raise ValueError("keys 'grids' and 'points': give at least one grid or point")
        template = None
        for key, specs in (("grids", self.grids), ("points", self.points)):
            for i, spec in enumerate(specs):
                for values in spec.values():
                    if problem := _not_an_inference(values) or self._no_hardware(values):
                        raise ValueError(f"{key}[{i}]: {problem}")
                    if "dram_gbps" in values:
                        template = template or load_template(self.template)
                        try:
                            template_overrides(_point(values, self.hardware, self.template), template)
                        except ValueError as error:
                            raise ValueError(f"{key}[{i}]: {error}") from None
        return self

    def _no_hardware(self, values: Mapping[str, Any]) -> str | None:
        """Why the axes ``values`` name no accelerator, or name it twice, or None."""
        generated = [axis for axis in GENERATED_AXES if axis in values]
        if generated and "hardware" in values:
            return (
                f"key 'hardware' names an accelerator file, but {generated} generate one from the template "
                f"{self.template}: give one or the other"
            )
        if not generated and "hardware" not in values and self.hardware is None:
            return (
                f"no accelerator: give the top-level key 'hardware' (a Stream accelerator YAML), or an axis of "
                f"{list(GENERATED_AXES)} to generate one from the template {self.template}"
            )
        return None

    @property
    def directory(self) -> Path:
        """Where the sweep's outputs go."""
        return self.output_dir / self.sweep_id

    def expand(self) -> tuple[Point, ...]:
        """Every point of the sweep, in order, each once."""
        found = [
            _point(values, self.hardware, self.template)
            for spec in (*self.grids, *self.points)
            for values in spec.values()
        ]
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


def _point(values: Mapping[str, Any], hardware: Path | None, template: Path) -> Point:
    """The point of the axes ``values``: defaults for the others, ``kv_budget`` only where ``fit`` reads it, the
    template as ``hardware`` where an axis of :data:`GENERATED_AXES` generates the accelerator."""
    generated = any(axis in values for axis in GENERATED_AXES)
    point = {"hardware": template if generated else hardware, **values}
    if point.get("kv_residency", "streamed") != "fit":
        point["kv_budget"] = None
    elif point.get("kv_budget") is None:
        point["kv_budget"] = DEFAULT_KV_BUDGET
    return Point(**point)


def template_overrides(point: Point, template: HardwareTemplate) -> dict[str, Any]:
    """The template keys (:func:`~stream_trapti.hardware_generator.load_template`'s ``overrides``) that ``point``'s
    array and DRAM axes set: ``arrays.rows``/``columns`` from ``array``, ``arrays.count`` from ``array_count``, and
    the DRAM's port and link (``dram.port_bits``, ``dram.link_bits``) both ``dram_gbps`` × 8 / the template's clock
    bits per cycle. A bandwidth that is not a whole number of bytes per cycle is a ValueError naming the key."""
    overrides: dict[str, Any] = {}
    if point.array is not None:
        rows, columns = (int(n) for n in point.array.split("x"))
        overrides["arrays"] = {"rows": rows, "columns": columns}
    if point.array_count is not None:
        overrides.setdefault("arrays", {})["count"] = point.array_count
    if point.dram_gbps is not None:
        per_cycle = point.dram_gbps / template.clock_ghz  # bytes per cycle: GB/s over Gcycles/s
        if abs(per_cycle - round(per_cycle)) > 1e-9 or round(per_cycle) < 1:
            raise ValueError(
                f"key 'dram_gbps': {point.dram_gbps:g} GB/s at the template's {template.clock_ghz:g} GHz is "
                f"{per_cycle:g} bytes per cycle; the DRAM port moves a whole number of bytes per cycle"
            )
        bits = 8 * round(per_cycle)
        overrides["dram"] = {"port_bits": bits, "link_bits": bits}
    return overrides


def load_design_sweep(path: str | Path) -> DesignSweep:
    """Read and validate a design sweep YAML; errors name the file and the key."""
    return parse_design_sweep(load_yaml(path, "design sweep YAML"), str(path))


def parse_design_sweep(data: Mapping[str, Any], source: str = "design sweep") -> DesignSweep:
    """A :class:`DesignSweep` from a mapping of its keys; a bad key or value is a :class:`ConfigError` naming
    ``source`` and the key."""
    return parse_config(DesignSweep, data, source)
