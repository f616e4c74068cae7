"""The one error type for bad input: which file, which key or operator, what was expected and what to change.

The command line and the ``main_*.py`` scripts catch :class:`TraptiError` alone and print it as one line (exit 2).
Anything else that escapes is a bug in stream-trapti, shown as a traceback (exit 1). Errors from Stream, ZigZag,
cerberus, ONNX or CACTI about the user's inputs are translated into a subclass where the input is read, with the
file named. This module imports neither Stream nor ZigZag, so Stage II can raise these without loading them.
"""

from __future__ import annotations

from pathlib import Path


class TraptiError(Exception):
    """A problem with the inputs of a stream-trapti run, or a solve Stream could not complete, explained."""


class ConfigError(TraptiError):
    """A configuration file or option (experiment, sweep, hardware addition, command line) holds a value that is not
    allowed; the message names the file, the key path and what was expected."""


class InputFileError(TraptiError):
    """An input file (hardware YAML, ONNX workload, mapping, trace, summary) is missing, unreadable, or not what
    Stream accepts; the message names the file."""


class OutputError(TraptiError):
    """An output location stream-trapti refuses to write, because writing it could destroy files it did not create,
    or cannot write (permissions, disk)."""


class SolveError(TraptiError):
    """Stream could not schedule the workload on the accelerator (e.g. a memory too small for a tile)."""


class StreamContractError(RuntimeError):
    """Stream's results disagree with what the tracker reproduces of them, or break an assumption the tracker makes:
    a Stream whose internals changed meaning, or a bug of ours. Not bad input, so it is not a :class:`TraptiError`
    and shows its traceback; the message names the group."""


def one_line(error: BaseException) -> str:
    """``error``'s message on one line (YAML's and ONNX's span several), or its type when it has none."""
    return " ".join(str(error).split()) or type(error).__name__


def check_file(path: str | Path, what: str) -> Path:
    """``path`` as a Path, or an :class:`InputFileError` saying which input is missing."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{what} {path}: no such file")
    return path
