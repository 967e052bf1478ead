"""``h2learn trace`` and ``h2learn stats``: record a training iteration and read its sparsity."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from h2learn.cli.app import app, console, out


@app.command()
def trace(
    model: str | None = typer.Option(None, help="zoo model (default: the dataset's)"),
    dataset: str = typer.Option("digits", help="dataset, or 'synthetic' for random inputs"),
    checkpoint: Path | None = typer.Option(None, help="record a trained model's iteration"),
    batch_size: int = typer.Option(16, help="samples in the recorded mini-batch"),
    time_steps: int | None = typer.Option(None, "--time-steps", "-T", help="time steps T"),
    seed: int = typer.Option(0, help="random seed (fresh models and synthetic data)"),
    data_dir: str | None = typer.Option(None, help="folder holding the dataset files"),
    encoding: str | None = typer.Option(
        None,
        help="input coding of images: direct, poisson, latency or delta "
        "(default: direct, or the checkpoint's)",
    ),
    engine_format: str | None = typer.Option(
        None,
        help="record the iteration in the engines' arithmetic in this format (float16, "
        "bfloat16, fixed<I>.<F>[:nearest|:floor|:stochastic]); default: PyTorch float, "
        "or the checkpoint's",
    ),
    out_file: Path = typer.Option(Path("runs/trace.h2t"), "--out", help="trace file to write"),
) -> None:
    """Record one training iteration (every layer and time step) to a trace file.

    --encoding turns the images into spikes as training does, and
    --engine-format records the iteration as the engines compute it.
    """
    from h2learn.errors import H2LearnError
    from h2learn.workload.record import SYNTHETIC, record_from_dataset

    if dataset == SYNTHETIC and (encoding is not None or engine_format is not None):
        raise H2LearnError(
            "--encoding and --engine-format need a real dataset; the synthetic "
            "pseudo-dataset feeds random inputs as they are"
        )
    with console.status("recording one training iteration"):
        recorded = record_from_dataset(
            model,
            dataset,
            checkpoint,
            batch_size,
            seed,
            data_dir,
            time_steps,
            encoding=encoding,
            engine_format=engine_format,
        )
    with console.status(f"writing {out_file}"):
        recorded.save(out_file)
    size_mb = out_file.stat().st_size / 2**20
    out.print(
        f"trace of {recorded.spec.name} (T={recorded.time_steps}, batch {recorded.batch_size}, "
        f"loss {recorded.meta['loss_value']:.4f}) written to {out_file} ({size_mb:.1f} MiB)"
    )


@app.command()
def stats(
    trace_file: Path = typer.Argument(..., help="trace file"),
    as_json: bool = typer.Option(False, "--json", help="print JSON instead of a table"),
) -> None:
    """Per-layer, per-time-step densities of spikes, masks and gradients in a trace."""
    from h2learn.workload.stats import trace_stats
    from h2learn.workload.trace import Trace

    result = trace_stats(Trace.load(trace_file))
    if as_json:
        print(json.dumps(result, indent=1))
        return
    table = Table(
        "layer", "input", "spikes o", "mask", "du", "du at psum", "lower mask", "du per step"
    )
    for layer in result["layers"]:

        def cell(key: str, layer=layer) -> str:
            return f"{layer[key]:.3f}" if key in layer else "-"

        per_step = " ".join(f"{v:.2f}" for v in layer["du_per_step"])
        table.add_row(
            layer["layer"],
            cell("input"),
            cell("spikes"),
            cell("mask"),
            cell("du"),
            cell("du_psum"),
            cell("lower_mask"),
            per_step,
        )
    out.print(f"{result['model']}: T={result['time_steps']}, batch {result['batch_size']}")
    out.print(table)
