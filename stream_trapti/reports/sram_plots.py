"""PNG plots of a Stage II exploration: bank on/off heatmap, energy breakdown, and the energy-area Pareto scatter.

Figures are drawn on :class:`matplotlib.figure.Figure` with the Agg canvas directly: no pyplot, so no global state
and no backend to choose at import.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from stream_trapti.sram.explore import ConfigResult, ExplorationResult

_PARTS: tuple[tuple[str, str], ...] = (
    ("dynamic_pj", "dynamic"),
    ("leakage_on_pj", "leakage (powered)"),
    ("gated_residual_pj", "residual (gated)"),
    ("network_pj", "leakage (network between banks)"),
    ("wake_pj", "wake-up"),
    ("stall_pj", "wake-up stalls"),
)
_MARKERS = "os^vDP*Xph<>"
"""Scatter markers, one per policy in sweep order (cycled), because policies often coincide (immediate and offline
optimal when wake-ups are cheap) and colour alone would hide one under the other."""


def write_plots(result: ExplorationResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``bank_heatmap.png`` (if the result has a heatmap), ``energy_breakdown.png`` and ``pareto.png`` into
    ``out_dir``; returns their paths by name."""
    out_dir = Path(out_dir)
    figures = {"breakdown": (_breakdown(result), "energy_breakdown.png"), "pareto": (_pareto(result), "pareto.png")}
    if result.heatmap is not None:
        figures["heatmap"] = (_heatmap(result), "bank_heatmap.png")
    paths = {}
    for name, (figure, filename) in figures.items():
        FigureCanvasAgg(figure)  # attaches itself to the figure, so savefig renders with Agg
        figure.savefig(out_dir / filename, format="png", dpi=120)
        paths[name] = out_dir / filename
    return paths


def _heatmap(result: ExplorationResult) -> Figure:
    heatmap = result.heatmap
    figure = Figure(figsize=(10, 6), layout="tight")
    axes = figure.subplots(2, 1, sharex=True)
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
        axis.yaxis.set_major_locator(MaxNLocator(integer=True))  # banks are whole
        axis.set_title(title, fontsize=10)
        figure.colorbar(image, ax=axis, label="fraction of bin")
    axes[1].set_xlabel("cycle")
    figure.suptitle(f"{result.memory}: {heatmap.label}", fontsize=11)
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
    for policy in result.spec.policies:
        candidates = [c for c in same if c.policy == policy and c not in chosen]
        if candidates:
            chosen.append(min(candidates, key=lambda c: c.total_pj))
    return chosen


def _breakdown(result: ExplorationResult) -> Figure:
    configs = _breakdown_configs(result)
    figure = Figure(figsize=(max(6, 1.6 * len(configs) + 2), 5), layout="tight")
    axis = figure.subplots()
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
    return figure


def _pareto(result: ExplorationResult) -> Figure:
    """Energy against area, one panel per flavour: flavours differ in leakage by orders of magnitude, so on one
    linear axis the low-leakage points would all sit on zero."""
    flavours = list(dict.fromkeys(c.flavour for c in result.configs))
    figure = Figure(figsize=(6.5 * len(flavours), 5), layout="tight")
    axes = figure.subplots(1, len(flavours), squeeze=False)[0]
    energy = np.array([c.total_pj for c in result.configs]) * 1e-6
    area = np.array([c.area_mm2 for c in result.configs])
    policy = np.array([c.policy for c in result.configs])
    flavour = np.array([c.flavour for c in result.configs])
    on_front = np.zeros(len(result.configs), dtype=bool)
    on_front[list(result.pareto)] = True
    for axis, name in zip(axes, flavours, strict=True):
        for k, policy_name in enumerate(result.spec.policies):
            mask = (flavour == name) & (policy == policy_name)
            if mask.any():
                axis.scatter(
                    area[mask],
                    energy[mask],
                    s=18,
                    alpha=0.6,
                    marker=_MARKERS[k % len(_MARKERS)],
                    color=f"C{k % 10}",
                    label=policy_name,
                )
        front = on_front & (flavour == name)
        axis.scatter(area[front], energy[front], s=40, facecolors="none", edgecolors="black", label="Pareto front")
        axis.set_xlabel("area (mm²)")
        axis.set_ylabel("SRAM energy (µJ)")
        axis.set_title(f"{result.memory}, {name} cells", fontsize=10)
        axis.legend(fontsize=8)
    figure.suptitle("energy vs area (the front is over all flavours, and over the latency penalty too)", fontsize=10)
    return figure
