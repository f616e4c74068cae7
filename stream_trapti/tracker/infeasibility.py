"""Which tensors a rejected allocation holds, so a mapping that does not fit says what is too big.

Stream's diagnosis of an infeasible allocation (``stream/opt/allocation/constraint_optimization/diagnosis.py``)
names the tensors only where a memory's demand, each tensor at its least residency, is over its capacity. A mapping
can fail short of that: Stream's reuse rules may hold a tensor longer than its least (a fused intermediate across
every loop it does not change on), and with the OR-Tools backend, which cannot compute an IIS, the diagnosis then
reads "the conflict is structural" and names nothing. For that case :class:`AllocationDiagnosisStage`, right before
Stream's ``AllocationStage``, sums what each memory must hold under those rules
(:func:`~stream_trapti.tracker.stream_internals.forced_residency`) and names the fullest memory's largest tensors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stream.ir.infeasibility import InfeasibilityReportIR, InfeasibleAllocationError
from stream.stages.stage import Stage

from stream_trapti.tracker import stream_internals as internals

if TYPE_CHECKING:
    from stream.allocation.problem import AllocationProblem

NAMED = 3
"""How many of the largest tensors a one-line diagnosis names."""


@dataclass(frozen=True)
class MemoryDemand:
    """What one memory must hold under a rejected allocation: the bytes each tensor that may live there holds at
    least (``terms``, largest first), their sum (``demand``) and the memory's bytes for tensors (``bound``)."""

    memory: str
    demand: float
    bound: float
    terms: tuple[tuple[str, float], ...]

    def largest(self) -> str:
        """The largest tensors with their bytes, as ``name N B, ...``."""
        return ", ".join(f"{name} {value:,.0f} B" for name, value in self.terms[:NAMED])


class DiagnosedInfeasibility(InfeasibleAllocationError):
    """Stream's :class:`InfeasibleAllocationError` with the demand its report leaves out."""

    def __init__(self, report: InfeasibilityReportIR, demand: MemoryDemand) -> None:
        super().__init__(report)
        self.demand = demand


def explain(error: InfeasibleAllocationError) -> str:
    """Stream's one-line diagnosis of ``error``, with the largest tensors of the memory it names, or of the fullest
    memory where it names none."""
    if isinstance(error, DiagnosedInfeasibility):
        demand = error.demand
        return (
            f"{error} Held as long as Stream's reuse rules force them, the tensors that may live on {demand.memory} "
            f"need {demand.demand:,.0f} of its {demand.bound:,.0f} B, largest {demand.largest()}"
        )
    if (demand := reported_demand(error.report)) is not None:
        return f"{error}; largest {demand.largest()}"
    return str(error)


def reported_demand(report: InfeasibilityReportIR) -> MemoryDemand | None:
    """The memory-capacity demand Stream's report quantifies, None where it quantifies none."""
    for resource in report.resources:
        unmet = resource.unmet
        if unmet is not None and unmet.unit == "bytes":
            terms = tuple((term.label, term.value) for term in unmet.terms)
            return MemoryDemand(resource.resource.label, unmet.demand_value, unmet.bound_value, terms)
    return None


class AllocationDiagnosisStage(Stage):
    """Runs Stream's ``AllocationStage`` and the stages after it; an allocation rejected with no limit quantified
    (no memory, object FIFO or descriptor budget named over its bound) is raised again as a
    :class:`DiagnosedInfeasibility` naming the fullest memory's largest tensors."""

    reads = ("allocation_problem", "families")

    def run(self):
        sub_stage = self.list_of_callables[0](self.list_of_callables[1:], self.ctx)
        try:
            yield from sub_stage.run()
        except InfeasibleAllocationError as error:
            if isinstance(error, DiagnosedInfeasibility) or any(r.unmet for r in error.report.resources):
                raise  # Stream's diagnosis quantifies what is over its limit
            ctx = self.ctx
            families = (family.name for family in ctx.get("families").families)
            demand = fullest_memory(ctx.get("allocation_problem"), families)
            if demand is None:
                raise
            raise DiagnosedInfeasibility(error.report, demand) from error


def fullest_memory(problem: AllocationProblem, families: Iterable[str]) -> MemoryDemand | None:
    """The memory of ``problem`` that its tensors, held as long as Stream's reuse rules of ``families`` force them,
    fill fullest against its capacity (None: no memory holds any)."""
    demands = internals.forced_residency(problem, families)
    if not demands:
        return None
    core_id, (bound, terms) = max(demands.items(), key=lambda item: sum(item[1][1].values()) / item[1][0])
    ranked = tuple(sorted(terms.items(), key=lambda item: (-item[1], item[0])))
    return MemoryDemand(f"Core {core_id}", sum(terms.values()), bound, ranked)
