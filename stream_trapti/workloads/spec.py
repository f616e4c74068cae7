"""What to build from a :class:`~stream_trapti.workloads.config.DecoderConfig`: phase, length, depth, precision,
and which optional parts of the model the graph holds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stream_trapti.errors import ConfigError
from stream_trapti.workloads.config import DecoderConfig

Phase = Literal["prefill", "decode"]
LmHead = Literal["none", "all", "last"]
GqaMode = Literal["broadcast", "repeat_kv"]

PHASES: tuple[str, ...] = ("prefill", "decode")
LM_HEADS: tuple[str, ...] = ("none", "all", "last")
GQA_MODES: tuple[str, ...] = ("broadcast", "repeat_kv")
PRECISIONS: tuple[int, ...] = (8, 16, 32)


@dataclass(frozen=True)
class WorkloadSpec:
    """One inference step of ``layers`` decoder layers.

    ``length`` is the prompt length L for ``prefill`` (L queries attend to L keys) and the number of past tokens P
    for ``decode`` (one new query attends to the P cached tokens plus itself: the cache after the append, P+1
    entries, is a graph input). ``precision_bits`` is the element width of every tensor. ``embedding`` adds the token
    (and learned position) lookup; ``lm_head`` adds the final norm and the vocabulary projection, over all query
    positions or the last one only. ``gqa`` is how K/V heads meet a group of query heads: ``broadcast`` reads each
    K/V head once per group with no copy, ``repeat_kv`` materialises the copies as Hugging Face's eager attention does.
    """

    phase: Phase
    length: int
    layers: int
    precision_bits: int = 8
    embedding: bool = False
    lm_head: LmHead = "none"
    gqa: GqaMode = "broadcast"

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"WorkloadSpec.phase must be one of {list(PHASES)}, got {self.phase!r}")
        for key in ("length", "layers"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"WorkloadSpec.{key} must be an integer >= 1, got {value!r}")
        if self.precision_bits not in PRECISIONS:
            raise ValueError(
                f"WorkloadSpec.precision_bits must be one of {list(PRECISIONS)}, got {self.precision_bits!r}"
            )
        if self.lm_head not in LM_HEADS:
            raise ValueError(f"WorkloadSpec.lm_head must be one of {list(LM_HEADS)}, got {self.lm_head!r}")
        if self.gqa not in GQA_MODES:
            raise ValueError(f"WorkloadSpec.gqa must be one of {list(GQA_MODES)}, got {self.gqa!r}")

    @property
    def query_len(self) -> int:
        """Positions computed in this step: L in prefill, 1 in decode."""
        return self.length if self.phase == "prefill" else 1

    @property
    def context_len(self) -> int:
        """Keys each query attends to: L in prefill, P+1 in decode."""
        return self.length if self.phase == "prefill" else self.length + 1

    @property
    def head_rows(self) -> int:
        """Positions the LM head projects to the vocabulary (0 without a head)."""
        return {"none": 0, "all": self.query_len, "last": 1}[self.lm_head]

    @property
    def element_bytes(self) -> int:
        return self.precision_bits // 8

    def check_against(self, config: DecoderConfig) -> None:
        """Raise a :class:`ConfigError` if this spec does not fit ``config`` (too many layers, or past the
        positions): both come from the user's choice of lengths and depth."""
        if self.layers > config.layers:
            raise ConfigError(f"WorkloadSpec.layers must be <= {config.layers} for {config.name}, got {self.layers}")
        if self.context_len > config.max_positions:
            raise ConfigError(
                f"WorkloadSpec.length: {self.phase} attends to {self.context_len} positions, more than "
                f"{config.name}'s max_positions={config.max_positions}"
            )
