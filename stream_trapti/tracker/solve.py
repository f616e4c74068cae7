"""One Stream solve with the occupancy tracker on, and the disk cache that saves repeating it."""

from __future__ import annotations

import logging
import traceback
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml
from stream.api import SolveOptions, evaluate_mapping
from stream.ir.infeasibility import InfeasibleAllocationError

from stream_trapti.errors import InputFileError, SolveError, StreamContractError
from stream_trapti.fusion import FINER_OPTION, GENERATOR_VERSION, STAGE_OPTION, check_registered
from stream_trapti.mappings import TokenRetry
from stream_trapti.tracker import cache
from stream_trapti.tracker.group import GroupOccupancy
from stream_trapti.tracker.group_reuse import AllGroupsReused, GroupReuse
from stream_trapti.tracker.infeasibility import explain
from stream_trapti.tracker.inputs import check_solve_inputs
from stream_trapti.tracker.plugin import ENTRY_POINT_NAME

logger = logging.getLogger(__name__)


def solve_groups_cached(
    hardware: str | Path,
    workload: str | Path,
    output_path: str | Path,
    mapping: str | Path | None,
    solve: SolveOptions,
    cache_dir: Path | None,
) -> list[GroupOccupancy]:
    """:func:`solve_groups`, answered from ``cache_dir`` when the same solve was cached there (None: no cache). A
    cached solve's inputs, byte for byte the ones its key hashes, were checked when it was solved."""
    if cache_dir is None:
        return solve_groups(hardware, workload, output_path, mapping, solve)
    hardware, workload = Path(hardware), Path(workload)
    try:
        key = cache.solve_key(hardware, workload, Path(mapping) if mapping else None, options_key(solve))
    except (OSError, ValueError, AttributeError, yaml.YAMLError):
        check_solve_inputs(hardware, workload, mapping)  # names the file that cannot be read, and why
        raise
    if (hit := cache.load_groups(cache_dir, key)) is not None:
        logger.info("reusing the cached solve of %s on %s", workload, hardware)
        return hit
    check_solve_inputs(hardware, workload, mapping)
    reuse = GroupReuse(cache_dir, cache.context_key(hardware, options_key(solve)))
    groups = _solve(hardware, workload, output_path, mapping, solve, reuse)
    cache.store_groups(cache_dir, key, groups)
    return groups


def options_key(solve: SolveOptions) -> str:
    """The solve options that can change a schedule, as text (observers and report switches cannot); a fused solve
    adds the version of our mapping generator, which builds its mapping."""
    text = repr(replace(solve, instrumentation=None, artifacts=False, solver_log=False))
    return f"{text} fusion generator {GENERATOR_VERSION}" if STAGE_OPTION in solve.stage_options else text


def solve_groups(
    hardware: str | Path,
    workload: str | Path,
    output_path: str | Path,
    mapping: str | Path | None,
    solve: SolveOptions,
) -> list[GroupOccupancy]:
    """One Stream solve with the tracker on: every fused group's occupancy, in schedule order. The inputs are
    checked first (:mod:`stream_trapti.tracker.inputs`), so a bad one is named before Stream trips over it."""
    check_solve_inputs(hardware, workload, mapping)
    return _solve(hardware, workload, output_path, mapping, solve)


def _solve(
    hardware: str | Path,
    workload: str | Path,
    output_path: str | Path,
    mapping: str | Path | None,
    solve: SolveOptions,
    reuse: GroupReuse | None = None,
) -> list[GroupOccupancy]:
    """:func:`solve_groups` on inputs already checked; with ``reuse``, the groups its cache holds are not solved."""
    if STAGE_OPTION in solve.stage_options:
        check_registered()
    groups: list[GroupOccupancy] = []
    tracker = {"sink": groups, "reuse": reuse}
    instrumentation: dict[str, Any] = {**(solve.instrumentation or {}), ENTRY_POINT_NAME: tracker}
    solve = replace(solve, instrumentation=instrumentation)
    try:
        estimate = evaluate_mapping(
            str(hardware), str(workload), str(output_path), str(mapping) if mapping else None, solve
        )
    except AllGroupsReused:
        return reuse.merge([])
    except SolveError as error:
        # Raised by our mapping generator inside Stream's pipeline, which does not know the files.
        raise type(error)(f"{workload} on {hardware}: {error}") from error
    except InfeasibleAllocationError as error:
        if STAGE_OPTION in solve.stage_options:
            # A fused scope's token tiles are the generator's guess from what Stream's capacity screen pins; the
            # allocation has the last word: cut the tokens one step finer (the generator stops when none is left).
            retry = TokenRetry.after(solve.stage_options.get(FINER_OPTION), explain(error))
            logger.info("Stream's allocation rejects the fused mapping (%s); cutting its tokens finer", retry.rejected)
            finer = replace(solve, stage_options={**solve.stage_options, FINER_OPTION: retry})
            return _solve(hardware, workload, output_path, mapping, finer, reuse)
        raise SolveError(
            f"{workload} does not fit on {hardware}: {explain(error)}. Give the named memory more capacity in the "
            "hardware YAML, or tile the workload finer (a mapping's intra_core_tiling)."
        ) from error
    except AssertionError as error:
        # Stream 2.1.1 checks a fixed mapping against the workload with asserts (fixed_mapping_generation.py).
        if mapping is None or not _raised_in(error, "fixed_mapping_generation.py"):
            raise
        raise InputFileError(f"mapping YAML {mapping} does not fit workload {workload}: {error}") from error
    if not groups or len(groups) != len(estimate.group_cycles):
        raise StreamContractError(
            f"the occupancy tracker recorded {len(groups)} of {len(estimate.group_cycles)} fused groups: is the "
            "stream-trapti package installed (its 'stream.instrumentation' entry point registered)?"
        )
    if sum(g.cycles for g in groups) != round(estimate.cycles):
        recorded = sum(g.cycles for g in groups)
        raise StreamContractError(f"the recorded groups take {recorded} cycles, Stream {estimate.cycles}")
    return groups if reuse is None else reuse.merge(groups)


def _raised_in(error: BaseException, filename: str) -> bool:
    """Whether ``error`` was raised in a module file named ``filename``."""
    frames = traceback.extract_tb(error.__traceback__)
    return bool(frames) and Path(frames[-1].filename).name == filename
