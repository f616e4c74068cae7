"""The ``stream-trapti import`` subcommand (registered by :mod:`stream_trapti.cli`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from stream_trapti.errors import OutputError
from stream_trapti.workloads.spec import PRECISIONS


def add_import_command(commands: argparse._SubParsersAction) -> None:
    """Register ``import`` on the CLI's subcommands."""
    parser = commands.add_parser(
        "import",
        help="rewrite a Hugging Face ONNX export (torch.onnx, optimum) into a shape-only workload Stream parses",
        description="Import an ONNX export of a decoder for one step: a prefill of --seq tokens, or (with --past) a "
        "decode step of --seq 1 token after --past cached ones. Prints what it rewrote, node by node.",
    )
    parser.add_argument("export", type=Path, help="the ONNX export (weights may be external or absent)")
    parser.add_argument("--seq", required=True, type=_at_least(1), help="new tokens in the step (L; 1 for decode)")
    parser.add_argument("--past", type=_at_least(0), default=0, help="cached tokens before the step (P; default 0)")
    parser.add_argument(
        "--precision-bits", type=int, choices=PRECISIONS, default=8, help="element width in bits (default 8)"
    )
    parser.add_argument(
        "--embedding",
        action="store_true",
        help="keep the token lookup (default: the hidden states enter as an input, as for presets)",
    )
    parser.add_argument(
        "--last-logits",
        action="store_true",
        help="the LM head over the last position only, as generation runs it (default: every position, as exported)",
    )
    parser.add_argument("-o", "--out", required=True, type=Path, help="the ONNX workload to write")
    parser.set_defaults(run=_run)


def _run(args: argparse.Namespace) -> None:
    # Imported here, not at the top: keeps --help fast.
    from stream_trapti.importer.pipeline import import_export
    from stream_trapti.workloads.analytics import graph_mac_count

    if args.out.resolve() == args.export.resolve():
        raise OutputError(f"{args.out}: is the export itself; give another path to write the workload to")
    _check_replaceable(args.out)
    result = import_export(
        args.export,
        args.out,
        args.seq,
        args.past,
        args.precision_bits,
        embedding=args.embedding,
        last_logits=args.last_logits,
    )
    for line in result.log:
        print(line)
    print(
        f"wrote {args.out}: {len(result.model.graph.node)} nodes, {graph_mac_count(result.model):,} MACs, "
        f"KV cache tensors {', '.join(result.kv_tensors) or 'none'}"
    )


def _check_replaceable(out: Path) -> None:
    """Refuse to replace an existing file that an earlier ``stream-trapti import`` did not write: it is the user's."""
    # Imported here, not at the top: keeps --help fast.
    from stream_trapti.importer.cached import is_imported

    # A directory, or nothing yet, passes: atomic_write says what is wrong with a directory.
    if out.is_file() and not is_imported(out):
        raise OutputError(
            f"{out}: exists and is not a workload stream-trapti import wrote; remove it yourself or give another path"
        )


def _at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``minimum``."""

    def parse(text: str) -> int:
        if not text.isdigit() or int(text) < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}")
        return int(text)

    return parse
