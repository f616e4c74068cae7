"""An exploration's files: every configuration as CSV, the summary with the Pareto front and best picks as JSON, and
the plots."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from stream_trapti.atomic import atomic_directory
from stream_trapti.reports.sram_plots import write_plots
from stream_trapti.sram.explore import ConfigResult, ExplorationResult


def write_exploration_outputs(
    result: ExplorationResult, out_dir: str | Path, inputs: Iterable[str | Path] = ()
) -> dict[str, Path]:
    """Write ``configs.csv``, ``exploration.json`` and the PNG plots into ``out_dir``, which is replaced whole and
    only once everything is written (and never when it holds one of the run's ``inputs``: see
    :func:`stream_trapti.atomic.atomic_directory`). Returns the written paths by name."""
    out_dir = Path(out_dir)
    with atomic_directory(out_dir, inputs) as staging:
        (staging / "configs.csv").write_text(configs_csv(result))
        (staging / "exploration.json").write_text(json.dumps(exploration_summary(result), indent=1))
        plots = write_plots(result, staging)
    names = {"csv": "configs.csv", "json": "exploration.json"} | {name: path.name for name, path in plots.items()}
    return {name: out_dir / filename for name, filename in names.items()}


def configs_csv(result: ExplorationResult) -> str:
    """One row per evaluated configuration, every :class:`ConfigResult` field a column (None as empty)."""
    names = [f.name for f in fields(ConfigResult)]
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(names)
    for config in result.configs:
        writer.writerow(["" if getattr(config, n) is None else getattr(config, n) for n in names])
    return text.getvalue()


def exploration_summary(result: ExplorationResult) -> dict[str, Any]:
    """The exploration as JSON: the memory and its accesses, the sweep, Stream's own estimate, the best configuration
    per objective, the Pareto front, what was skipped or rejected, and every configuration."""
    return {
        "memory": result.memory,
        "cycles": result.cycles,
        "peak_bytes": result.peak_bytes,
        "port_bits": result.port_bits,
        "accesses": asdict(result.accesses),
        "spec": asdict(result.spec),
        "stream_estimate_pj": result.stream_estimate_pj,
        "best": {objective: asdict(result.configs[i]) | {"index": i} for objective, i in result.best.items()},
        "pareto": list(result.pareto),
        "skipped": [{"capacity_bytes": c, "bank_count": b, "reason": r} for c, b, r in result.skipped],
        "rejected_by_latency": result.rejected,
        "configs": [asdict(c) for c in result.configs],
    }
