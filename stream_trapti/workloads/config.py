"""Decoder-only transformer architectures: one config type and the named presets the project studies.

The two reference models are GPT-2 XL (multi-head attention) and DeepSeek-R1-Distill-Qwen-1.5B (grouped-query
attention); the tiny presets keep their structure at a size a Stream solve of one block finishes in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stream_trapti.errors import ConfigError

MlpKind = Literal["gelu", "swiglu"]
NormKind = Literal["layernorm", "rmsnorm"]
PositionKind = Literal["learned", "rope"]

MLP_KINDS: tuple[str, ...] = ("gelu", "swiglu")
NORM_KINDS: tuple[str, ...] = ("layernorm", "rmsnorm")
POSITION_KINDS: tuple[str, ...] = ("learned", "rope")

ATTENTION_LINEARS: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_LINEARS: dict[str, tuple[str, ...]] = {
    "gelu": ("up_proj", "down_proj"),
    "swiglu": ("gate_proj", "up_proj", "down_proj"),
}


@dataclass(frozen=True)
class DecoderConfig:
    """The shapes of a decoder-only transformer, everything the workload builders and MAC formulas need.

    ``biases`` names the linear layers (from :data:`ATTENTION_LINEARS` and the MLP's :data:`MLP_LINEARS`) that
    carry a bias. ``fused_qkv`` computes Q, K and V with one ``[hidden, (heads + 2·kv_heads)·head_dim]`` weight,
    as GPT-2's ``c_attn`` does; it changes neither parameters nor MACs, only the graph. ``max_positions`` bounds
    the sequence (the learned position table's length, or the RoPE context).
    """

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    mlp: MlpKind
    norm: NormKind
    norm_eps: float
    position: PositionKind
    max_positions: int
    vocab: int
    biases: frozenset[str]
    tied_lm_head: bool
    rope_theta: float | None = None
    fused_qkv: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("DecoderConfig.name must be a non-empty string")
        for key in ("layers", "hidden", "heads", "kv_heads", "head_dim", "intermediate", "max_positions", "vocab"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"DecoderConfig.{key} must be an integer >= 1, got {value!r}")
        if self.hidden % self.heads:
            raise ValueError(f"DecoderConfig.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.heads * self.head_dim != self.hidden:
            raise ValueError(
                f"DecoderConfig.head_dim must be hidden / heads = {self.hidden // self.heads}, got {self.head_dim}"
            )
        if self.heads % self.kv_heads:
            raise ValueError(f"DecoderConfig.heads ({self.heads}) must be divisible by kv_heads ({self.kv_heads})")
        _check_choice("mlp", self.mlp, MLP_KINDS)
        _check_choice("norm", self.norm, NORM_KINDS)
        _check_choice("position", self.position, POSITION_KINDS)
        if not self.norm_eps > 0:
            raise ValueError(f"DecoderConfig.norm_eps must be > 0, got {self.norm_eps!r}")
        if self.position == "rope":
            if self.rope_theta is None or not self.rope_theta > 0:
                raise ValueError(f"DecoderConfig.rope_theta must be > 0 with position='rope', got {self.rope_theta!r}")
            # rotate_half splits each head into two halves.
            if self.head_dim % 2:
                raise ValueError(f"DecoderConfig.head_dim must be even with position='rope', got {self.head_dim}")
        elif self.rope_theta is not None:
            raise ValueError("DecoderConfig.rope_theta applies only to position='rope'; set it to None")
        if not isinstance(self.biases, frozenset):
            raise ValueError(
                f"DecoderConfig.biases must be a frozenset of linear names, got {type(self.biases).__name__}"
            )
        unknown = self.biases - set(self.linears)
        if unknown:
            raise ValueError(
                f"DecoderConfig.biases has unknown linear layers {sorted(unknown)}; "
                f"expected a subset of {list(self.linears)}"
            )
        if self.fused_qkv and len(self.biases & {"q_proj", "k_proj", "v_proj"}) not in (0, 3):
            raise ValueError("DecoderConfig.biases must name all or none of q_proj, k_proj, v_proj when fused_qkv=True")

    @property
    def linears(self) -> tuple[str, ...]:
        """The names of one layer's linear layers, attention first."""
        return ATTENTION_LINEARS + MLP_LINEARS[self.mlp]

    @property
    def groups(self) -> int:
        """Query heads sharing one K/V head (1 for multi-head attention)."""
        return self.heads // self.kv_heads

    @property
    def kv_dim(self) -> int:
        """Width of the K (or V) projection: ``kv_heads · head_dim``."""
        return self.kv_heads * self.head_dim


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"DecoderConfig.{key} must be one of {list(choices)}, got {value!r}")


_GPT2_LINEARS = frozenset(ATTENTION_LINEARS + MLP_LINEARS["gelu"])
_QKV = frozenset({"q_proj", "k_proj", "v_proj"})

PRESETS: dict[str, DecoderConfig] = {
    config.name: config
    for config in (
        DecoderConfig(
            name="gpt2-xl",
            layers=48,
            hidden=1600,
            heads=25,
            kv_heads=25,
            head_dim=64,
            intermediate=6400,
            mlp="gelu",
            norm="layernorm",
            norm_eps=1e-5,
            position="learned",
            max_positions=1024,
            vocab=50257,
            biases=_GPT2_LINEARS,
            tied_lm_head=True,
            fused_qkv=True,
        ),
        DecoderConfig(
            name="deepseek-r1-distill-qwen-1.5b",
            layers=28,
            hidden=1536,
            heads=12,
            kv_heads=2,
            head_dim=128,
            intermediate=8960,
            mlp="swiglu",
            norm="rmsnorm",
            norm_eps=1e-6,
            position="rope",
            rope_theta=10000.0,
            max_positions=131072,
            vocab=151936,
            biases=_QKV,
            tied_lm_head=False,
        ),
        # GPT-2 in miniature: fused QKV, LayerNorm, learned positions, GELU, biases everywhere, tied head.
        DecoderConfig(
            name="tiny-mha",
            layers=2,
            hidden=64,
            heads=4,
            kv_heads=4,
            head_dim=16,
            intermediate=256,
            mlp="gelu",
            norm="layernorm",
            norm_eps=1e-5,
            position="learned",
            max_positions=256,
            vocab=512,
            biases=_GPT2_LINEARS,
            tied_lm_head=True,
            fused_qkv=True,
        ),
        # Qwen2 in miniature: two query heads per K/V head, RMSNorm, RoPE, SwiGLU, QKV biases, untied head.
        DecoderConfig(
            name="tiny-gqa",
            layers=2,
            hidden=64,
            heads=4,
            kv_heads=2,
            head_dim=16,
            intermediate=176,
            mlp="swiglu",
            norm="rmsnorm",
            norm_eps=1e-6,
            position="rope",
            rope_theta=10000.0,
            max_positions=2048,
            vocab=512,
            biases=_QKV,
            tied_lm_head=False,
        ),
    )
}


def preset(name: str) -> DecoderConfig:
    """The preset architecture called ``name``; an unknown name raises a :class:`ConfigError` listing the known
    ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError(f"unknown model preset {name!r}; known presets: {', '.join(PRESETS)}") from None
