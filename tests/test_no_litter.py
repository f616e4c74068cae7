"""No litter: a run killed with SIGKILL leaves no child process running, and the next run removes its scratch space."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from stream_trapti.cache_dir import CACHE_ENV
from stream_trapti.scratch import owned_prefix, remove_dead, scratch_directory, scratch_root
from stream_trapti.sram.cacti_build import ensure_cacti

HARDWARE = Path(__file__).resolve().parent.parent / "hardware" / "trapti_edge.yaml"

# A CACTI that never finishes (the real one takes under a second here): the run is certainly killed while it waits
# for CACTI, and CACTI cannot end on its own before the test looks.
HANGING_CACTI_RUN = """
import sys
from pathlib import Path
from stream_trapti.sram.cacti import SramConfig, evaluate
from stream_trapti.sram.cacti_build import CactiInstall, ensure_cacti
hanging = CactiInstall(Path(sys.argv[1]), ensure_cacti().tech_params, "hanging")
evaluate(SramConfig(1 << 20), hanging)
"""

CACTI_RUN = """
from stream_trapti.sram.cacti import SramConfig, evaluate
evaluate(SramConfig(1 << 20))
"""

BUILD_RUN = """
from stream_trapti.sram.cacti_build import ensure_cacti
ensure_cacti()
"""

SOLVE_RUN = """
import sys
from stream_trapti.api import TraceOptions
from stream_trapti.inference import Phases, trace_inference
options = TraceOptions(cache_dir=sys.argv[2], progress=False)
trace_inference(sys.argv[1], "tiny-gqa", Phases(16), layers=1, options=options)
"""


def _start(code: str, *args: str, cache: Path | None = None) -> subprocess.Popen[bytes]:
    """A child Python running ``code`` on ``cache``, by default this session's (the environment carries
    STREAM_TRAPTI_CACHE)."""
    env = {**os.environ, CACHE_ENV: str(cache)} if cache else None
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _run(code: str, *args: str) -> None:
    """Run ``code`` in a child Python to completion."""
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _stat(pid: int) -> tuple[str, str, int] | None:
    """(command name, state, parent pid) of a process, or None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    state, ppid = text[text.rindex(")") + 2 :].split()[:2]  # after the command name, which may hold anything
    return name, state, int(ppid)


def _descendants(pid: int) -> dict[int, str]:
    """The live processes below ``pid`` (children, their children, ...) and their command names."""
    processes = {int(e.name): _stat(int(e.name)) for e in Path("/proc").iterdir() if e.name.isdigit()}
    found: dict[int, str] = {}
    parents = [pid]
    while parents:
        parent = parents.pop()
        for child, stat in processes.items():
            if stat is not None and stat[2] == parent and not _is_dead(child):
                found[child] = stat[0]
                parents.append(child)
    return found


def _is_dead(pid: int) -> bool:
    """Gone, or a zombie: killed, waiting to be reaped by whichever process adopted it."""
    stat = _stat(pid)
    return stat is None or stat[1] in ("Z", "X")


def _wait_for[T](condition: Callable[[], T], what: str, timeout_s: float = 60.0) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def _owned_by(parent: Path, pid: int) -> list[Path]:
    """Entries of ``parent`` named as created by process ``pid``."""
    pattern = re.compile(rf"\..+\.[A-Za-z0-9-]+-{pid}\.[^.]+\.(tmp|partial)")
    return [p for p in parent.iterdir() if pattern.fullmatch(p.name)] if parent.is_dir() else []


def _kill(process: subprocess.Popen[bytes]) -> list[int]:
    """SIGKILL ``process``; return the processes it had started."""
    descendants = list(_descendants(process.pid))
    process.kill()
    process.wait()
    return descendants


def _compiling(pid: int) -> bool:
    """Whether ``pid`` runs make, and make a compiler."""
    names = set(_descendants(pid).values())
    return "make" in names and bool(names - {"sh", "make"})


def _kill_survivors(pids: list[int]) -> None:
    """Kill what a failing test would otherwise leave running."""
    for pid in pids:
        if not _is_dead(pid):
            os.kill(pid, signal.SIGKILL)


def test_remove_dead_removes_only_entries_of_dead_processes_on_this_host(tmp_path: Path) -> None:
    dead_prefix = owned_prefix("out").replace(f"-{os.getpid()}.", f"-{_dead_pid()}.")
    dead_scratch = tmp_path / f"{dead_prefix}abcd1234.tmp"
    (dead_scratch / "sub").mkdir(parents=True)
    (dead_scratch / "sub" / "file").write_text("left by a killed run")
    dead_file = tmp_path / f"{dead_prefix}efgh5678.tmp"
    dead_file.write_text("an atomic write's temporary file")
    dead_staging = tmp_path / f"{dead_prefix}ijkl9012.partial"
    dead_staging.mkdir()
    live = tmp_path / f"{owned_prefix('out')}mnop3456.tmp"
    live.mkdir()
    other_host = tmp_path / (re.sub(r"\.[A-Za-z0-9-]+-(\d+)\.$", r".other-host-\1.", dead_prefix) + "qrst7890.tmp")
    other_host.mkdir()
    users = [tmp_path / "notes.tmp", tmp_path / ".out.123.tmp", tmp_path / "out"]
    for path in users:
        path.mkdir()

    assert sorted(remove_dead(tmp_path)) == sorted([dead_scratch, dead_file])
    assert sorted(remove_dead(tmp_path, suffix=".partial")) == [dead_staging]
    assert sorted(tmp_path.iterdir()) == sorted([live, other_host, *users])
    assert remove_dead(tmp_path / "missing") == []


def test_scratch_directory_is_removed_also_on_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), scratch_directory(tmp_path, "work") as scratch:
        assert scratch.parent == tmp_path and scratch.name.startswith(owned_prefix("work"))
        (scratch / "file").write_text("x")
        raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_cacti_dies_with_a_killed_run_and_the_next_run_removes_its_scratch(tmp_path: Path) -> None:
    ensure_cacti()  # built in this process, so the runs only run CACTI
    hanging = tmp_path / "cacti"
    hanging.write_text("#!/bin/sh\nexec sleep 600\n")
    hanging.chmod(0o755)
    run = _start(HANGING_CACTI_RUN, str(hanging))
    _wait_for(lambda: _descendants(run.pid), "CACTI to start")
    assert _owned_by(scratch_root(), run.pid)  # the killed run leaves its scratch directory
    cacti = _kill(run)
    try:
        _wait_for(lambda: all(_is_dead(pid) for pid in cacti), "CACTI to die with its parent", timeout_s=5)
    finally:
        _kill_survivors(cacti)

    _run(CACTI_RUN)
    assert list(scratch_root().iterdir()) == []


def test_a_run_killed_during_a_solve_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    # A solve cache of its own, so the first run cannot be answered from a solve another test cached.
    solve_run = (SOLVE_RUN, str(HARDWARE), str(tmp_path / "solves"))
    run = _start(*solve_run)
    work = _wait_for(lambda: _owned_by(scratch_root(), run.pid), "the inference's scratch directory")[0]
    _wait_for(lambda: any(work.glob("*.onnx")), "the workload to be written, and Stream to start solving")
    time.sleep(2)  # into the solve
    assert run.poll() is None, "the solve finished before it could be killed"
    children = _kill(run)
    try:
        _wait_for(lambda: all(_is_dead(pid) for pid in children), "the solve's child processes to die", timeout_s=5)
    finally:
        _kill_survivors(children)
    assert work.is_dir()

    _run(*solve_run)
    root = scratch_root().parent
    for parent in (root, *(p for p in root.rglob("*") if p.is_dir())):
        assert _owned_by(parent, run.pid) == [], parent
    assert list(scratch_root().iterdir()) == []


def test_a_killed_cacti_build_leaves_no_compiler_running(tmp_path: Path) -> None:
    cache = tmp_path / "cache"  # empty, so the run builds CACTI
    build = _start(BUILD_RUN, cache=cache)
    _wait_for(lambda: _compiling(build.pid), "make to start the compilers")
    started = _kill(build)
    try:
        # They die at once (measured: 10 ms); the compilers of a make killed alone would finish their file (~1 s).
        _wait_for(lambda: all(_is_dead(pid) for pid in started), "make and its compilers to die", timeout_s=0.5)
    finally:
        _kill_survivors(started)
    staging = list((cache / "cacti").glob("*.partial"))
    assert len(staging) == 1 and _owned_by(cache / "cacti", build.pid) == staging
    assert remove_dead(cache / "cacti", suffix=".partial") == staging
