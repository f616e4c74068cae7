"""Temporary files and directories that name their owner, so a later run can remove those a killed run left.

A run killed with SIGKILL removes nothing. Every temporary entry stream-trapti creates is therefore named

    ``.<name>.<host>-<pid>.<random><suffix>``

where ``<name>`` says what it is for (the output it stages, or ``cacti``), ``<host>`` and ``<pid>`` identify the
process that created it, ``<random>`` is :mod:`tempfile`'s unique part and ``<suffix>`` its kind: ``.tmp`` for
scratch space (:func:`scratch_directory`, :func:`stream_trapti.atomic.atomic_write`'s files) and ``.partial`` for
:func:`stream_trapti.atomic.atomic_directory`'s staging directories. :func:`owned_prefix` gives the part up to
``<random>``, to pass to :func:`tempfile.mkdtemp` / :func:`tempfile.mkstemp`; :func:`remove_dead` removes the entries
of a directory whose process has exited. The host is part of the name because a cache directory in ``$HOME`` may be
shared by machines that cannot see each other's processes: only entries of this host are ever judged dead.

Scratch space lives under the cache root (:func:`scratch_root`), never in the system's ``/tmp``, so it is found and
cleaned by the next run; :func:`scratch_directory` cleans its parent of dead processes' entries on first use in a
process. This module imports neither Stream nor ZigZag: Stage II uses it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

from stream_trapti.cache_dir import cache_root

logger = logging.getLogger(__name__)

SCRATCH_SUFFIX = ".tmp"
"""Suffix of scratch directories and of atomic writes' temporary files."""


@cache
def _host() -> str:
    """This machine's name, reduced to letters, digits and ``-`` so it cannot be confused with the name's dots."""
    return re.sub(r"[^A-Za-z0-9-]+", "-", socket.gethostname())[:63] or "localhost"


def owned_prefix(name: str) -> str:
    """``.<name>.<host>-<pid>.``: the ``prefix`` for :func:`tempfile.mkdtemp` / :func:`tempfile.mkstemp` that makes a
    temporary entry :func:`remove_dead` can attribute to this process."""
    return f".{name}.{_host()}-{os.getpid()}."


def _owner_pid(entry: str, suffix: str) -> int | None:
    """The pid in ``entry``'s name if it is a temporary entry with ``suffix`` created on this host, else None."""
    match = re.fullmatch(rf"\..+\.(?P<host>[A-Za-z0-9-]+)-(?P<pid>\d+)\.[^.]+{re.escape(suffix)}", entry)
    if match is None or match["host"] != _host():
        return None
    return int(match["pid"])


def _is_alive(pid: int) -> bool:
    """Whether process ``pid`` exists. A reused pid makes a dead owner look alive: its entry is merely kept longer."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def remove_dead(parent: Path, suffix: str = SCRATCH_SUFFIX) -> list[Path]:
    """Remove the temporary entries (named by :func:`owned_prefix`, ending in ``suffix``) directly in ``parent`` whose
    process on this host no longer exists; return those now gone. Entries of live processes, of other hosts, and
    anything not named so are left alone. Safe to run concurrently with other processes doing the same; an entry that
    cannot be removed (permissions) is logged as a warning and left, as cleaning up must never fail a run."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except FileNotFoundError:
        return removed
    for entry in entries:
        pid = _owner_pid(entry.name, suffix)
        if pid is not None and not _is_alive(pid) and _remove(entry):
            removed.append(Path(entry.path))
    return removed


def _remove(entry: os.DirEntry[str]) -> bool:
    """Remove a file or directory tree; True once it is gone (also if another process removed it first), False if it
    cannot be removed, with a warning saying why."""
    try:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, onexc=_unless_missing)
        else:
            os.unlink(entry.path)
    except FileNotFoundError:  # another process cleaning the same directory got there first
        return True
    except OSError as error:
        logger.warning("could not remove %s, left by a process that no longer exists: %s", entry.path, error)
        return False
    return True


def _unless_missing(_function: object, _path: str, error: BaseException) -> None:
    """``rmtree``'s error handler: what another process removed first is fine, anything else is raised."""
    if not isinstance(error, FileNotFoundError):
        raise error


def scratch_root() -> Path:
    """The default parent of scratch space: ``<cache root>/tmp``."""
    return cache_root() / "tmp"


@cache
def remove_dead_once(parent: Path) -> None:
    """Remove dead processes' scratch in ``parent``, once per process and parent (``functools.cache``)."""
    remove_dead(parent)


@contextmanager
def scratch_directory(parent: Path, prefix: str) -> Iterator[Path]:
    """A new, private directory ``parent/.<prefix>.<host>-<pid>.<random>.tmp``, removed when the block exits, also on
    an exception. ``parent`` is created if needed and, on its first use in this process, cleaned of the scratch
    directories of processes that no longer exist."""
    parent.mkdir(parents=True, exist_ok=True)
    remove_dead_once(parent)
    path = Path(tempfile.mkdtemp(dir=parent, prefix=owned_prefix(prefix), suffix=SCRATCH_SUFFIX))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
