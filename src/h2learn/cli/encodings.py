"""``h2learn encodings``: train with each spike encoding, then cost the trained networks.

For every encoding (:mod:`h2learn.snn.encoding`) the study trains the
dataset's model on one schedule, records a trace of the trained network on
the first training batch with that encoding, and reports test accuracy,
per-layer densities (:mod:`h2learn.workload.stats`), and the cost of one
training iteration on H2Learn (:func:`h2learn.arch.simulate.simulate`) and on
the V100 model (:func:`h2learn.baselines.v100_training_step`).  Results go to
``--out``: ``encodings.json``, ``encodings.md`` (the table) and
``encodings.png`` (the plot), plus one training run per encoding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from h2learn.cli.app import app, console, out
from h2learn.errors import H2LearnError

SHORT_SCHEDULE: dict[str, dict[str, Any]] = {
    "digits": {"epochs": 30},
    "fashion-mnist": {"epochs": 2, "limit_train": 10000, "limit_test": 2000},
}
"""The documented default schedule per dataset (``--full`` trains on everything
for the TrainConfig default of 30 epochs); other datasets: 3 epochs, all samples."""


def schedule(dataset: str, full: bool, **given: int | None) -> dict[str, Any]:
    """Training settings of the study: the short schedule, ``--full``, then explicit options."""
    from h2learn.snn.data import dataset_info

    info = dataset_info(dataset)
    if info.kind != "image":
        raise H2LearnError(
            f"{info.name} is an event dataset (its frames are events already); "
            "the encodings study takes an image dataset such as digits or fashion-mnist"
        )
    name = info.name
    chosen: dict[str, Any] = {} if full else dict(SHORT_SCHEDULE.get(name, {"epochs": 3}))
    chosen.update({key: value for key, value in given.items() if value is not None})
    return {"dataset": name, **chosen}


def study_row(settings: dict[str, Any], encoding: str, run_dir: Path) -> dict[str, Any]:
    """Train with ``encoding``, then trace, densities and costs of the trained network."""
    from h2learn.arch.simulate import simulate
    from h2learn.baselines import v100_training_step
    from h2learn.cli.training import run_with_progress
    from h2learn.snn.train import CHECKPOINT_NAME, TrainConfig
    from h2learn.workload.record import record_from_dataset
    from h2learn.workload.stats import trace_stats

    config = TrainConfig(**settings, encoding=encoding)
    resume = (run_dir / CHECKPOINT_NAME).exists()
    metrics = run_with_progress(config, run_dir, resume)
    trace = record_from_dataset(
        checkpoint=run_dir / CHECKPOINT_NAME, batch_size=config.batch_size, seed=config.seed
    )
    stats = trace_stats(trace)
    sim = simulate(trace)
    gpu = v100_training_step(trace.spec)
    return {
        "encoding": encoding,
        "test_accuracy": metrics["test_accuracy"],
        "input_kind": trace.spec.input_kind,
        "densities": {
            layer["layer"]: {
                k: layer[k] for k in ("input", "spikes", "mask", "du_psum") if k in layer
            }
            for layer in stats["layers"]
        },
        "h2learn_seconds": sim.seconds,
        "h2learn_energy_j": sim.energy_j,
        "v100_seconds": gpu.seconds,
        "v100_energy_j": gpu.energy_j,
        "speedup_vs_v100": gpu.seconds / sim.seconds,
        "energy_saving_vs_v100": gpu.energy_j / sim.energy_j,
        "train_seconds": metrics["train_seconds"],
        "command": command_line(settings, encoding),
    }


def _densities(layer: dict[str, Any]) -> dict[str, float]:
    return {key: layer[key] for key in ("input", "spikes", "mask", "du_psum") if key in layer}


def command_line(settings: dict[str, Any], encoding: str) -> str:
    """The command that reproduces one row."""
    parts = [f"h2learn encodings --dataset {settings['dataset']} --only {encoding}"]
    for key in ("epochs", "limit_train", "limit_test"):
        if key in settings:
            parts.append(f"--{key.replace('_', '-')} {settings[key]}")
    return " ".join(parts) + " --out DIR"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The study as a Markdown table: accuracy, densities, costs and each row's command."""
    lines = [
        "| encoding | test acc. | input density (layer 1) | spike density per layer | "
        "mask density per layer | H2Learn time (us) | H2Learn energy (uJ) | V100 time (us) | "
        "V100 energy (uJ) | speedup vs V100 | energy saving vs V100 | command |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        layers = list(row["densities"].values())
        spikes = " / ".join(f"{d['spikes']:.3f}" for d in layers if "spikes" in d)
        masks = " / ".join(f"{d['mask']:.3f}" for d in layers if "mask" in d)
        lines.append(
            f"| {row['encoding']} | {row['test_accuracy']:.2%} | {layers[0]['input']:.3f} | "
            f"{spikes} | {masks} | {row['h2learn_seconds'] * 1e6:.2f} | "
            f"{row['h2learn_energy_j'] * 1e6:.2f} | {row['v100_seconds'] * 1e6:.1f} | "
            f"{row['v100_energy_j'] * 1e6:.0f} | {row['speedup_vs_v100']:.1f}x | "
            f"{row['energy_saving_vs_v100']:.0f}x | `{row['command']}` |"
        )
    return "\n".join(lines) + "\n"


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Accuracy against H2Learn energy per iteration, one point per encoding."""
    from h2learn.report.plots import plt, save_figure

    fig, ax = plt.subplots(figsize=(5, 3.5))
    for row in rows:
        energy, accuracy = row["h2learn_energy_j"] * 1e6, row["test_accuracy"] * 100
        ax.scatter(energy, accuracy)
        ax.annotate(row["encoding"], (energy, accuracy), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("H2Learn energy per training iteration (uJ)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    save_figure(fig, path)


@app.command()
def encodings(
    dataset: str = typer.Option("digits", help="image dataset (digits, fashion-mnist, ...)"),
    out_dir: Path = typer.Option(Path("runs/encodings"), "--out", help="output folder"),
    only: str | None = typer.Option(None, help="comma-separated encodings (default: all)"),
    epochs: int | None = typer.Option(None, help="override the schedule's epochs"),
    limit_train: int | None = typer.Option(None, help="override the training subset"),
    limit_test: int | None = typer.Option(None, help="override the test subset"),
    full: bool = typer.Option(False, help="full schedule: all samples, 30 epochs"),
    data_dir: str | None = typer.Option(None, help="folder holding the dataset files"),
) -> None:
    """Accuracy, densities and H2Learn/V100 cost of each spike encoding (table and plot)."""
    from h2learn.snn.encoding import ENCODINGS, encoding_info

    names = ENCODINGS if only is None else tuple(encoding_info(n).name for n in only.split(","))
    settings = schedule(
        dataset, full, epochs=epochs, limit_train=limit_train, limit_test=limit_test
    )
    if data_dir is not None:
        settings["data_dir"] = data_dir
    rows = []
    for name in names:
        console.print(f"encoding {name}: training {settings}")
        rows.append(study_row(settings, name, out_dir / name))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "encodings.json").write_text(
        json.dumps({"settings": settings, "rows": rows}, indent=1)
    )
    table = markdown_table(rows)
    (out_dir / "encodings.md").write_text(table)
    plot(rows, out_dir / "encodings.png", f"{settings['dataset']}: spike encodings")
    print(table, end="")
    out.print(f"results in {out_dir}")
