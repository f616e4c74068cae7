"""The Stage II sweep specification: which SRAM organisations and gating policies to evaluate on a trace.

A YAML mapping; every key is optional and checked, unknown keys are errors::

    memory: sram            # memory name or index in the trace (default 0)
    view: needed            # bytes that keep a bank busy: needed | reserved
    allocator: compacting   # compacting | first_fit (first fit needs the tracker's allocations)
    capacities_kib: [4096]  # or capacities_bytes; default: the memory's own capacity
    banks: [1, 2, 4, 8, 16, 32, 64]
    policies: [always_on, immediate, timeout, offline_optimal]
    timeouts_cycles: [10, 100, 1000, 10000, 100000]
    flavours: [hp]          # CACTI device flavours: hp | lstp | lop, or cell/periphery such as lstp/hp
    gating_modes: [retention]   # retention | power_off
    technology_nm: 22
    temperature_k: 360      # kelvin; CACTI tabulates 300-400 in steps of 10
    gated_leakage_fraction: null  # override the retention residual (fraction of powered leakage)
    off_leakage_fraction: 0.0     # residual in power_off mode
    clock_ghz: 1.0
    port_bits: null         # default: the memory's port width in the trace
    max_latency_penalty_cycles: null  # reject configurations whose wake-up stalls add more cycles (null: no limit)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from stream_trapti.sram.policies import GATING_MODES, POLICIES
from stream_trapti.trace import VIEWS

ALLOCATORS: tuple[str, ...] = ("compacting", "first_fit")
MAX_BANKS = 64


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep; see the module docstring for the meaning and defaults of each field.

    ``capacities_bytes`` empty means "the memory's own capacity". ``view`` matters to the compacting allocator
    only: first fit places the tracker's allocations, whatever the view.
    """

    memory: int | str = 0
    view: str = "needed"
    allocator: str = "compacting"
    capacities_bytes: tuple[int, ...] = ()
    banks: tuple[int, ...] = tuple(2**i for i in range(MAX_BANKS.bit_length()))
    policies: tuple[str, ...] = POLICIES
    timeouts_cycles: tuple[int, ...] = (10, 100, 1_000, 10_000, 100_000)
    flavours: tuple[str, ...] = ("hp",)
    gating_modes: tuple[str, ...] = ("retention",)
    technology_nm: int = 22
    temperature_k: int = 360
    gated_leakage_fraction: float | None = None
    off_leakage_fraction: float = 0.0
    clock_ghz: float = 1.0
    port_bits: int | None = None
    max_latency_penalty_cycles: int | None = None


def load_sweep_spec(path: str | Path) -> SweepSpec:
    """Read and validate a sweep YAML file."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: cannot read the sweep spec ({error})") from error
    return parse_sweep_spec({} if data is None else data, source=str(path))


def parse_sweep_spec(data: Mapping[str, Any], source: str = "sweep spec") -> SweepSpec:
    """Validate a mapping of sweep keys; errors name ``source`` and the offending key."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: expected a mapping of sweep keys, got {type(data).__name__}")
    unknown = sorted(set(data) - set(_PARSERS))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {unknown}; allowed keys are {sorted(_PARSERS)}")
    if "capacities_bytes" in data and "capacities_kib" in data:
        raise ValueError(f"{source}: give capacities_bytes or capacities_kib, not both")
    values: dict[str, Any] = {}
    for key, raw in data.items():
        try:
            field, value = _PARSERS[key](raw)
        except ValueError as error:
            raise ValueError(f"{source}: key {key!r}: {error}") from None
        values[field] = value
    if "timeout" in values.get("policies", SweepSpec.policies) and not values.get("timeouts_cycles", True):
        raise ValueError(f"{source}: key 'timeouts_cycles' must not be empty when policy 'timeout' is swept")
    return SweepSpec(**values)


# ---------------------------------------------------------------------------------------------- value checks
def _integer(value: Any, what: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"expected {what} (an integer >= {low}), got {value!r}")
    return value


def _number(value: Any, what: str, low: float = 0.0, high: float = math.inf, open_low: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected {what} (a finite number), got {value!r}")
    if value < low or value > high or (open_low and value == low):
        bounds = f"{'(' if open_low else '['}{low}, {high}]"
        raise ValueError(f"expected {what} in {bounds}, got {value!r}")
    return float(value)


def _list(value: Any, what: str, item: Any, allow_empty: bool = False) -> tuple:
    if not isinstance(value, list) or (not value and not allow_empty):
        raise ValueError(f"expected a {'' if allow_empty else 'non-empty '}list of {what}, got {value!r}")
    items = tuple(item(v) for v in value)
    if len(set(items)) != len(items):
        raise ValueError(f"duplicate entries in {list(items)}")
    return items


def _choice(options: tuple[str, ...], what: str) -> Any:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"unknown {what} {value!r}; expected one of {list(options)}")
        return value

    return check


def _memory(value: Any) -> tuple[str, int | str]:
    if isinstance(value, str) and value:
        return "memory", value
    return "memory", _integer(value, "a memory index or name")


def _capacities_kib(value: Any) -> tuple[str, tuple[int, ...]]:
    def to_bytes(kib: Any) -> int:
        size = _number(kib, "a capacity in KiB", open_low=True) * 1024
        if size != int(size):
            raise ValueError(f"capacity {kib} KiB is not a whole number of bytes")
        return int(size)

    return "capacities_bytes", _list(value, "capacities in KiB", to_bytes)


def _banks(value: Any) -> tuple[str, tuple[int, ...]]:
    def check(count: Any) -> int:
        count = _integer(count, "a bank count", low=1)
        if count > MAX_BANKS or count & (count - 1):
            raise ValueError(f"bank count {count} is not a power of two from 1 to {MAX_BANKS}")
        return count

    return "banks", _list(value, "bank counts", check)


def _optional(parse: Any) -> Any:
    return lambda value: None if value is None else parse(value)


def _flavour(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a flavour name, got {value!r}")
    return value


_PARSERS: dict[str, Any] = {
    "memory": _memory,
    "view": lambda v: ("view", _choice(VIEWS, "view")(v)),
    "allocator": lambda v: ("allocator", _choice(ALLOCATORS, "allocator")(v)),
    "capacities_bytes": lambda v: (
        "capacities_bytes",
        _list(v, "capacities in bytes", lambda c: _integer(c, "a capacity in bytes", low=1)),
    ),
    "capacities_kib": _capacities_kib,
    "banks": _banks,
    "policies": lambda v: ("policies", _list(v, "policy names", _choice(POLICIES, "policy"))),
    "timeouts_cycles": lambda v: (
        "timeouts_cycles",
        _list(v, "timeouts in cycles", lambda t: _integer(t, "a timeout in cycles"), allow_empty=True),
    ),
    "flavours": lambda v: ("flavours", _list(v, "flavour names", _flavour)),
    "gating_modes": lambda v: ("gating_modes", _list(v, "gating modes", _choice(GATING_MODES, "gating mode"))),
    "technology_nm": lambda v: ("technology_nm", _integer(v, "a technology node in nm", low=1)),
    "temperature_k": lambda v: ("temperature_k", _integer(v, "a temperature in kelvin", low=1)),
    "gated_leakage_fraction": lambda v: (
        "gated_leakage_fraction",
        _optional(lambda f: _number(f, "a fraction of the powered leakage", high=1.0))(v),
    ),
    "off_leakage_fraction": lambda v: (
        "off_leakage_fraction",
        _number(v, "a fraction of the powered leakage", high=1.0),
    ),
    "clock_ghz": lambda v: ("clock_ghz", _number(v, "a clock frequency in GHz", open_low=True)),
    "port_bits": lambda v: ("port_bits", _optional(lambda b: _integer(b, "a port width in bits", low=1))(v)),
    "max_latency_penalty_cycles": lambda v: (
        "max_latency_penalty_cycles",
        _optional(lambda c: _integer(c, "a number of stall cycles"))(v),
    ),
}
