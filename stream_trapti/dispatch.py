"""Where a sweep's solves run: one after another in this process, or on a Dask cluster.

``scheduler`` names it: ``none`` (serial, in this process), ``local`` (a :class:`dask.distributed.LocalCluster` of
one single-threaded worker process per CPU, or ``workers``), or the address of a running Dask scheduler
(``tcp://host:8786``). Either way every task runs :func:`~stream_trapti.tracker.solve_task.run_task` and its outcome
comes back to the client, so the results do not depend on where they were computed.

On Dask a task whose worker dies is run again on another (the scheduler's ``allowed-failures``, 3 by default); a task
that raises is retried :data:`RETRIES` times. A solve Stream cannot do is not an exception: it comes back as an
outcome with its reason, and is not retried.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from stream_trapti.errors import ConfigError, SolveError
from stream_trapti.sram.cacti_build import available_cpus
from stream_trapti.tracker.solve_task import SolveOutcome, SolveTask, run_task

SCHEDULER_ENV = "DASK_SCHEDULER_ADDRESS"
"""Dask's own variable for the scheduler address; ``--scheduler`` defaults to it, then to ``local``."""

RETRIES = 2
"""Retries of a task that raised (not a worker's death, which the scheduler handles itself)."""


@dataclass(frozen=True)
class Cluster:
    """Where tasks run: ``scheduler`` as in the module docstring; ``workers`` sizes a ``local`` cluster (None: one
    per CPU); ``dashboard`` serves Dask's dashboard for a local cluster (on port 8787, or a free one)."""

    scheduler: str = "local"
    workers: int | None = None
    dashboard: bool = True

    def __post_init__(self) -> None:
        if self.scheduler not in ("none", "local") and "://" not in self.scheduler:
            raise ConfigError(
                f"--scheduler: expected none, local or a Dask scheduler address such as tcp://host:8786, got "
                f"{self.scheduler!r}"
            )
        if self.workers is not None and self.scheduler != "local":
            raise ConfigError("--workers sizes the local cluster only (--scheduler local)")

    @classmethod
    def from_environment(cls, scheduler: str | None, workers: int | None = None) -> Cluster:
        """``scheduler``, else ``$DASK_SCHEDULER_ADDRESS``, else ``local``."""
        return cls(scheduler or os.environ.get(SCHEDULER_ENV) or "local", workers)

    @property
    def serial(self) -> bool:
        return self.scheduler == "none"


@contextmanager
def outcomes(tasks: Sequence[SolveTask], cluster: Cluster) -> Iterator[Iterator[SolveOutcome]]:
    """Start ``tasks`` on ``cluster`` and yield an iterator of their outcomes, in the order they finish. On Dask every
    task is submitted before the iterator is handed out, so the client can work while the workers solve; serially
    each task runs when the iterator is advanced. With nothing to solve no cluster is started."""
    if cluster.serial or not tasks:
        yield (run_task(task) for task in tasks)
        return
    from distributed import as_completed

    with _client(cluster) as client:
        futures = [
            client.submit(run_task, task, key=f"solve-{task.label}-{task.key[:12]}", retries=RETRIES, pure=False)
            for task in tasks
        ]
        try:
            yield (_result(future) for future in as_completed(futures))
        finally:
            client.cancel(futures)


def _result(future) -> SolveOutcome:
    """A finished task's outcome; a task that took its worker down every time it ran is a :class:`SolveError`."""
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as error:
        raise SolveError(
            f"solve {future.key} ended its worker's process each time it ran ({error}); the solves done so far are "
            "cached: give the workers more memory and run the sweep again"
        ) from error


@contextmanager
def _client(cluster: Cluster) -> Iterator:
    """A Dask client of ``cluster``, its dashboard link printed; a local cluster is started and closed with it."""
    from distributed import Client, LocalCluster

    if cluster.scheduler == "local":
        count = cluster.workers or available_cpus()
        local = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":8787" if cluster.dashboard else None,
        )
        with local, Client(local) as client:
            _announce(client, f"a local Dask cluster of {count} workers", cluster.dashboard)
            yield client
        return
    try:
        client = Client(cluster.scheduler, timeout="30s")
    except OSError as error:
        raise ConfigError(f"--scheduler {cluster.scheduler}: cannot reach a Dask scheduler there ({error})") from None
    with client:
        workers = len(client.scheduler_info(n_workers=-1)["workers"])
        _announce(client, f"the Dask cluster at {cluster.scheduler} ({workers} workers now)")
        yield client


def _announce(client, what: str, dashboard: bool = True) -> None:
    print(f"solving on {what}; dashboard: {client.dashboard_link if dashboard else 'off'}", flush=True)
