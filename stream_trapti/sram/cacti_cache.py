"""Persistent, concurrency-safe cache of CACTI results, and parallel evaluation of many configurations.

One JSON file per result under ``<cache root>/cacti-results/<fingerprint>-v<schema>/<key>.json``; the key hashes
the full SramConfig and the fingerprint hashes the CACTI source, our patch and our compiler flags: a different
CACTI never serves a stale figure. Each file is a :mod:`stream_trapti.cache_entry` (schema and checksum) around the
result's JSON, written atomically (temporary file + rename), so readers in other threads or processes see a whole
result or none; two processes computing the same key write identical content. An unreadable file is logged,
deleted and computed again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from functools import partial
from pathlib import Path

from tqdm import tqdm

from stream_trapti import cache_entry
from stream_trapti.cache_dir import cache_root
from stream_trapti.sram.cacti import ArrayOrganisation, SramConfig, SramResult, evaluate
from stream_trapti.sram.cacti_build import CactiInstall, available_cpus, ensure_cacti

# Bump when SramResult's fields or the file format change, so results cached by an older stream-trapti are not misread.
RESULT_SCHEMA = 5
ENTRY_SCHEMA = f"cacti-result {RESULT_SCHEMA}"


def _key(config: SramConfig) -> str:
    payload = json.dumps(dataclasses.asdict(config), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:24]


def result_path(config: SramConfig, install: CactiInstall) -> Path:
    """Where the cached result for ``config`` under ``install`` lives."""
    return cache_root() / "cacti-results" / f"{install.fingerprint}-v{RESULT_SCHEMA}" / f"{_key(config)}.json"


def _decode(payload: bytes, config: SramConfig) -> SramResult:
    data = json.loads(payload)
    result = SramResult(
        **{
            **data,
            "config": SramConfig(**data["config"]),
            "organisation": ArrayOrganisation(**data["organisation"]),
        }
    )
    # A key collision must not silently return another macro's figures.
    if result.config != config:
        raise ValueError(f"it holds the result of {result.config}")
    return result


def query(config: SramConfig) -> SramResult:
    """CACTI's figures for ``config``, from the disk cache when present, else by running CACTI and caching them."""
    install = ensure_cacti()
    path = result_path(config, install)
    cached = cache_entry.load(path, ENTRY_SCHEMA, partial(_decode, config=config))
    if cached is not None:
        return cached
    result = evaluate(config, install)
    cache_entry.store(path, json.dumps(dataclasses.asdict(result), indent=1, sort_keys=True).encode(), ENTRY_SCHEMA)
    return result


def query_many(configs: Iterable[SramConfig], *, workers: int | None = None, progress: bool = True) -> list[SramResult]:
    """``query`` for each configuration, in order, running at most ``workers`` CACTI processes at once (default: one
    per CPU this process may use).

    Duplicates are evaluated once. A failing configuration raises its error after the others have finished. Threads
    suffice because the work happens in the CACTI subprocesses, and they keep cacti_process_count() exact (one
    process-wide counter).
    """
    if workers is None:
        workers = available_cpus()
    if workers < 1:
        raise ValueError(f"workers={workers} must be at least 1.")
    ordered = list(configs)
    unique = list(dict.fromkeys(ordered))
    ensure_cacti()  # build once up front rather than have every worker wait on the build lock
    results: dict[SramConfig, SramResult] = {}
    errors: list[Exception] = []
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        tqdm(total=len(unique), desc="CACTI", unit="macro", disable=not progress) as bar,
    ):
        futures = {pool.submit(query, config): config for config in unique}
        try:
            for future in as_completed(futures):
                try:
                    results[futures[future]] = future.result()
                except Exception as error:
                    errors.append(error)  # re-raised below, once the other configurations have finished
                bar.update()
        except BaseException:
            # Ctrl-C reaches this thread only: drop the queued queries so the pool waits for the running ones alone.
            for future in futures:
                future.cancel()
            raise
    if errors:
        raise errors[0]
    return [results[config] for config in ordered]
