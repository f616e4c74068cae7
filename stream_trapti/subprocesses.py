"""Child processes that never outlive the run that started them, nor leave temporary files outside its directory.

A run killed with SIGKILL gets no chance to clean up, so :func:`run_child` makes the kernel do it. The child runs in
a process group of its own, under a small shell that is the group's leader; on Linux the shell gets a parent-death
signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``), on which it SIGKILLs the whole group: the command and everything it
started (``make``'s compilers), which the kernel's death signal, sent to the direct child only, would miss. When the
waiting thread is interrupted instead (timeout, Ctrl-C), Python kills the group itself. The group of its own also
keeps a terminal's Ctrl-C from reaching the child directly: Python handles it and kills the group. Other platforms
than Linux have no death signal; the process group still serves interruptions. ``TMPDIR`` points the child's
temporary files (the compilers' ``/tmp/cc*.s``) into its working directory, which stream-trapti's own clean-up owns.

The death signal is set in ``preexec_fn``, which Python documents as unsafe in a multi-threaded parent: the forked
child holds only copies of the other threads' locks and can deadlock if it needs one before ``exec``. Ours is a single
``prctl`` call through a ctypes function resolved at import, so the child neither imports, nor loads a library, nor
takes a lock Python or the C library does not reset at fork; CPython's ``_posixsubprocess`` itself re-initialises
the interpreter's state in the child before calling it. This is the usual way to set a death signal from Python; the
alternatives, ``setpriv --pdeathsig`` (not installed everywhere) or a second interpreter per CACTI query, cost more.

This module imports neither Stream nor ZigZag: Stage II uses it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# The direct child: on SIGTERM (the death signal) it SIGKILLs its process group, itself included, so the command and
# all it started die at once. It sets the trap before starting the command, so nothing can start unguarded.
_GROUP_GUARD = 'trap "kill -KILL 0" TERM; "$@" & wait $!'


def _load_prctl() -> Callable[..., int] | None:
    """libc's ``prctl`` on Linux, resolved now so the forked child only calls it; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.CDLL(None).prctl  # the C library's symbols, which Python links


_prctl = _load_prctl()


def _die_with_parent(parent_pid: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGTERM the child when its parent dies; None where there is no prctl."""
    if _prctl is None:
        return None
    prctl = _prctl

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
        # The parent may have died between fork and prctl, before the death signal was armed: then we have already
        # been re-parented, and must not run on.
        if os.getppid() != parent_pid:
            os._exit(1)

    return preexec


def tie_to_parent(parent_pid: int) -> None:
    """Initialiser of a worker process (``ProcessPoolExecutor(initializer=...)``) started by ``parent_pid``: the
    kernel terminates the worker when that process dies, as :func:`run_child` does for its children."""
    if (arm := _die_with_parent(parent_pid)) is not None:
        arm()


def _kill_group(process: subprocess.Popen[str]) -> None:
    """SIGKILL the child's process group: the child and anything it started."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:  # the whole group has already exited
        pass


def run_child(args: Sequence[str], *, cwd: Path, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``args`` in ``cwd`` and return its exit status and text output, like ``subprocess.run(capture_output=True,
    text=True)``, but as a child that dies, with everything it starts, when this process dies.

    The exit status is the shell's: a command killed by signal N exits with 128 + N. Its temporary files go in
    ``cwd`` (``TMPDIR``). On Linux the child is killed when the thread that started it dies. PR_SET_PDEATHSIG is
    tied to the forking *thread*, not the process: that is safe here because this same thread blocks until the
    child exits, so it outlives the child unless the whole process dies. If waiting is interrupted (``timeout``
    expires: ``subprocess.TimeoutExpired``; Ctrl-C; any exception), the child's process group is SIGKILLed and the
    exception propagates.
    """
    with subprocess.Popen(
        ["/bin/sh", "-c", _GROUP_GUARD, "sh", *args],
        cwd=cwd,
        env={**os.environ, "TMPDIR": str(Path(cwd).absolute())},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        process_group=0,
        # preexec_fn in a threaded parent (CACTI runs from a thread pool): safe for one prctl call; see the docstring.
        preexec_fn=_die_with_parent(os.getpid()),
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            _kill_group(process)
            raise  # Popen.__exit__ reaps the killed child
    return subprocess.CompletedProcess(list(args), process.returncode, stdout, stderr)
