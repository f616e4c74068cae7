"""One Stream solve packed to run anywhere: its input files travel as bytes and its result comes back as the
payload of a solve-cache entry, so a worker on another machine needs neither the client's files nor its cache.

The client makes a :class:`SolveTask` of a :class:`~stream_trapti.tracker.parallel.SolveJob`; :func:`run_task` (in a
worker, or in the client itself for a serial run) writes the files into a scratch directory with the same names and
layout, solves, and returns the groups encoded by :func:`~stream_trapti.tracker.cache.encode_groups`; the client
stores them under the task's content-addressed key (:func:`~stream_trapti.tracker.cache.solve_key`, computed from the
same names and bytes). Every run, serial or distributed, goes through this one path, so the results are the same
bytes whoever solved them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from stream.api import SolveOptions

from stream_trapti.errors import ConfigError, TraptiError, one_line
from stream_trapti.provenance import hardware_files
from stream_trapti.scratch import scratch_directory, scratch_root
from stream_trapti.tracker import cache
from stream_trapti.tracker.parallel import SolveJob
from stream_trapti.tracker.solve import options_key, solve_groups


@dataclass(frozen=True)
class SolveTask:
    """A solve and its inputs: ``hardware`` holds the accelerator YAML (first) and the core YAMLs it names, by path
    relative to the directory that holds them all, with their bytes; ``workload`` the ONNX file's name and bytes.
    ``key`` is the solve's cache key, ``label`` says which solve it is (for the dashboard and errors), ``versions``
    the client's packages, which the key covers and so the worker must run."""

    key: str
    label: str
    hardware: tuple[tuple[str, bytes], ...]
    workload: tuple[str, bytes]
    solve: SolveOptions
    versions: tuple[str, ...]

    @classmethod
    def of(cls, job: SolveJob, solve: SolveOptions, label: str) -> SolveTask:
        """The task of ``job``, its files read now. Core YAMLs must be named relative to the accelerator (``./``
        paths or bare names, as Stream resolves them), so the layout can be rebuilt elsewhere."""
        files = [path.resolve() for path in hardware_files(job.hardware)]
        root = Path(os.path.commonpath([path.parent for path in files]))
        hardware = tuple((str(path.relative_to(root)), path.read_bytes()) for path in files)
        key = cache.solve_key(job.hardware, job.workload, None, options_key(solve))
        workload = (job.workload.name, job.workload.read_bytes())
        return cls(key, label, hardware, workload, solve, cache.package_versions())


@dataclass(frozen=True)
class SolveOutcome:
    """What a task gave: the encoded groups, or the one-line reason Stream could not solve it (bad input is not
    retried: it fails the same way everywhere); and the seconds the solve took where it ran."""

    key: str
    payload: bytes | None
    error: str | None
    seconds: float


def run_task(task: SolveTask) -> SolveOutcome:
    """Solve ``task`` in a scratch directory of this process (under its cache root) and encode the groups. Paths in
    an error are given relative to that directory, so the reason reads the same wherever the task ran. A worker
    whose packages differ from the client's is a :class:`ConfigError` (raised, so the client stops on it): its result
    would be stored under a key that promises the client's."""
    if (here := cache.package_versions()) != task.versions:
        raise ConfigError(f"a Dask worker runs {', '.join(here)}; this client {', '.join(task.versions)}")
    start = time.perf_counter()
    with scratch_directory(scratch_root(), "solve-task") as root:
        for name, content in (*task.hardware, task.workload):
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(content)
        try:
            hardware, workload = root / task.hardware[0][0], root / task.workload[0]
            groups = solve_groups(hardware, workload, root / "stream", None, task.solve)
        except TraptiError as error:
            reason = one_line(error).replace(f"{root}{os.sep}", "")
            return SolveOutcome(task.key, None, reason, time.perf_counter() - start)
    return SolveOutcome(task.key, cache.encode_groups(groups), None, time.perf_counter() - start)
