"""The headline TRAPTI study: GPT-2 XL (multi-head attention) against DeepSeek-R1-Distill-Qwen-1.5B (grouped-query
attention) on the default accelerator. Edit the INPUTS block and run:

    python scripts/main_compare_mha_gqa.py

It traces and explores every model under every KV residency policy: each prefill length and each decode cache length
on the accelerator and on its SRAM resized to the capacities below (variants priced by CACTI); then a decode step by
step with its cache resident, a few steps under each fused schedule, and the sensitivity of the result to the cell
flavour and the gated-leakage fraction. It writes ``outputs/mha_vs_gqa/report.md`` with ``study.json``,
``study.csv``, the traces and the plots. Solves and CACTI runs are cached: a second run takes seconds.
"""

import sys
import time
from pathlib import Path

from stream_trapti.cli import run_guarded
from stream_trapti.sram.sweep_config import load_sweep_spec
from stream_trapti.study import Growth, Study, run_study

############################################## INPUTS ##############################################
accelerator = Path("hardware/trapti_edge.yaml")
models = ("gpt2-xl", "deepseek-r1-distill-qwen-1.5b")
prefill_lengths = (128, 512, 1024)
decode_past = (16, 64, 128, 256, 512, 1024)  # cache lengths P of one decode step (GPT-2 XL: at most 1023)
policies = ("streamed", "resident", "fit")  # where the KV cache lives (README: KV-cache residency)
capacities_mib = (2, 4, 8, 16, 32, 64)  # the decode steps run on the accelerator's SRAM resized to each ...
prefill_capacities_mib = (16, 64)  # ... the prefills on the accelerator's own (4 MiB) and on these
schedules = ("committed", "attention", "layer")  # fused schedules (README: Fused schedules) ...
schedule_steps = (("decode", 128), ("prefill", 128))  # ... each run at these steps, on the accelerator
growth = Growth("gpt2-xl", past=16, steps=16, capacity_mib=8)  # a decode traced step by step, cache resident
sweep = Path("inputs/sweep_default.yaml")
sensitivity_prefill = 1024
output = Path("outputs/mha_vs_gqa")
####################################################################################################


def main() -> None:
    """Run the study of the INPUTS above and print its report."""
    start = time.perf_counter()
    study = Study(
        hardware=accelerator,
        models=models,
        prefill_lengths=prefill_lengths,
        decode_past=decode_past,
        sweep=load_sweep_spec(sweep),
        sensitivity_prefill=sensitivity_prefill,
        policies=policies,
        capacities_mib=capacities_mib,
        prefill_capacities_mib=prefill_capacities_mib,
        growth=growth,
        schedules=schedules,
        schedule_steps=schedule_steps,
    )
    run_study(study, output)
    print((output / "report.md").read_text())
    print(f"study written to {output} in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    sys.exit(run_guarded("main_compare_mha_gqa", main))
