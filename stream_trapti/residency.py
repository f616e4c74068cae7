"""Where a decoder's KV cache lives between the operators that use it: in DRAM, or kept in the shared SRAM.

Stream 2.1.1 moves every fused group's inputs and outputs through the off-chip core, the KV cache included, and its
allocation hard-wires a workload input to that core (``stream/allocation/lowering.py`` and
``stream/opt/allocation/constraint_optimization/space.py`` place every ``InEdge`` there). A cache that stays on chip
across operators, layers and decode steps is therefore modelled in two parts:

* **Capacity, inside Stream.** Each step is solved on a variant of the hardware whose shared SRAM offers Stream only
  what the resident cache leaves free at the end of that step (every resident layer, the step's own entries
  included; rounded down to 1/64 of the SRAM, :data:`CAPACITY_QUANTA`), at the physical macro's per-access costs
  (:func:`stream_trapti.hardware_variants.sram_capacity_variant`). Stream's tiler, schedule and cycles follow from
  that smaller capacity.
* **Traffic, from Stream's own figures.** In a resident layer, the cache's DRAM transfers (the reads of the append
  and of the attention, the writes of the new entries and of the appended cache) and the energy Stream charged for
  them (DRAM and SRAM ports, links) are dropped. The cache's band in the SRAM, growing as layers append, replaces
  Stream's staged tiles of it in the needed view and adds to the reserved view.

Not modelled: the cycles those transfers took stay in Stream's schedule, so a resident run's latency is an upper
bound (cycles never exceed a streamed run's on the same free capacity); and the append stays out of place, as
Stream has no in-place update.

Policies (experiment key ``kv_residency``):

* ``streamed``: the cache lives in DRAM (Stream's own behaviour).
* ``resident``: every layer's cache stays in the SRAM; a step whose cache does not fit fails, naming the bytes.
* ``fit``: the first ``R`` layers keep their cache on chip for the whole run, ``R`` the most whole layers whose cache
  at the run's final length takes at most ``kv_budget`` of the SRAM; the other layers stream theirs. Layers run in
  order every step, so none is more recently used than another: a fixed set avoids write-backs the schedule does
  not price.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Literal

import numpy as np

from stream_trapti.errors import ConfigError, SolveError
from stream_trapti.trace import ACCESS_SOURCES, CLASSES

if TYPE_CHECKING:  # the CLI reads the policy names without importing Stream
    from stream_trapti.tracker.group import Classifier, GroupOccupancy

__all__ = [
    "DEFAULT_KV_BUDGET",
    "KV_RESIDENCIES",
    "KvResidency",
    "ResidencyPlan",
    "check_single_sram",
    "keep_cache_on_chip",
]

KvResidency = Literal["streamed", "resident", "fit"]
KV_RESIDENCIES: tuple[str, ...] = ("streamed", "resident", "fit")

DEFAULT_KV_BUDGET = 0.5
"""The share of the SRAM the ``fit`` policy lets the cache take; the rest is Stream's to tile the operators in."""


CAPACITY_QUANTA = 64
"""What a resident cache leaves Stream is rounded down to a multiple of 1/64 of the SRAM (at most 1.6 % of it
unused), so the decode steps whose caches differ by less share one hardware variant, and with it the solves of the
groups that do not read the cache (:mod:`stream_trapti.tracker.group_reuse`)."""


@dataclass(frozen=True)
class ResidencyPlan:
    """Which layers keep their cache in the SRAM of ``capacity_bytes``, and how much it holds after each step.

    ``layer_token_bytes`` is one layer's K and V for one position; ``final_tokens`` the cache length at the end of
    the run; ``budget`` the share of the SRAM ``fit`` gives the cache."""

    policy: KvResidency
    depth: int
    layer_token_bytes: int
    capacity_bytes: int
    final_tokens: int
    budget: float = DEFAULT_KV_BUDGET

    def __post_init__(self) -> None:
        if self.policy not in KV_RESIDENCIES:
            raise ConfigError(f"kv_residency must be one of {', '.join(KV_RESIDENCIES)}, got {self.policy!r}")
        if not 0 < self.budget <= 1:
            raise ConfigError(f"kv_budget must be above 0 and at most 1 (a share of the SRAM), got {self.budget}")

    @property
    def resident_layers(self) -> int:
        """How many layers, from the first, keep their cache on chip."""
        if self.policy == "streamed":
            return 0
        if self.policy == "resident":
            return self.depth
        whole_layer = self.final_tokens * self.layer_token_bytes
        return min(self.depth, int(self.budget * self.capacity_bytes) // whole_layer)

    def resident_bytes(self, tokens: int) -> int:
        """Bytes of resident cache once every resident layer holds ``tokens`` positions."""
        return self.resident_layers * tokens * self.layer_token_bytes

    def free_capacity(self, label: str, tokens: int) -> int:
        """What the SRAM leaves Stream during step ``label``, whose cache ends ``tokens`` long, rounded down to a
        multiple of :data:`CAPACITY_QUANTA`'s share of the SRAM; a cache that does not fit is a one-line
        :class:`SolveError` naming the step and the bytes missing."""
        held = self.resident_bytes(tokens)
        if held >= self.capacity_bytes:
            raise SolveError(
                f"step {label}: the resident KV cache of {self.resident_layers} layers needs {held:,} B but the SRAM "
                f"holds {self.capacity_bytes:,} B ({held - self.capacity_bytes:,} B missing, before any operator's "
                "tiles); use a larger SRAM, fewer steps, or kv_residency: fit"
            )
        if not held:
            return self.capacity_bytes
        quantum = self.capacity_bytes // CAPACITY_QUANTA
        return (self.capacity_bytes - held) // quantum * quantum or self.capacity_bytes - held


def keep_cache_on_chip(group: GroupOccupancy, memory: int, classify: Classifier) -> GroupOccupancy:
    """``group`` with its KV cache resident in on-chip memory ``memory``: the cache's off-chip bytes and Stream's
    energy for moving them dropped, its transfer accesses to the SRAM dropped (the compute's reads of it stay), and its
    staged tiles dropped from the needed view (the resident band of :class:`~stream_trapti.tracker.compose.
    ResidentCache` holds it instead)."""
    kv = CLASSES.index("kv_cache")
    transfer = ACCESS_SOURCES.index("transfer")
    is_kv = np.array([classify(name) == "kv_cache" for name in group.tensor_names] or [False])
    staged = (group.needed_class == kv) & (group.needed_memory == memory)
    moved = (group.access_source == transfer) & (group.access_memory == memory) & is_kv[group.access_tensor]
    dram, offchip = group.dram_bytes.copy(), group.offchip_pj.copy()
    dram[kv] = 0
    offchip[kv] = 0.0
    sram_pj = tuple(
        tuple(pj - (group.offchip_pj[kv, 1 + m] if s == transfer else 0.0) for s, pj in enumerate(row))
        for m, row in enumerate(group.stream_sram_pj)
    )
    arrays = {
        **{name: getattr(group, name)[~staged] for name in _NEEDED},
        **{name: getattr(group, name)[~moved] for name in _ACCESSES},
    }
    return replace(
        group,
        energy_pj=group.energy_pj - float(group.offchip_pj[kv, 0]),
        stream_sram_pj=sram_pj,
        dram_bytes=dram,
        offchip_pj=offchip,
        **arrays,
    )


_NEEDED = ("needed_memory", "needed_class", "needed_tensor", "needed_start", "needed_end", "needed_bytes")
_ACCESSES = ("access_memory", "access_source", "access_kind", "access_time", "access_bytes", "access_tensor")


def check_single_sram(memories: int, policy: KvResidency) -> None:
    """A resident cache needs one on-chip memory to live in: raise a :class:`ConfigError` otherwise."""
    if policy != "streamed" and memories != 1:
        raise ConfigError(
            f"kv_residency: {policy} needs an accelerator with one shared on-chip memory, this one has {memories}"
        )
