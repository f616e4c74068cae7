"""Stream solves run side by side: the steps of an inference are independent solves, so on a machine with several
CPUs the ones the cache does not hold yet are solved at once, each in a worker process, before the inference is
composed from the cache in order.

Each worker runs :func:`~stream_trapti.tracker.solve.solve_groups_cached`, which stores its result in the shared
content-addressed cache (entries are written atomically); the serial pass that follows then finds every solve there.
A solve that fails in a worker is not reported from it: the serial pass solves it again and reports it with the
step's context. Workers are spawned, not forked (Stream's solver libraries run threads), and die with the process
that started them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from stream.api import SolveOptions
from tqdm import tqdm

from stream_trapti.subprocesses import tie_to_parent
from stream_trapti.tracker import cache
from stream_trapti.tracker.solve import options_key, solve_groups_cached

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SolveJob:
    """One Stream solve: ``workload`` on ``hardware``, with Stream's own outputs under ``output_path``."""

    hardware: Path
    workload: Path
    output_path: Path


def presolve(
    jobs: Sequence[SolveJob], solve: SolveOptions, cache_dir: Path, workers: int, progress: bool = True
) -> int:
    """Solve into ``cache_dir``, on up to ``workers`` processes, every job the cache does not hold yet; return how
    many were solved. With one worker, or at most one job to solve, nothing runs here: the serial pass does it."""
    if workers < 2 or len(jobs) < 2:
        return 0  # before hashing every job's inputs: the serial pass keys each solve anyway
    todo = [
        job
        for job in dict.fromkeys(jobs)
        if not cache.has_groups(cache_dir, cache.solve_key(job.hardware, job.workload, None, options_key(solve)))
    ]
    if len(todo) < 2:
        return 0
    context = multiprocessing.get_context("spawn")
    count = min(workers, len(todo))
    with ProcessPoolExecutor(count, mp_context=context, initializer=tie_to_parent, initargs=(os.getpid(),)) as pool:
        futures = [pool.submit(_solve_job, job, solve, cache_dir) for job in todo]
        try:
            done = as_completed(futures)
            bar = tqdm(done, total=len(futures), desc=f"solving on {count} workers", unit="solve", disable=not progress)
            for future in bar:
                if (error := future.exception()) is not None:
                    logger.info("a worker's solve failed (%s); the serial pass retries it", error)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return len(todo)


def _solve_job(job: SolveJob, solve: SolveOptions, cache_dir: Path) -> None:
    solve_groups_cached(job.hardware, job.workload, job.output_path, None, solve, cache_dir)
