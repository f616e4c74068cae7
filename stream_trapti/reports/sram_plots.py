"""PNG plots of a Stage II exploration: bank on/off heatmap, energy breakdown, and the energy-area Pareto scatter."""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, never a display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from stream_trapti.atomic import atomic_write  # noqa: E402
from stream_trapti.sram.explore import ConfigResult, ExplorationResult  # noqa: E402
from stream_trapti.sram.policies import POLICIES  # noqa: E402

_PARTS: tuple[tuple[str, str], ...] = (
    ("dynamic_pj", "dynamic"),
    ("leakage_on_pj", "leakage (powered)"),
    ("gated_residual_pj", "residual (gated)"),
    ("network_pj", "leakage (network between banks)"),
    ("wake_pj", "wake-up"),
    ("stall_pj", "wake-up stalls"),
)


def write_plots(result: ExplorationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``bank_heatmap.png`` (if the result has a heatmap), ``energy_breakdown.png`` and ``pareto.png``."""
    out_dir = Path(out_dir)
    figures = {"breakdown": (_breakdown(result), "energy_breakdown.png"), "pareto": (_pareto(result), "pareto.png")}
    if result.heatmap is not None:
        figures["heatmap"] = (_heatmap(result), "bank_heatmap.png")
    paths = {}
    for name, (figure, filename) in figures.items():
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", dpi=120)
        plt.close(figure)
        paths[name] = atomic_write(out_dir / filename, buffer.getvalue())
    return paths


def _heatmap(result: ExplorationResult) -> plt.Figure:
    heatmap = result.heatmap
    figure, axes = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    extent = (heatmap.edges[0], heatmap.edges[-1], -0.5, heatmap.busy.shape[0] - 0.5)
    for axis, values, title in (
        (axes[0], heatmap.busy, "busy (holds data)"),
        (axes[1], heatmap.powered, "powered under the policy"),
    ):
        image = axis.imshow(
            values,
            aspect="auto",
            origin="lower",
            extent=extent,
            vmin=0,
            vmax=1,
            cmap="viridis",
            interpolation="nearest",
        )
        axis.set_ylabel("bank")
        axis.set_title(title, fontsize=10)
        figure.colorbar(image, ax=axis, label="fraction of bin")
    axes[1].set_xlabel("cycle")
    figure.suptitle(f"{result.memory}: {heatmap.label}", fontsize=11)
    figure.tight_layout()
    return figure


def _breakdown_configs(result: ExplorationResult) -> list[ConfigResult]:
    """The monolithic always-on SRAM and each policy's best, at the best configuration's capacity/flavour/mode."""
    best = result.configs[result.best["energy"]]
    same = [
        c
        for c in result.configs
        if (c.capacity_bytes, c.flavour, c.gating_mode) == (best.capacity_bytes, best.flavour, best.gating_mode)
    ]
    chosen = [c for c in same if c.bank_count == 1 and c.policy == "always_on"]
    for policy in POLICIES:
        candidates = [c for c in same if c.policy == policy and c not in chosen]
        if candidates:
            chosen.append(min(candidates, key=lambda c: c.total_pj))
    return chosen


def _breakdown(result: ExplorationResult) -> plt.Figure:
    configs = _breakdown_configs(result)
    figure, axis = plt.subplots(figsize=(max(6, 1.6 * len(configs) + 2), 5))
    x = np.arange(len(configs))
    bottom = np.zeros(len(configs))
    for attribute, label in _PARTS:
        values = np.array([getattr(c, attribute) for c in configs]) * 1e-6  # pJ -> µJ
        axis.bar(x, values, bottom=bottom, label=label)
        bottom += values
    if result.stream_estimate_pj is not None:
        axis.axhline(result.stream_estimate_pj * 1e-6, color="black", linestyle="--", label="Stream estimate")
    names = [
        f"{c.policy}\n{c.bank_count} bank{'s' if c.bank_count > 1 else ''}"
        + (f"\nτ={c.timeout_cycles}" if c.timeout_cycles is not None else "")
        for c in configs
    ]
    axis.set_xticks(x, names, fontsize=8)
    axis.set_ylabel("SRAM energy (µJ)")
    best = result.configs[result.best["energy"]]
    axis.set_title(f"{result.memory}: {best.capacity_bytes / 1024:g} KiB, {best.flavour}, {best.gating_mode}")
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _pareto(result: ExplorationResult) -> plt.Figure:
    figure, axis = plt.subplots(figsize=(7, 5))
    energy = np.array([c.total_pj for c in result.configs]) * 1e-6
    area = np.array([c.area_mm2 for c in result.configs])
    policy = np.array([c.policy for c in result.configs])
    # Distinct markers, because policies often coincide (immediate and offline optimal when wake-ups are cheap).
    for name, marker in zip(POLICIES, "os^v", strict=True):
        mask = policy == name
        if mask.any():
            axis.scatter(area[mask], energy[mask], s=18, alpha=0.6, marker=marker, label=name)
    front = np.array(result.pareto, dtype=np.int64)
    axis.scatter(area[front], energy[front], s=40, facecolors="none", edgecolors="black", label="Pareto front")
    axis.set_xlabel("area (mm²)")
    axis.set_ylabel("SRAM energy (µJ)")
    axis.set_title(f"{result.memory}: energy vs area (front also over latency penalty)", fontsize=10)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return figure
