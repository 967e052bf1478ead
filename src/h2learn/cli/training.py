"""``h2learn train``: BPTT training with a progress bar (rank 0 only under torchrun)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from h2learn.cli.app import app, console, is_worker, out


@app.command()
def train(
    dataset: str = typer.Option("digits", help="dataset name (see `h2learn datasets`)"),
    model: str | None = typer.Option(None, help="zoo model (default: the dataset's)"),
    epochs: int = typer.Option(30, help="training epochs"),
    time_steps: int | None = typer.Option(None, "--time-steps", "-T", help="time steps T"),
    batch_size: int = typer.Option(32, help="mini-batch size"),
    lr: float = typer.Option(2e-3, help="learning rate"),
    optimizer: str = typer.Option("adam", help="adam or sgd"),
    loss: str = typer.Option("ce", help="ce (cross-entropy on the rate) or mse (to one-hot)"),
    seed: int = typer.Option(0, help="random seed (runs are deterministic per seed)"),
    data_dir: str | None = typer.Option(None, help="folder holding the dataset files"),
    limit_train: int | None = typer.Option(None, help="use only the first N training samples"),
    limit_test: int | None = typer.Option(None, help="use only the first N test samples"),
    reset_grad: bool = typer.Option(
        True, "--reset-grad/--no-reset-grad", help="include the reset-path gradient"
    ),
    precision: str = typer.Option("float32", help="float32 or float64 (e.g. for exact checks)"),
    augment: bool = typer.Option(False, help="random 2-pixel shifts and horizontal flips"),
    encoding: str = typer.Option(
        "direct", help="input coding of images: direct, poisson, latency or delta"
    ),
    engine_format: str | None = typer.Option(
        None,
        help="train in the engines' arithmetic in this format (float16, bfloat16, "
        "fixed<I>.<F>[:nearest|:floor|:stochastic]); default: PyTorch float",
    ),
    out_dir: Path = typer.Option(Path("runs/train"), "--out", help="output folder"),
    resume: bool = typer.Option(False, help="continue the run in --out from its checkpoint"),
    trace_every: int | None = typer.Option(
        None,
        help="record a trace before training and every N epochs (and after the last): "
        "densities across training in --out/characterization.{json,md}, densities.png",
    ),
    trace_batch: int = typer.Option(16, help="training samples in each recorded trace"),
) -> None:
    """Train a spiking network with BPTT; writes metrics.json and a checkpoint to --out.

    Under `torchrun --nproc-per-node N -m h2learn train ...` the N processes
    train data-parallel with --batch-size as the global batch: same result.
    With --trace-every N, one training iteration on a fixed batch is recorded
    before training and every N epochs (see docs/characterization.md).
    """
    from h2learn.snn.train import TrainConfig

    config = TrainConfig(
        dataset=dataset,
        model=model,
        epochs=epochs,
        time_steps=time_steps,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        loss=loss,
        seed=seed,
        data_dir=data_dir,
        limit_train=limit_train,
        limit_test=limit_test,
        reset_grad=reset_grad,
        precision=precision,
        augment=augment,
        encoding=encoding,
        engine_format=engine_format,
    )
    if trace_every is None:
        metrics = run_with_progress(config, out_dir, resume)
    else:
        metrics = characterize_with_progress(config, out_dir, resume, trace_every, trace_batch)
    if is_worker():
        return
    out.print(
        f"test accuracy {metrics['test_accuracy']:.2%} after {metrics['epochs']} epochs "
        f"({metrics['train_seconds']:.1f} s of training); results in {out_dir}"
    )


def run_with_progress(config, out_dir: Path, resume: bool) -> dict:
    """Train with a progress bar on stderr (rank 0 only under torchrun)."""
    from h2learn.snn.train import train as run_training

    with _epoch_progress(config) as hook:
        return run_training(config, out_dir, resume=resume, progress=hook, log=console.print)


def characterize_with_progress(
    config, out_dir: Path, resume: bool, trace_every: int, trace_batch: int
) -> dict:
    """Train while recording densities (:mod:`h2learn.workload.characterize`); the metrics."""
    from h2learn.errors import H2LearnError
    from h2learn.report.characterization import write_characterization
    from h2learn.snn.train import METRICS_NAME
    from h2learn.workload.characterize import characterize

    if is_worker():
        raise H2LearnError("--trace-every records in one process; launch it without torchrun")
    with _epoch_progress(config) as hook:
        summary = characterize(
            config, out_dir, trace_every, trace_batch, resume, progress=hook, log=console.print
        )
    files = write_characterization(summary, out_dir)
    console.print(f"densities across training: {files['table']}, {files['plot']}")
    return json.loads((out_dir / METRICS_NAME).read_text())


@contextmanager
def _epoch_progress(config) -> Iterator:
    """A progress bar of the steps of each epoch; yields the trainer's progress hook."""
    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=is_worker()) as progress:
        task = progress.add_task("train", total=None, epoch="-", loss=float("nan"))

        def hook(epoch: int, step: int, steps: int, loss: float) -> None:
            progress.update(
                task, completed=step, total=steps, epoch=f"{epoch + 1}/{config.epochs}", loss=loss
            )

        yield hook
