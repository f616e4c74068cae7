"""The TRAPTI paper's 2.72× (GPT-2 XL over DeepSeek-R1-Distill-Qwen-1.5B, peak on-chip memory), explained with
numbers. Edit the INPUTS block and run:

    python scripts/main_paper_ratio.py [--out outputs/paper_ratio.md]

For one decoder layer of each model in prefill, it computes the peak of a cache-like SRAM that keeps every tensor
from its producer (or first reader) to its last reader (:mod:`stream_trapti.workloads.layer_peak`), on our exact
graphs and under the three ways the paper's simulator (TransInferSim v0.2) differs from them, one at a time and
together:

(a) its grouped-query layer stores one S×S score matrix for all query heads (DeepSeek only; its multi-head layer,
    like ours, stores one per head);
(b) its DeepSeek FFN has two matrices (up 1536→8960, activation, down 8960→1536; no SwiGLU gate);
(c) it runs DeepSeek at S = 4096 against GPT-2 XL at S = 1024.

It prints a markdown table (both peaks in MiB, where each peaks, the GPT-2 / DeepSeek ratio) and writes it to
``--out`` atomically. Shape-only graphs and no Stream solve: it takes a few seconds.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from dataclasses import dataclass
from pathlib import Path

from stream_trapti.atomic import atomic_write
from stream_trapti.cli import run_guarded
from stream_trapti.workloads.builder import build_model
from stream_trapti.workloads.config import DecoderConfig, preset
from stream_trapti.workloads.layer_peak import LayerPeak, layer_peak
from stream_trapti.workloads.spec import WorkloadSpec

############################################## INPUTS ##############################################
mha_model = "gpt2-xl"
gqa_model = "deepseek-r1-distill-qwen-1.5b"
equal_lengths = (128, 1024, 4096)  # prefill lengths S run by both models
paper_lengths = (1024, 4096)  # (c): TransInferSim's default S for GPT-2 XL and for DeepSeek
precision_bits = 8
paper_ratio = 2.72
output = Path("outputs/paper_ratio.md")
####################################################################################################

MIB = 2**20


@dataclass(frozen=True)
class Setting:
    """One comparison: the two prefill lengths and which of TransInferSim's simplifications DeepSeek gets."""

    mha_length: int
    gqa_length: int
    one_score_tensor: bool  # (a)
    two_matrix_ffn: bool  # (b)

    @property
    def label(self) -> str:
        unequal_lengths = self.mha_length != self.gqa_length
        used = (self.one_score_tensor, self.two_matrix_ffn, unequal_lengths)
        marks = [m for m, on in zip("abc", used, strict=True) if on]
        return " + ".join(f"({m})" for m in marks) or "exact"


@dataclass(frozen=True)
class Row:
    setting: Setting
    mha: LayerPeak
    gqa: LayerPeak

    @property
    def ratio(self) -> float:
        return self.mha.peak_bytes / self.gqa.peak_bytes


def settings() -> list[Setting]:
    """Every combination of (a) and (b) at each equal length, then at (c)'s lengths."""
    lengths = [(n, n) for n in equal_lengths] + [paper_lengths]
    # (b) outer, (a) inner: exact, (a), (b), (a) + (b).
    return [Setting(m, g, a, b) for (m, g), b, a in itertools.product(lengths, (False, True), (False, True))]


def peak(config: DecoderConfig, length: int, *, one_score_tensor: bool = False) -> LayerPeak:
    # A one-layer graph has no position table, so GPT-2 XL's 1024 learned positions bound nothing it holds: lifting
    # the bound gives its attention at S > 1024, a length the real model cannot run.
    config = dataclasses.replace(config, max_positions=max(config.max_positions, length))
    spec = WorkloadSpec("prefill", length, 1, precision_bits=precision_bits)
    return layer_peak(build_model(config, spec), one_score_tensor=one_score_tensor)


def measure(setting: Setting) -> Row:
    gqa = preset(gqa_model)
    if setting.two_matrix_ffn:
        # The builder's two-matrix MLP (up, activation, down). Its activation is GELU; any elementwise one has the
        # same tensor sizes, so which one TransInferSim applies does not matter here.
        gqa = dataclasses.replace(gqa, mlp="gelu")
    return Row(
        setting,
        peak(preset(mha_model), setting.mha_length),
        peak(gqa, setting.gqa_length, one_score_tensor=setting.one_score_tensor),
    )


def table(rows: list[Row]) -> str:
    """The markdown table of ``rows``, with the setting nearest the paper's ratio marked."""
    nearest = min(rows, key=lambda r: abs(r.ratio - paper_ratio))
    lines = [
        f"Peak of a cache-like SRAM holding one decoder layer's tensors, prefill, {precision_bits}-bit "
        f"(stream_trapti.workloads.layer_peak). (a) one S×S score tensor for all of DeepSeek's query heads, "
        f"(b) DeepSeek two-matrix FFN, (c) GPT-2 XL at S = {paper_lengths[0]}, DeepSeek at S = {paper_lengths[1]}. "
        f"Paper: {paper_ratio}×.",
        "",
        f"| setting | S {mha_model} | S DeepSeek | {mha_model} peak (MiB) | peaks at | DeepSeek peak (MiB) | peaks at "
        "| GPT-2 / DeepSeek |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        s = row.setting
        ratio = f"**{row.ratio:.2f}**" if row is nearest else f"{row.ratio:.2f}"
        lines.append(
            f"| {s.label} | {s.mha_length} | {s.gqa_length} | {row.mha.peak_bytes / MIB:.3f} | "
            f"{_node(row.mha.peak_node)} | {row.gqa.peak_bytes / MIB:.3f} | {_node(row.gqa.peak_node)} | {ratio} |"
        )
    paper = next(r for r in rows if r.setting == Setting(*paper_lengths, one_score_tensor=True, two_matrix_ffn=True))
    lines += [
        "",
        f"Nearest the paper's {paper_ratio}×: {nearest.setting.label} at S = {nearest.setting.mha_length} / "
        f"{nearest.setting.gqa_length}, {nearest.ratio:.2f}×. The paper's own setting, {paper.setting.label}: "
        f"{paper.ratio:.2f}×.",
    ]
    positions = preset(mha_model).max_positions
    beyond = [str(n) for n in equal_lengths if n > positions]
    if beyond:
        lines.append(
            f"{mha_model} has {positions} learned positions: at S = {', '.join(beyond)} its peak is that of its "
            "layer's tensors at a length the model cannot run."
        )
    return "\n".join(lines) + "\n"


def _node(name: str) -> str:
    return name.removeprefix("layer0.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--out", type=Path, default=output, help=f"markdown file to write (default: {output})")
    args = parser.parse_args()
    text = table([measure(s) for s in settings()])
    print(text, end="")
    print(f"\nwrote {atomic_write(args.out, text.encode())}")


if __name__ == "__main__":
    sys.exit(run_guarded("main_paper_ratio", main))
