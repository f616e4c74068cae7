"""The ``stream-trapti`` command line.

Examples::

    stream-trapti trace --hardware hardware/trapti_edge.yaml --model gpt2-xl --prefill 1024 --out outputs/gpt2
    stream-trapti trace --hardware hardware/trapti_edge.yaml --onnx inputs/my_block.onnx --out outputs/mine
    stream-trapti trace --hardware hardware/trapti_edge.yaml --onnx inputs/gpt2-xl_decode_P128_1layer.onnx \\
        --fusion layer --out outputs/gpt2_fused
    stream-trapti trace --hardware hardware/trapti_edge.yaml --model deepseek-r1-distill-qwen-1.5b \\
        --prefill 128 --decode-steps 16 --out outputs/ds_decode
    stream-trapti explore --trace outputs/gpt2/trace.npz --sweep inputs/sweep_default.yaml --out outputs/gpt2_sram
    stream-trapti run inputs/experiments/default.yaml
    stream-trapti report outputs/default
    stream-trapti sweep inputs/design_sweep_default.yaml --dry-run
    stream-trapti sweep inputs/design_sweep_default.yaml --scheduler tcp://127.0.0.1:8786
    stream-trapti import exports/llama.onnx --seq 128 -o inputs/llama_prefill_L128.onnx
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from stream_trapti.errors import ConfigError, TraptiError
from stream_trapti.fusion import FUSIONS
from stream_trapti.importer.command import add_import_command
from stream_trapti.residency import DEFAULT_KV_BUDGET, KV_RESIDENCIES

EPILOG = __doc__.split("Examples::", 1)[1]


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 on success, 2 on an input or solve error, 130 on Ctrl-C)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if not args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    return run_guarded(f"stream-trapti {args.command}", lambda: args.run(args), verbose=args.verbose)


def run_guarded(prog: str, action: Callable[[], object], *, verbose: bool = False) -> int:
    """Run ``action`` and return an exit status: 0, or 2 after one line on stderr for bad input (a
    :class:`TraptiError`), or 130 after one line on Ctrl-C. Any other exception propagates with its traceback: it is
    a bug in stream-trapti, and the traceback is what a report of it needs. ``verbose`` also prints the traceback of
    bad input, with the Stream or ZigZag error it was translated from."""
    try:
        action()
    except TraptiError as error:
        if verbose:
            traceback.print_exc()
        print(f"{prog}: error: {' | '.join(str(error).splitlines())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stream-trapti",
        description="TRAPTI on Stream: on-chip memory occupancy traces and banked, power-gated SRAM exploration.",
        epilog="examples:" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="log Stream's and our progress, and show the cause of an error"
    )
    commands = parser.add_subparsers(dest="command", required=True)

    trace = commands.add_parser(
        "trace",
        help="Stage I: trace on-chip memory occupancy of a Stream schedule",
        epilog="examples:" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    trace.add_argument("--hardware", required=True, type=Path, help="Stream accelerator YAML")
    source = trace.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", help="model preset (e.g. gpt2-xl, deepseek-r1-distill-qwen-1.5b, tiny-mha)")
    source.add_argument("--onnx", type=Path, help="an ONNX workload Stream can parse, solved as given")
    trace.add_argument("--mapping", type=Path, help="fixed Stream mapping YAML for --onnx (default: generic mapper)")
    trace.add_argument("--prefill", type=int, help="prefill length L (with --model; default 0)")
    trace.add_argument("--decode-steps", type=int, help="decode steps after the prefill (with --model; default 0)")
    trace.add_argument("--decode-from", type=int, help="cache length of the first decode step when --prefill is 0")
    trace.add_argument("--layers", type=int, help="decoder layers (with --model; default: the model's depth)")
    trace.add_argument(
        "--precision", type=int, choices=(8, 16, 32), help="element width in bits (with --model; default 8)"
    )
    trace.add_argument(
        "--kv-residency",
        choices=KV_RESIDENCIES,
        help="where the KV cache lives between operators (with --model; default streamed: in DRAM)",
    )
    trace.add_argument("--kv-budget", type=float, help="with --kv-residency fit: the SRAM share the cache may take")
    trace.add_argument(
        "--fusion",
        choices=FUSIONS,
        default="committed",
        help="what Stream fuses into one group: operator, the attention sub-block or the whole layer (default "
        "committed: the --mapping given, else Stream's generic mapper)",
    )
    trace.add_argument("--window", type=int, help="access-statistics window in cycles")
    trace.add_argument("--no-cache", action="store_true", help="solve everything afresh")
    trace.add_argument("--workers", type=_positive, help="Stream solves run at once (default: one per CPU)")
    trace.add_argument("--out", required=True, type=Path, help="output directory (written atomically)")
    trace.set_defaults(run=_trace)

    explore = commands.add_parser(
        "explore",
        help="Stage II: evaluate banked, power-gated SRAM organisations on a trace",
        epilog="examples:" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    explore.add_argument("--trace", required=True, type=Path, help="a trace.npz written by 'stream-trapti trace'")
    explore.add_argument(
        "--sweep", type=Path, help="sweep YAML (keys: see inputs/sweep_default.yaml); default: all defaults"
    )
    explore.add_argument("--out", required=True, type=Path, help="output directory (written atomically)")
    explore.set_defaults(run=_explore)

    run = commands.add_parser(
        "run",
        help="Stage I and Stage II from an experiment YAML, as scripts/main_trapti.py runs them",
        epilog="examples:" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("experiment", type=Path, help="experiment YAML (see inputs/experiments/default.yaml)")
    run.add_argument("--no-cache", action="store_true", help="solve everything afresh")
    run.add_argument("--workers", type=_positive, help="Stream solves run at once (default: one per CPU)")
    run.set_defaults(run=_run)

    report = commands.add_parser(
        "report",
        help="rewrite report.md of an experiment's output directory from its summary.json",
        epilog="examples:" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("directory", type=Path, help="an experiment's output directory, e.g. outputs/default")
    report.set_defaults(run=_report)

    sweep = commands.add_parser(
        "sweep",
        help="a design-space sweep: every point of a design sweep YAML, solved on Dask (or serially), one table",
        epilog="examples:" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sweep.add_argument("design", type=Path, help="design sweep YAML (see inputs/design_sweep_default.yaml)")
    sweep.add_argument(
        "--scheduler",
        help="none (serial, in this process), local (a Dask LocalCluster) or a Dask scheduler's address, "
        "tcp://host:8786 (default: $DASK_SCHEDULER_ADDRESS, else local)",
    )
    sweep.add_argument("--workers", type=_positive, help="workers of the local cluster (default: one per CPU)")
    sweep.add_argument("--dry-run", action="store_true", help="list the points and their cached solves; solve nothing")
    sweep.set_defaults(run=_sweep)
    add_import_command(commands)
    return parser


def _positive(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


def _trace(args: argparse.Namespace) -> None:
    # Imported here, not at the top: keeps --help fast.
    from stream_trapti.api import TraceOptions, trace_workload
    from stream_trapti.atomic import check_output_directory
    from stream_trapti.inference import Phases, trace_inference
    from stream_trapti.reports.trace_outputs import write_trace_outputs
    from stream_trapti.scratch import scratch_directory, scratch_root

    # Refused before the solve, not after it: a bad --out should cost no solve.
    inputs = [p for p in (args.hardware, args.onnx, args.mapping) if p is not None]
    check_output_directory(args.out, inputs)
    options = TraceOptions(window=args.window, use_cache=not args.no_cache, workers=args.workers)
    if args.onnx is not None:
        _refuse_model_options(args)
        with scratch_directory(scratch_root(), "stream") as stream_out:
            result = trace_workload(args.hardware, args.onnx, stream_out, args.mapping, options, fusion=args.fusion)
    else:
        if args.mapping is not None:
            raise ConfigError("--mapping applies to --onnx workloads; --model traces use Stream's generic mapper")
        phases = Phases(args.prefill or 0, args.decode_steps or 0, args.decode_from)
        if args.kv_budget is not None and args.kv_residency != "fit":
            raise ConfigError("--kv-budget applies to --kv-residency fit only")
        result = trace_inference(
            args.hardware,
            args.model,
            phases,
            layers=args.layers,
            precision_bits=args.precision or 8,
            kv_residency=args.kv_residency or "streamed",
            kv_budget=args.kv_budget or DEFAULT_KV_BUDGET,
            fusion=args.fusion,
            options=options,
        )
    written = write_trace_outputs(result, args.out, inputs)
    print(_summary(result))
    print(f"wrote {', '.join(sorted(p.name for p in written))} to {args.out}")


def _refuse_model_options(args: argparse.Namespace) -> None:
    """An ONNX workload is traced as given: options that shape a preset's workload would be silently ignored."""
    given = [
        f"--{name.replace('_', '-')}"
        for name in ("prefill", "decode_steps", "decode_from", "layers", "precision", "kv_residency", "kv_budget")
        if getattr(args, name) is not None
    ]
    if given:
        raise ConfigError(f"{', '.join(given)} shape(s) a --model workload; an --onnx workload is traced as given")


def _explore(args: argparse.Namespace) -> None:
    # Imported here, not at the top: keeps --help fast.
    from stream_trapti.atomic import check_output_directory
    from stream_trapti.sram.exploration import explore_trace

    check_output_directory(args.out, [p for p in (args.trace, args.sweep) if p is not None])
    result = explore_trace(args.trace, args.sweep, args.out)
    for objective, index in result.best.items():
        c = result.configs[index]
        timeout = f" (timeout {c.timeout_cycles} cycles)" if c.timeout_cycles is not None else ""
        print(
            f"best {objective}: {c.bank_count} banks of {c.capacity_bytes // c.bank_count:,} B, {c.policy}{timeout}, "
            f"{c.flavour}/{c.gating_mode}: {c.total_pj / 1e6:,.3f} µJ, saving {c.saving:.1%} against always-on, "
            f"area {c.area_mm2:.3f} mm², latency penalty {c.penalty_cycles:,} cycles"
        )
    if result.stream_estimate_pj is not None:
        print(
            f"Stream's own estimate of this SRAM (monolithic, no leakage, the hardware YAML's access energies): "
            f"{result.stream_estimate_pj / 1e6:,.3f} µJ"
        )
    print(f"wrote {len(result.configs)} configurations to {args.out}")


def _run(args: argparse.Namespace) -> None:
    # Imported here, not at the top: keeps --help fast.
    from stream_trapti.api import TraceOptions
    from stream_trapti.experiment import load_experiment, run_experiment
    from stream_trapti.reports.console import print_summary

    experiment = load_experiment(args.experiment)
    print_summary(run_experiment(experiment, TraceOptions(use_cache=not args.no_cache, workers=args.workers)))
    print(f"\nreport: {experiment.directory / 'report.md'}")


def _report(args: argparse.Namespace) -> None:
    # Imported here, not at the top: keeps --help fast.
    from stream_trapti.reports.report_md import rewrite_report

    print(f"wrote {rewrite_report(args.directory)}")


def _sweep(args: argparse.Namespace) -> None:
    # Imported here, not at the top: keeps --help fast.
    from stream_trapti.design_sweep import load_design_sweep
    from stream_trapti.dispatch import Cluster
    from stream_trapti.sweep_run import dry_run, run_sweep

    if not args.verbose:  # importing Dask's distributed sets its loggers to log every worker's start and stop
        import distributed  # noqa: F401

        logging.getLogger("distributed").setLevel(logging.ERROR)
    sweep = load_design_sweep(args.design)
    cluster = Cluster.from_environment(args.scheduler, args.workers)
    if args.dry_run:
        print(dry_run(sweep))
        return
    stats = run_sweep(sweep, cluster).stats
    print(
        f"{stats.points} points ({stats.cached_points} cached), {stats.solves} distinct solves ({stats.cached_solves} "
        f"cached), {stats.wall_seconds:.0f} s\nreport: {sweep.directory / 'report.md'}"
    )


def _summary(result) -> str:
    trace = result.trace
    lines = [f"cycles: {trace.cycles:,}   Stream energy: {result.stream.energy_pj / 1e6:,.3f} µJ"]
    for m, memory in enumerate(trace.memories):
        needed, at = trace.peak(m, "needed")
        reserved, _ = trace.peak(m, "reserved")
        lines.append(
            f"{memory.name}: capacity {memory.capacity_bytes:,} B, peak reserved {reserved:,} B, peak needed "
            f"{needed:,} B at cycle {at:,} (needed/reserved {needed / reserved if reserved else 0:.2f})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
