"""TRAPTI on Stream, in the style of Stream's own ``main.py`` scripts: edit the INPUTS block and run.

    python scripts/main_trapti.py                      # the INPUTS below
    python scripts/main_trapti.py inputs/experiments/default.yaml

Stage I traces what the accelerator's on-chip memories hold at every cycle while Stream's schedule of each workload
runs; Stage II evaluates banked, power-gated SRAM organisations on those traces. Everything is written to
``outputs/<experiment_id>/``: per workload the trace files, the Perfetto JSON and the plots, then ``summary.json``
and ``report.md``. Solves and CACTI runs are cached, so re-running with the same inputs recomputes nothing.
"""

import sys
from typing import Any

from stream_trapti.cli import run_guarded
from stream_trapti.experiment import load_experiment, parse_experiment, run_experiment
from stream_trapti.reports.console import print_summary

############################################## INPUTS ##############################################
experiment_id = "default"
accelerator = "hardware/trapti_edge.yaml"  # a Stream accelerator YAML
models = ["gpt2-xl", "deepseek-r1-distill-qwen-1.5b"]  # presets (stream_trapti.workloads.config.PRESETS)
onnx = None  # or one ONNX workload instead of models, e.g. "inputs/gpt2-xl_prefill_L128_1layer.onnx"
mapping = None  # a fixed Stream mapping YAML for the ONNX workload; None: Stream's generic mapping generator
prefill = 1024  # prompt length L
decode_steps = 0  # decode steps after the prefill (P = L ... L+N-1)
layers = None  # decoder layers; None: each model's depth
kv_residency = "streamed"  # where the KV cache lives: "streamed" (DRAM), "resident" or "fit" (README: KV residency)
sram_capacities_mib = None  # e.g. [2, 4, 8]: one run per SRAM capacity, on variants of the accelerator; None: as is
sweep = "inputs/sweep_default.yaml"  # Stage II sweep ranges and technology parameters
####################################################################################################


def inputs() -> dict[str, Any]:
    """The INPUTS block as experiment keys: None means "not set", and the keys that shape preset workloads are given
    only with presets (an ONNX workload is solved as given; the experiment rejects them beside it)."""
    workload = (
        {"onnx": onnx, "mapping": mapping}
        if onnx
        else {
            "models": models,
            "prefill": prefill,
            "decode_steps": decode_steps,
            "layers": layers,
            "kv_residency": kv_residency,
        }
    )
    keys = {
        "experiment_id": experiment_id,
        "hardware": accelerator,
        **workload,
        "sram_capacities_mib": sram_capacities_mib,
        "sweep": sweep,
    }
    return {key: value for key, value in keys.items() if value is not None}


def main() -> None:
    """Run the experiment named on the command line, or the INPUTS above."""
    if len(sys.argv) > 1:
        experiment = load_experiment(sys.argv[1])
    else:
        experiment = parse_experiment(inputs(), "scripts/main_trapti.py INPUTS")
    summary = run_experiment(experiment)
    print_summary(summary)
    print(f"\nreport: {experiment.directory / 'report.md'}")


if __name__ == "__main__":
    sys.exit(run_guarded("main_trapti", main))
