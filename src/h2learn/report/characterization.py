"""The characterization's table and plot: densities of every layer across training.

Reads the summary :func:`h2learn.workload.characterize.characterize` writes
(``characterization.json``) and renders it as ``characterization.md`` and
``densities.png`` (one panel per density, one line per layer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from h2learn.report.plots import plt, save_figure
from h2learn.workload.characterize import DENSITY_FIELDS, density_series

PLOTTED_FIELDS = ("input", "mask", "du_psum")


def markdown_table(summary: Mapping[str, Any]) -> str:
    """One row per recorded epoch and layer, one column per density."""
    lines = [
        f"Densities of {summary['model']} across training on {summary['dataset']} "
        f"(fixed batch of {summary['trace_batch']} training samples; epoch 0 is the fresh "
        "network).",
        "",
        "| epoch | test acc. | layer | " + " | ".join(DENSITY_FIELDS) + " |",
        "|---|---|---|" + "---|" * len(DENSITY_FIELDS),
    ]
    for row in summary["epochs"]:
        accuracy = "-" if row["test_accuracy"] is None else f"{row['test_accuracy']:.2%}"
        for layer in row["layers"]:
            cells = [
                "-" if layer.get(name) is None else f"{layer[name]:.3f}" for name in DENSITY_FIELDS
            ]
            lines.append(
                f"| {row['epoch']} | {accuracy} | {layer['layer']} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines) + "\n"


def plot_densities(
    summary: Mapping[str, Any], path: Path, fields: Sequence[str] = PLOTTED_FIELDS
) -> Path:
    """One panel per density field, one line per layer, over the recorded epochs."""
    epochs = [row["epoch"] for row in summary["epochs"]]
    fig, axes = plt.subplots(1, len(fields), figsize=(4 * len(fields), 3.4), squeeze=False)
    for ax, name in zip(axes[0], fields, strict=True):
        for layer, values in density_series(summary, name).items():
            ax.plot(epochs[-len(values) :], values, marker="o", markersize=3, label=layer)
        ax.set_title(name)
        ax.set_xlabel("epoch")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("density")
    axes[0][-1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{summary['model']} on {summary['dataset']}: densities across training")
    return save_figure(fig, path)


def write_characterization(summary: Mapping[str, Any], out_dir: Path) -> dict[str, Path]:
    """Write ``characterization.md`` and ``densities.png`` into ``out_dir``."""
    out_dir = Path(out_dir)
    table = out_dir / "characterization.md"
    table.write_text(f"# Densities across training\n\n{markdown_table(summary)}")
    return {"table": table, "plot": plot_densities(summary, out_dir / "densities.png")}
