"""Depth-first (fused) schedules as a choice of the run: Stream's mapping generator seam, taken by our generator.

A fusion scope says how much of a decoder layer Stream schedules as one fused group, whose intermediate tensors stay
on chip, tile by tile:

* ``committed``: today's mappings: the fixed mapping YAML given with an ONNX workload, else Stream's own generic
  mapping generator (one group per operator for the presets);
* ``operator``: our generator's operator groups (:mod:`stream_trapti.mappings`: each contraction with its
  element-wise neighbours, the attention core together);
* ``attention``: the attention sub-block (its norm through the residual add after the output projection) is one
  group, the rest as ``operator``;
* ``layer``: each decoder layer is one group.

The generator is a Stream plugin (entry-point group ``stream.mapping_generators``, used whenever a solve is given no
mapping YAML). It claims every accelerator but steps in only when the solve's ``stage_options`` name a scope under
:data:`STAGE_OPTION`; otherwise it runs Stream's own generic generator unchanged. It sets each fused group's
sub-workload and mapping itself, cut where our groups end: Stream's fixed-mapping stage would replace the mapping's
groups by its own heuristic cuts whenever they are as many (``FixedMappingGenerationStage.run``) and assign the
tilings to the wrong groups.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any, Literal, get_args

from stream.hardware.architecture.accelerator import Accelerator
from stream.parser.mapping_factory import MappingFactory
from stream.plugins import load_group
from stream.stages.context import StageContext
from stream.stages.generation.mapping_generators import GENERIC_MAPPING, MAPPING_GENERATORS_GROUP
from stream.stages.stage import Stage, StageCallable
from stream.workload.node import InEdge, OutEdge
from stream.workload.workload import Workload

from stream_trapti.errors import StreamContractError

logger = logging.getLogger(__name__)

Fusion = Literal["committed", "operator", "attention", "layer"]
FUSIONS: tuple[str, ...] = get_args(Fusion)
"""The scopes our generator builds (``committed`` is whatever mapping the run had before)."""

STAGE_OPTION = "trapti_fusion"
"""The ``SolveOptions.stage_options`` key naming the fusion scope our generator builds."""

FINER_OPTION = "trapti_fusion_finer"
"""The ``stage_options`` key of a retry: what Stream's allocation said of the last token tiling, and how many token
tiles finer than its first choice the generator cuts now (:class:`stream_trapti.mappings.TokenRetry`)."""

ENTRY_POINT_NAME = "trapti_fusion"

GENERATOR_VERSION = 2
"""Bump when the generator builds other groups or tilings for the same workload: cached fused solves are keyed on it
(:func:`stream_trapti.tracker.solve.options_key`), as the mapping it builds is not an input file of the solve."""


def scope_stage_options(fusion: Fusion, committed: dict[str, Any]) -> dict[str, Any]:
    """The ``stage_options`` of a solve with ``fusion``: ``committed`` (the run's own) for ``committed``, else the
    scope for our generator (Stream's generic generator's options do not apply to it)."""
    return dict(committed) if fusion == "committed" else {STAGE_OPTION: fusion}


class TraptiMappingGenerator:
    """Stream's ``stream.mapping_generators`` plugin: fused groups of a chosen scope (see the module doc)."""

    name = ENTRY_POINT_NAME
    priority = 1  # above Stream's generic generator (0), which it runs itself when no scope is asked for

    def claims(self, accelerator: Accelerator) -> bool:
        # The scope asked for, not the hardware, decides whether it steps in (FusedMappingStage).
        return True

    def stages(self) -> list[StageCallable]:
        return [FusedMappingStage]


class FusedMappingStage(Stage):
    """Builds the fused groups of the scope the context names (:data:`STAGE_OPTION`), each group's sub-workload and
    mapping; without a scope, Stream's generic generator's stages run instead, as if this plugin were not installed."""

    reads = ("accelerator", "workload")
    optional_reads = (STAGE_OPTION, FINER_OPTION)
    writes = ("sub_workloads", "sub_mappings")

    def run(self) -> Iterator[StageContext]:
        scope = self.ctx.get(STAGE_OPTION, None)
        if scope is None:
            generic = GENERIC_MAPPING.stages()
            yield from generic[0]([*generic[1:], *self.list_of_callables], self.ctx).run()
            return
        # Imported here, not at the top: the generator's module imports this one (for the scope names).
        from stream_trapti.mappings import generate_mapping

        accelerator: Accelerator = self.ctx.get("accelerator")
        workload: Workload = self.ctx.get("workload")
        groups, mapping = generate_mapping(workload, accelerator, scope, self.ctx.get(FINER_OPTION, None))
        sub_workloads = split_groups(workload, groups)
        sub_mappings = [
            MappingFactory(
                {"layers": mapping["layers"], "fused_groups": [data], "runtime_args": _boundary_args(sub)},
                sub,
                accelerator,
            ).create()
            for sub, data in zip(sub_workloads, mapping["fused_groups"], strict=True)
        ]
        logger.info("fusion %s: %d fused groups", scope, len(sub_workloads))
        self.ctx.set(sub_workloads=sub_workloads, sub_mappings=sub_mappings)
        yield from self.list_of_callables[0](self.list_of_callables[1:], self.ctx).run()


def split_groups(workload: Workload, groups: list[list[str]]) -> list[Workload]:
    """``workload`` cut into one sub-workload per group of node names (contiguous runs of its dataflow order, that
    hold no FusionEdge), each group's own nodes in it and no other's."""
    subs = workload.split_fusion_groups(cut_points=[group[-1] for group in groups[:-1]])
    found = [[cn.name for cn in sub.get_computation_nodes()] for sub in subs]
    if found != groups:
        raise StreamContractError(f"Stream cut the workload into groups {found}, not the generator's {groups}")
    return subs


def _boundary_args(sub: Workload) -> dict[str, Any]:
    """Runtime arguments of a group: its boundary edges, each in Stream's default (identity) layout, as Stream's
    fixed-mapping stage gives them."""
    return {node.name: {} for node in sub.nodes if isinstance(node, InEdge | OutEdge)}


def check_registered() -> None:
    """Raise a :class:`StreamContractError` unless Stream finds this generator under its entry point: a fused solve
    would otherwise run Stream's generic generator and report a schedule nobody asked for."""
    if not any(isinstance(p.obj, TraptiMappingGenerator) for p in load_group(MAPPING_GENERATORS_GROUP)):
        raise StreamContractError(
            f"stream-trapti's mapping generator is not registered under Stream's {MAPPING_GENERATORS_GROUP!r} entry "
            "point: reinstall the package (pip install -e .) so a fused schedule is the one solved"
        )


GENERATOR = TraptiMappingGenerator()
