"""Fused groups reused across solves (stream_trapti.tracker.group_reuse): a decode step re-solves only the groups that
read the cache, and what it reuses is what it would have solved."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np

from stream_trapti.api import TraceOptions
from stream_trapti.tracker import cache
from stream_trapti.tracker.solve import solve_groups, solve_groups_cached
from stream_trapti.workloads.builder import write_workload
from stream_trapti.workloads.config import preset
from stream_trapti.workloads.spec import WorkloadSpec

from conftest import DEFAULT_HARDWARE

# The nodes of a decode layer whose tensors grow with the cache length P: the appends, the scores over the cache,
# their softmax and the context. Every other group (norms, projections, RoPE, MLP, LM head) is the same at every P.
CACHE_READERS = {
    "layer0.attn.k_append",
    "layer0.attn.v_append",
    "layer0.attn.scores",
    "layer0.attn.scale",
    "layer0.attn.softmax_max",
    "layer0.attn.softmax_exp",
    "layer0.attn.softmax_sum",
    "layer0.attn.softmax_div",
    "layer0.attn.context",
}


def _decode(tmp_path: Path, past: int) -> Path:
    return write_workload(
        preset("tiny-gqa"), WorkloadSpec("decode", past, 1, 8, lm_head="last"), tmp_path / f"{past}.onnx"
    )


def _entries(directory: Path) -> set[Path]:
    return set((directory / cache.FUSED_GROUPS).glob("*.npz"))


def test_the_next_decode_step_solves_only_the_groups_that_read_the_cache(tmp_path: Path) -> None:
    solve = TraceOptions(progress=False).solve
    directory = tmp_path / "cache"
    first = solve_groups_cached(DEFAULT_HARDWARE, _decode(tmp_path, 16), tmp_path / "a", None, solve, directory)
    solved_first = _entries(directory)
    assert len(solved_first) == len(first)

    reused = solve_groups_cached(DEFAULT_HARDWARE, _decode(tmp_path, 17), tmp_path / "b", None, solve, directory)
    new = _entries(directory) - solved_first
    new_names = {g.name for entry in new for g in cache.load_groups(directory, entry.stem, cache.FUSED_GROUPS)}
    assert new_names == CACHE_READERS

    alone = solve_groups(DEFAULT_HARDWARE, _decode(tmp_path, 17), tmp_path / "c", None, solve)
    assert [g.name for g in reused] == [g.name for g in alone]
    for mine, theirs in zip(reused, alone, strict=True):
        for field in fields(mine):
            a, b = getattr(mine, field.name), getattr(theirs, field.name)
            if isinstance(a, np.ndarray):
                np.testing.assert_array_equal(a, b, err_msg=f"{mine.name}.{field.name}")
            else:
                assert a == b, f"{mine.name}.{field.name}"
