"""The occupancy tracker as a Stream instrumentation plugin (entry-point group ``stream.instrumentation``).

Turn it on for any solve with ``SolveOptions(instrumentation={"trapti_occupancy": {...}})``. It inserts one stage
after Stream's ``AllocationStage``; that stage lets every group's pipeline run unchanged and, on the way back,
reduces the group's solved allocation and memory accesses to a :class:`~stream_trapti.tracker.group.GroupOccupancy`.
It reads the solve and never writes to it, so cycles and energy are the same with and without it. A stage right
before ``AllocationStage`` names the tensors of an allocation Stream rejects without naming them
(:mod:`stream_trapti.tracker.infeasibility`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from stream.stages.allocation.steady_state_allocation import AllocationStage
from stream.stages.generation.fusion_group_iteration import FusionGroupIterationStage
from stream.stages.stage import Stage, StageCallable

from stream_trapti.tracker.compose import compose
from stream_trapti.tracker.group import Classifier, GroupOccupancy, record_group
from stream_trapti.tracker.group_reuse import GroupReuse
from stream_trapti.tracker.infeasibility import AllocationDiagnosisStage

logger = logging.getLogger(__name__)

ENTRY_POINT_NAME = "trapti_occupancy"


class OccupancyTracker:
    """Records the occupancy of every fused group of one solve.

    ``sink`` (a list) receives each group's :class:`GroupOccupancy` as it is solved; ``output`` names a ``.npz``
    the composed :class:`~stream_trapti.trace.OccupancyTrace` is written to when the solve completes; ``classify``
    maps a tensor name to its class (default: the naming of :mod:`stream_trapti.workloads`); ``window`` is the
    access-statistics window in cycles; ``reuse`` takes the groups its cache holds out of the solve
    (:mod:`stream_trapti.tracker.group_reuse`), so ``sink`` receives only the groups Stream solved.
    """

    def __init__(
        self,
        run_name: str = "",
        sink: list[GroupOccupancy] | None = None,
        output: str | Path | None = None,
        classify: Classifier | None = None,
        window: int | None = None,
        reuse: GroupReuse | None = None,
    ) -> None:
        self.run_name = run_name
        self.groups: list[GroupOccupancy] = sink if sink is not None else []
        self.output = Path(output) if output is not None else None
        self.classify = classify or _default_classifier()
        self.window = window
        self.reuse = reuse

    def instrument(self, stages: list[StageCallable]) -> list[StageCallable]:
        """The stage list with the diagnosis stage right before ``AllocationStage`` and the capture stage right after
        it (and, with ``reuse``, the reuse stage right before ``FusionGroupIterationStage``)."""
        if AllocationStage not in stages:
            raise ValueError("the occupancy tracker needs Stream's AllocationStage in the pipeline")
        if self.reuse is not None:
            at = stages.index(FusionGroupIterationStage)
            stages = [*stages[:at], self.reuse.stage(), *stages[at:]]
        at = stages.index(AllocationStage) + 1
        # A subclass per tracker, not a partial: Stream checks a stage's declared contract on its class.
        bound = type(
            "OccupancyCaptureStage",
            (OccupancyCaptureStage,),
            {"record": staticmethod(self.groups.append), "classify": staticmethod(self.classify)},
        )
        return [*stages[: at - 1], AllocationDiagnosisStage, *stages[at - 1 : at], bound, *stages[at:]]

    def finish(self) -> None:
        """Write the composed trace, when an output was asked for."""
        if self.output is not None:
            compose(self.groups, window=self.window, metadata={"run": self.run_name}).save(self.output)

    def fail(self, reason: str) -> None:
        """Drop what was recorded: a trace of a solve that did not complete would not add up to its cycles."""
        logger.info("occupancy tracker: solve %r failed (%s); no trace written", self.run_name, reason)
        self.groups.clear()


def _default_classifier() -> Classifier:
    # Keeps plugin discovery light.
    from stream_trapti.workloads.tensors import classify_tensor

    return lambda name: classify_tensor(name).value


class OccupancyCaptureStage(Stage):
    """Runs the rest of a group's pipeline, then records the group's occupancy from what it yields."""

    reads = ("allocation",)
    optional_reads = ("group_index",)
    result_reads = ("allocation", "memory_accesses", "group_index")

    record: Callable[[GroupOccupancy], None]
    classify: Classifier

    def run(self):
        sub_stage = self.list_of_callables[0](self.list_of_callables[1:], self.ctx)
        for ctx in sub_stage.run():
            allocation = ctx.get("allocation")
            nodes = "+".join(n.name for n in allocation.problem.source_workload.get_computation_nodes())
            self.record(
                record_group(
                    nodes or f"group_{ctx.get('group_index')}", allocation, ctx.get("memory_accesses"), self.classify
                )
            )
            yield ctx
