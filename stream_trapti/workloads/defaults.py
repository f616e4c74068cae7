"""The committed default workloads in ``inputs/`` and their file names.

File name: ``<preset>_<phase>_<L|P><length>_<depth>.onnx``, for example ``gpt2-xl_prefill_L128_1layer.onnx`` or
``deepseek-r1-distill-qwen-1.5b_decode_P1024_full.onnx``. ``1layer`` files are one decoder block with no embedding
and no LM head (the unit solved and replicated); ``full`` files are the whole model with the embedding lookup and
the LM head, over all positions in prefill and over the last (only) position in decode. All are 8-bit.
"""

from __future__ import annotations

from pathlib import Path

from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import PRESETS, DecoderConfig
from stream_trapti.workloads.spec import WorkloadSpec

MODELS: tuple[str, ...] = ("gpt2-xl", "deepseek-r1-distill-qwen-1.5b")
PREFILL_LENGTHS: tuple[int, ...] = (128, 512, 1024)
DECODE_PAST: tuple[int, ...] = (128, 1024)


def workload_filename(config: DecoderConfig, spec: WorkloadSpec) -> str:
    """The file name of ``spec`` built from ``config`` (see the module doc)."""
    length = f"L{spec.length}" if spec.phase == "prefill" else f"P{spec.length}"
    depth = "full" if spec.layers == config.layers else f"{spec.layers}layer"
    return f"{config.name}_{spec.phase}_{length}_{depth}.onnx"


def default_workloads() -> list[tuple[DecoderConfig, WorkloadSpec]]:
    """Every committed default: both models, prefill L ∈ {128, 512, 1024}, decode P ∈ {128, 1024}
    (1023 for GPT-2 XL, whose context is 1024 positions), one layer and full."""
    found = []
    for name in MODELS:
        config = PRESETS[name]
        # GPT-2's 1024 learned positions hold at most P = 1023 past tokens plus the new one.
        past = [min(n, config.max_positions - 1) for n in DECODE_PAST]
        steps = [("prefill", n, "all") for n in PREFILL_LENGTHS] + [("decode", n, "last") for n in past]
        for phase, length, head in steps:
            found.append((config, WorkloadSpec(phase, length, 1)))
            found.append((config, WorkloadSpec(phase, length, config.layers, embedding=True, lm_head=head)))
    return found


def write_defaults(directory: str | Path) -> list[Path]:
    """Write every default workload into ``directory``; returns the paths written."""
    return [write_workload(c, s, Path(directory) / workload_filename(c, s)) for c, s in default_workloads()]
