"""Atomic, safe writes of files and output directories: a reader, or a run that fails halfway, never sees a
half-written output, and no run deletes anything stream-trapti did not write.

Every directory :func:`atomic_directory` writes holds :data:`OUTPUT_MARKER`. An existing directory is replaced only
when it is empty or holds that marker; the working directory, its ancestors and any directory holding an input of
the run are never replaced. Staging directories are named by :func:`stream_trapti.scratch.owned_prefix`, so the next
run removes those of a killed one.
"""

from __future__ import annotations

import errno
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path

from stream_trapti.errors import OutputError
from stream_trapti.scratch import SCRATCH_SUFFIX, owned_prefix, remove_dead, remove_dead_once

OUTPUT_MARKER = ".stream-trapti-output"
"""The file that marks a directory as written by stream-trapti, and so replaceable by its next run."""

STAGING_SUFFIX = ".partial"

# Failures of the output location itself (not of our code): said as one line naming the directory.
_LOCATION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR, errno.EEXIST}


def atomic_write(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same directory and a rename. The first write into a
    directory in this process removes the temporary files killed runs left there."""
    path = Path(path)
    if path.is_dir():
        # os.replace would fail on it with a bare OSError after the data was written beside it.
        raise OutputError(f"{path}: is a directory; give the path of a file to write")
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_dead_once(path.parent)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=owned_prefix(path.name), suffix=SCRATCH_SUFFIX)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        # mkstemp creates the file private (0600); an output is as readable as any file the user creates.
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output_directory(path: str | Path, inputs: Iterable[str | Path] = ()) -> Path:
    """``path`` if stream-trapti may write it as a whole output directory, else an :class:`OutputError` naming it.

    Refused: the working directory or one of its ancestors, a directory that is or holds one of ``inputs``, a path
    that exists and is not a directory, a non-empty directory without :data:`OUTPUT_MARKER`, and a place where this
    process cannot create a directory (so a long run does not find out only at its end).
    """
    path = Path(path)
    target = path.resolve()
    here = Path.cwd().resolve()
    if target == here or target in here.parents:
        raise OutputError(f"output directory {path} is the working directory or one of its parents; name a new one")
    for source in inputs:
        resolved = Path(source).resolve()
        if resolved == target or target in resolved.parents:
            raise OutputError(f"output directory {path} holds {source}, an input of this run; name another one")
    if target.exists() and not target.is_dir():
        raise OutputError(f"output directory {path} exists and is not a directory")
    if target.is_dir() and not (target / OUTPUT_MARKER).is_file() and any(target.iterdir()):
        raise OutputError(
            f"output directory {path} is not empty and was not written by stream-trapti (it has no {OUTPUT_MARKER}); "
            "name a new or empty directory, or remove it yourself"
        )
    _probe_writable(path, target)
    return path


def _probe_writable(path: Path, target: Path) -> None:
    """Create and remove a directory in the deepest existing ancestor of ``target`` (``os.access`` would not do: it
    says yes to root on a read-only file system)."""
    existing = next(p for p in (target, *target.parents) if p.exists())
    with _location_errors(path):
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=owned_prefix("probe"), suffix=SCRATCH_SUFFIX))


@contextmanager
def atomic_directory(path: str | Path, inputs: Iterable[str | Path] = ()) -> Iterator[Path]:
    """Yield a staging directory beside ``path``; on success it replaces ``path`` whole, on failure it is removed.

    ``path`` must pass :func:`check_output_directory` (with the run's ``inputs``), before the work and again before
    the swap. An output location that cannot be written (read-only, full, not permitted) is an :class:`OutputError`.
    """
    path = Path(path)
    inputs = tuple(inputs)
    check_output_directory(path, inputs)
    with _location_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_dead(path.parent, STAGING_SUFFIX)
        staging = Path(tempfile.mkdtemp(dir=path.parent, prefix=owned_prefix(path.name), suffix=STAGING_SUFFIX))
    try:
        with _location_errors(path):
            yield staging
            (staging / OUTPUT_MARKER).write_text(f"written by stream-trapti {version('stream-trapti')}\n")
            os.chmod(staging, 0o777 & ~_umask())
            check_output_directory(path, inputs)
            _swap_in(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _swap_in(staging: Path, path: Path) -> None:
    """Put ``staging`` at ``path``; an old ``path`` is first renamed to a staging name, so a run killed between the
    renames leaves only what the next run's :func:`remove_dead` removes."""
    if not path.exists():
        os.replace(staging, path)
        return
    old = path.parent / f"{owned_prefix(path.name)}{secrets.token_hex(4)}{STAGING_SUFFIX}"
    os.replace(path, old)
    os.replace(staging, path)
    shutil.rmtree(old)


@contextmanager
def _location_errors(path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        if error.errno not in _LOCATION_ERRNOS:
            raise
        raise OutputError(f"cannot write output directory {path}: {error.strerror} ({error.filename})") from error
