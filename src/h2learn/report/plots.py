"""Matplotlib figures of simulation results, written as PNG files (headless backend)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

ENGINE_COLOURS = {
    "forward_engine": "#1f77b4",
    "backward_engine": "#d62728",
    "update_engine": "#2ca02c",
    "elementwise": "#9467bd",
}


def save_figure(fig, path: Path) -> Path:
    """Lay out ``fig``, write it to ``path`` as PNG (folders made as needed) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def stacked_breakdown(
    breakdowns: Mapping[str, Mapping[str, float]], title: str, unit: str, path: Path
) -> Path:
    """One stacked bar per benchmark, split into components (energy or area)."""
    names = list(breakdowns)
    parts = sorted({part for values in breakdowns.values() for part in values})
    fig, ax = plt.subplots(figsize=(8, 4))
    bottom = [0.0] * len(names)
    cmap = plt.get_cmap("tab20")
    for index, part in enumerate(parts):
        values = [breakdowns[name].get(part, 0.0) for name in names]
        ax.bar(names, values, bottom=bottom, label=part, color=cmap(index % 20))
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.tick_params(axis="x", rotation=20)
    return save_figure(fig, path)


def timeline(entries: Sequence[Mapping[str, Any]], title: str, path: Path) -> Path:
    """Gantt chart of engine tasks: one row per engine, coloured by engine."""
    engines = [e for e in ENGINE_COLOURS if any(t["engine"] == e for t in entries)]
    fig, ax = plt.subplots(figsize=(9, 3))
    for row, engine in enumerate(engines):
        spans = [
            (t["start_cycle"], t["end_cycle"] - t["start_cycle"])
            for t in entries
            if t["engine"] == engine
        ]
        ax.broken_barh(spans, (row - 0.4, 0.8), color=ENGINE_COLOURS[engine], alpha=0.85)
    ax.set_yticks(range(len(engines)), [e.replace("_", " ") for e in engines])
    ax.set_xlabel("cycle")
    ax.set_title(title)
    return save_figure(fig, path)


def bars(values: Mapping[str, float], title: str, ylabel: str, path: Path) -> Path:
    """A simple bar chart (ablations)."""
    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.bar(list(values), list(values.values()), color="#4c72b0")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=25)
    return save_figure(fig, path)


def lines(
    x: Sequence[float],
    series: Mapping[str, Sequence[float]],
    title: str,
    xlabel: str,
    ylabel: str,
    path: Path,
) -> Path:
    """Several lines over a shared x axis (sensitivity sweeps)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, values in series.items():
        ax.plot(list(x), list(values), marker="o", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def waterfall(
    steps: Sequence[Mapping[str, Any]],
    ranges: Mapping[str, tuple[float, float]],
    title: str,
    path: Path,
) -> Path:
    """One panel per headline figure: each step's move from our default (log axis), the paper.

    ``steps`` are waterfall records (``name``, ``speedup``, ``energy_saving``,
    ``area_saving``; the first is the default, skipped steps are left out).
    A line runs from the default's value to each step's value; green marks a
    value inside the paper's range, which is shaded.
    """
    from matplotlib.ticker import FuncFormatter, NullFormatter

    shown = [step for step in steps if "skipped" not in step]
    names = [step["name"] for step in shown]
    fig, axes = plt.subplots(
        1, len(ranges), figsize=(4.2 * len(ranges), 0.4 * len(names) + 1.8), sharey=True
    )
    for ax, (metric, (low, high)) in zip(axes, ranges.items(), strict=True):
        values = [step[metric] for step in shown]
        start = values[0]
        for row, value in enumerate(values):
            inside = low <= round(value, 2) <= high
            colour = "#444444" if row == 0 else ("#2ca02c" if inside else "#4c72b0")
            ax.hlines(row, start, value, color=colour, lw=2)
            ax.plot([value], [row], "o", color=colour)
        ax.axvspan(low * 0.995, high * 1.005, color="#ff7f0e", alpha=0.3, label="paper")
        ax.axvline(start, color="#444444", ls="--", lw=0.8, label="our default")
        ax.set_xscale("log")
        span = [*values, low, high]
        ax.set_xlim(min(span) / 1.25, max(span) * 1.25)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}x"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_yticks(range(len(names)), names)
        ax.set_title(metric.replace("_", " ") + " vs V100")
        ax.grid(axis="x", alpha=0.3)
    axes[0].invert_yaxis()
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    return save_figure(fig, path)
