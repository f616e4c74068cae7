"""The Stage II sweep specification: which SRAM organisations and gating policies to evaluate on a trace.

A YAML mapping; every key is optional and checked, unknown keys are errors::

    memory: sram            # memory name or index in the trace (default 0)
    view: needed            # bytes that keep a bank busy: needed | reserved
    allocator: compacting   # compacting | first_fit (first fit needs the tracker's allocations)
    capacities_kib: [4096]  # or capacities_bytes; default: the memory's own capacity
    banks: [1, 2, 4, 8, 16, 32, 64]
    policies: [always_on, immediate, timeout, offline_optimal]  # default: every registered policy
    timeouts_cycles: [10, 100, 1000, 10000, 100000]
    flavours: [hp]          # CACTI device flavours: hp | lstp | lop, or cell/periphery such as lstp/hp
    gating_modes: [retention]   # retention | power_off
    technology_nm: 22       # a node CACTI 7 models: 22, 32, 45, 65 or 90
    temperature_k: 360      # kelvin; CACTI tabulates 300-400 in steps of 10
    gated_leakage_fraction: null  # override the retention residual (fraction of powered leakage)
    off_leakage_fraction: 0.0     # residual in power_off mode
    clock_ghz: 1.0
    port_bits: null         # default: the memory's port width in the trace (a multiple of 8)
    max_latency_penalty_cycles: null  # reject configurations whose wake-up stalls add more cycles (null: no limit)

Capacities are from :data:`MIN_CAPACITY_BYTES` (64 B) to :data:`MAX_CAPACITY_BYTES` (2 GiB - 1 B), the sizes CACTI 7
can evaluate as the one-bank baseline every sweep includes: CACTI reads the size into a 32-bit integer and divides it
by the bank count as a signed one (``io.cc``), so a 2 GiB macro of one bank fails with "Cache size must >=64"
(measured: 2 GiB - 1 MiB evaluates at 22, 45 and 90 nm, 2 GiB - 1 B at 22 nm). CACTI also finds no array
organisation for a bank of fewer than :data:`MIN_BANK_WORDS` port words (measured at 22, 45 and 90 nm with 32- to
512-bit ports). That depends on the memory's port width, so :func:`check_sweep_memory` checks it, with the memory
itself, against the trace's or the accelerator's memories before anything is solved or evaluated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

from pydantic import AfterValidator, Field, PlainValidator, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass

from stream_trapti.config_model import (
    FORBID_UNKNOWN_KEYS,
    ConfigModel,
    Float,
    Int,
    NonEmptyTuple,
    UniqueTuple,
    config_error,
    load_yaml,
)
from stream_trapti.errors import ConfigError
from stream_trapti.sram.cacti import FLAVORS, TECHNOLOGY_NODES_NM, TEMPERATURES_K
from stream_trapti.sram.policies import GATING_MODES, GATING_POLICIES, policy_names
from stream_trapti.trace import MemoryInfo, View

Allocator = Literal["compacting", "first_fit"]
ALLOCATORS: tuple[str, ...] = get_args(Allocator)
MAX_BANKS = 64
MIN_CAPACITY_BYTES = 64
MAX_CAPACITY_BYTES = 2**31 - 1
MIN_BANK_WORDS = 32
FLAVOURS: tuple[str, ...] = (*FLAVORS, *(f"{cell}/{periphery}" for cell in FLAVORS for periphery in FLAVORS))
"""A flavour for cells and periphery alike, or ``cell/periphery`` (how :func:`~stream_trapti.sram.energy.sram_config`
reads it)."""


def _bank_count(count: int) -> int:
    if count > MAX_BANKS or count & (count - 1):
        raise ValueError(f"expected a power of two from 1 to {MAX_BANKS}")
    return count


def _capacity(size: int) -> int:
    if not MIN_CAPACITY_BYTES <= size <= MAX_CAPACITY_BYTES:
        raise ValueError(f"expected a capacity CACTI 7 can evaluate, {MIN_CAPACITY_BYTES} B to 2 GiB - 1 B")
    return size


def _whole_bytes(kib: float) -> int:
    if kib * 1024 != int(kib * 1024):
        raise ValueError("expected a whole number of bytes")
    return int(kib * 1024)


def _port_width(bits: int) -> int:
    if bits % 8:
        raise ValueError("expected a multiple of 8 bits (whole bytes)")
    return bits


def _policy(name: str) -> str:
    """A registered gating policy's name; read at validation time, so a policy registered later is accepted."""
    if name not in GATING_POLICIES:
        *others, last = (repr(known) for known in GATING_POLICIES)
        raise ValueError(f"expected {', '.join(others)} or {last}" if others else f"expected {last}")
    return name


def _memory(value: Any) -> int | str:
    """A memory index (an integer >= 0) or a non-empty name; which exist is known only with the trace or hardware."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise ValueError("expected a memory index (an integer >= 0) or a memory name")


Capacity = Annotated[Int, AfterValidator(_capacity)]
CapacityKib = Annotated[Float, AfterValidator(_whole_bytes), AfterValidator(_capacity)]
Fraction = Annotated[Float, Field(ge=0.0, le=1.0)]


@dataclass(frozen=True, config=FORBID_UNKNOWN_KEYS)
class SweepSpec:
    """A validated sweep; see the module docstring for the meaning and defaults of each field.

    ``capacities_bytes`` empty means "the memory's own capacity". ``view`` matters to the compacting allocator
    only: first fit places the tracker's allocations, whatever the view. A pydantic dataclass, so that
    ``dataclasses.replace`` (which validates again) and ``asdict`` work on it as on the other results of Stage II:
    constructing one validates it (a :class:`pydantic.ValidationError`); :func:`parse_sweep_spec` reports the same
    as a ConfigError naming the file.
    """

    memory: Annotated[int | str, PlainValidator(_memory)] = 0
    view: View = "needed"
    allocator: Allocator = "compacting"
    capacities_bytes: UniqueTuple[Capacity] = ()
    banks: NonEmptyTuple[Annotated[Int, Field(ge=1), AfterValidator(_bank_count)]] = tuple(
        2**i for i in range(MAX_BANKS.bit_length())
    )
    policies: NonEmptyTuple[Annotated[str, AfterValidator(_policy)]] = Field(default_factory=policy_names)
    timeouts_cycles: UniqueTuple[Annotated[Int, Field(ge=0)]] = (10, 100, 1_000, 10_000, 100_000)
    flavours: NonEmptyTuple[Literal[FLAVOURS]] = ("hp",)
    gating_modes: NonEmptyTuple[Literal[GATING_MODES]] = ("retention",)
    technology_nm: Literal[TECHNOLOGY_NODES_NM] = 22
    temperature_k: Literal[TEMPERATURES_K] = 360
    gated_leakage_fraction: Fraction | None = None
    off_leakage_fraction: Fraction = 0.0
    clock_ghz: Annotated[Float, Field(gt=0.0)] = 1.0
    port_bits: Annotated[Int, Field(ge=8), AfterValidator(_port_width)] | None = None
    max_latency_penalty_cycles: Annotated[Int, Field(ge=0)] | None = None

    @model_validator(mode="after")
    def _timeouts_for_the_timeout_policy(self) -> Self:
        timed = [name for name in self.policies if GATING_POLICIES[name].takes_timeouts]
        if timed and not self.timeouts_cycles:
            raise ValueError(f"key 'timeouts_cycles': must not be empty when policy {timed[0]!r} is swept")
        return self


class _CapacitiesKib(ConfigModel):
    """The ``capacities_kib`` key, validated on its own so that its errors name it (the spec holds bytes)."""

    capacities_kib: UniqueTuple[CapacityKib]


_SPEC = TypeAdapter(SweepSpec)
SWEEP_KEYS: tuple[str, ...] = (*(field.name for field in fields(SweepSpec)), "capacities_kib")


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file; errors name the file and the key."""
    return parse_sweep_spec(load_yaml(path, "sweep YAML"), source=str(path))


def parse_sweep_spec(data: Mapping[str, Any], source: str = "sweep spec") -> SweepSpec:
    """Validate a mapping of sweep keys; a :class:`ConfigError` names ``source`` and the offending key."""
    try:
        if isinstance(data, Mapping) and "capacities_kib" in data:
            data = _in_bytes(data, source)
        return _SPEC.validate_python(data)
    except ValidationError as error:
        raise config_error(error, source, SWEEP_KEYS) from None


def _in_bytes(data: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``data`` with its ``capacities_kib`` given as ``capacities_bytes``."""
    if "capacities_bytes" in data:
        raise ConfigError(f"{source}: keys 'capacities_kib' and 'capacities_bytes': give one of them, not both")
    values = dict(data)
    values["capacities_bytes"] = _CapacitiesKib(capacities_kib=values.pop("capacities_kib")).capacities_kib
    return values


def check_sweep_memory(spec: SweepSpec, memories: Sequence[MemoryInfo], source: str) -> MemoryInfo:
    """The memory ``spec`` explores among ``memories`` (a trace's, or an accelerator's on-chip memories), checked
    with the capacities, bank counts and port width the sweep gives it; a :class:`ConfigError` naming ``source``
    (the sweep file) and the key otherwise. Call it before tracing: the trace would fail only after Stage I."""
    names = [memory.name for memory in memories]
    if isinstance(spec.memory, int) and spec.memory < len(memories):
        info = memories[spec.memory]
    elif spec.memory in names:
        info = memories[names.index(spec.memory)]
    else:
        raise ConfigError(
            f"{source}: key 'memory': expected an index below {len(memories)} or one of the on-chip memories "
            f"{names}, got {spec.memory!r}"
        )
    port_bits = _port_bits(spec, info, source)
    if not spec.capacities_bytes and not MIN_CAPACITY_BYTES <= info.capacity_bytes <= MAX_CAPACITY_BYTES:
        raise ConfigError(
            f"{source}: key 'capacities_kib': memory {info.name!r} holds {info.capacity_bytes} bytes, which CACTI 7 "
            f"cannot evaluate; give capacities from {MIN_CAPACITY_BYTES} B to 2 GiB - 1 B"
        )
    for capacity in spec.capacities_bytes or (info.capacity_bytes,):
        for banks in sorted({1, *spec.banks}):
            bank_bytes, rest = divmod(capacity, banks)
            if rest or bank_bytes < MIN_BANK_WORDS * port_bits // 8:
                # One bank is the baseline every sweep evaluates: if even that is too small, the capacity is.
                keys = "key 'banks'" if banks > 1 else "key 'capacities_kib' (or 'capacities_bytes')"
                raise ConfigError(
                    f"{source}: {keys}: a {capacity}-byte SRAM does not split into {banks} equal bank(s) of at "
                    f"least {MIN_BANK_WORDS} {port_bits}-bit words, the smallest array CACTI 7 can organise"
                )
    return info


def _port_bits(spec: SweepSpec, info: MemoryInfo, source: str) -> int:
    """The banks' port width: the sweep's, or the memory's when its read and write ports agree and are whole bytes
    (as :func:`~stream_trapti.sram.explore.explore` takes it)."""
    if spec.port_bits is not None:
        return spec.port_bits
    if info.read_port_bits != info.write_port_bits or info.read_port_bits % 8:
        raise ConfigError(
            f"{source}: key 'port_bits': memory {info.name!r} has {info.read_port_bits}-bit read and "
            f"{info.write_port_bits}-bit write ports; give the banks' port width (a multiple of 8 bits)"
        )
    return info.read_port_bits
