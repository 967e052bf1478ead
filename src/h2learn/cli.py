"""The ``h2learn`` command: a thin shell over the Python API.

Every user error ends in one line on stderr (``error: ...``) and exit code 2,
never a traceback.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from h2learn.errors import H2LearnError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="H2Learn: train spiking networks with BPTT and model what training costs on H2Learn.",
)
console = Console(stderr=True)
out = Console()


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "input"
    message = str(first.get("msg", "bad value")).removeprefix("Value error, ")
    return f"invalid {where}: {message}"


def fail(message: str, code: int = 2) -> None:
    """Print one unwrapped error line on stderr and exit."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


@app.command()
def models() -> None:
    """List the model zoo."""
    from h2learn.snn.models import describe
    from h2learn.spec import build_spec

    table = Table("model", "T", "layers", "weights", "MACs/step", "description")
    for name, description in describe():
        spec = build_spec(name)
        weights = sum(layer.num_weights for layer in spec.layers)
        macs = sum(layer.macs_per_step for layer in spec.layers)
        table.add_row(
            name,
            str(spec.time_steps),
            str(len(spec.weighted_layers)),
            f"{weights / 1e6:.2f} M",
            f"{macs / 1e6:.1f} M",
            description,
        )
    out.print(table)


@app.command()
def datasets() -> None:
    """List the datasets and the files each one needs."""
    from h2learn.snn.data import DATASETS

    table = Table("dataset", "shape", "classes", "default model", "files")
    for name, info in DATASETS.items():
        shape = "x".join(map(str, info.input_shape))
        table.add_row(name, shape, str(info.num_classes), info.default_model, info.files)
    out.print(table)


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
    no_reset_grad: bool = typer.Option(False, help="drop the reset-path gradient"),
    out_dir: Path = typer.Option(Path("runs/train"), "--out", help="output folder"),
    resume: bool = typer.Option(False, help="continue the run in --out from its checkpoint"),
) -> None:
    """Train a spiking network with BPTT; writes metrics.json and a checkpoint to --out."""
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
        reset_grad=not no_reset_grad,
    )
    metrics = run_with_progress(config, out_dir, resume)
    out.print(
        f"test accuracy {metrics['test_accuracy']:.2%} after {metrics['epochs']} epochs "
        f"({metrics['train_seconds']:.1f} s of training); results in {out_dir}"
    )


def run_with_progress(config, out_dir: Path, resume: bool) -> dict:
    """Train with a progress bar on stderr."""
    from h2learn.snn.train import train as run_training

    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("train", total=None, epoch="-", loss=float("nan"))

        def hook(epoch: int, step: int, steps: int, loss: float) -> None:
            progress.update(
                task, completed=step, total=steps, epoch=f"{epoch + 1}/{config.epochs}", loss=loss
            )

        return run_training(config, out_dir, resume=resume, progress=hook, log=console.print)


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="output folder"),
) -> None:
    """Train digits-mlp on the bundled digits and print the accuracy."""
    import shutil

    from h2learn.snn.train import TrainConfig

    if out_dir.exists():
        shutil.rmtree(out_dir)
    config = TrainConfig(dataset="digits", model="digits-mlp")
    metrics = run_with_progress(config, out_dir, resume=False)
    out.print(
        f"digits-mlp on digits: test accuracy {metrics['test_accuracy']:.2%} "
        f"in {metrics['train_seconds']:.1f} s; metrics in {out_dir / 'metrics.json'}"
    )


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except H2LearnError as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(_validation_message(exc))
    except (typer.Abort, KeyboardInterrupt):
        fail("interrupted; finished epochs are checkpointed (continue with --resume)", 130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
