"""The ``h2learn`` command: a thin shell over the Python API.

Every user error ends in one line on stderr (``error: ...``) and exit code 2,
never a traceback.
"""

from __future__ import annotations

import json
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


@app.command()
def trace(
    model: str | None = typer.Option(None, help="zoo model (default: the dataset's)"),
    dataset: str = typer.Option("digits", help="dataset, or 'synthetic' for random inputs"),
    checkpoint: Path | None = typer.Option(None, help="record a trained model's iteration"),
    batch_size: int = typer.Option(16, help="samples in the recorded mini-batch"),
    time_steps: int | None = typer.Option(None, "--time-steps", "-T", help="time steps T"),
    seed: int = typer.Option(0, help="random seed (fresh models and synthetic data)"),
    data_dir: str | None = typer.Option(None, help="folder holding the dataset files"),
    out_file: Path = typer.Option(Path("runs/trace.h2t"), "--out", help="trace file to write"),
) -> None:
    """Record one training iteration (every layer and time step) to a trace file."""
    from h2learn.workload.record import record_from_dataset

    with console.status("recording one training iteration"):
        recorded = record_from_dataset(
            model, dataset, checkpoint, batch_size, seed, data_dir, time_steps
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
            cell("lower_mask"),
            per_step,
        )
    out.print(f"{result['model']}: T={result['time_steps']}, batch {result['batch_size']}")
    out.print(table)


@app.command()
def verify(
    trace_file: Path = typer.Option(..., "--trace", help="trace file"),
    k: int = typer.Option(4, "--k", help="LUT group size"),
    number_format: str = typer.Option(
        "float32", "--format", help="float32, float16, bfloat16, float64 or fixed<I>.<F>"
    ),
    skip_zero_patterns: bool = typer.Option(False, help="skip all-zero LUT patterns"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
) -> None:
    """Run all engines over a trace: errors against its tensors and event counts."""
    from h2learn.arch.numerics import as_format
    from h2learn.arch.verify import verify_trace
    from h2learn.workload.trace import Trace

    as_format(number_format)
    if k < 1:
        raise H2LearnError(f"--k {k}: the LUT group size must be at least 1")
    loaded = Trace.load(trace_file)
    with Progress(*_PROGRESS_COLUMNS, console=console, transient=True) as progress:
        task = progress.add_task("verify", total=len(loaded.layers), what="")

        def step(name: str) -> None:
            progress.update(task, advance=0 if name == loaded.layers[0].spec.name else 1, what=name)

        result = verify_trace(loaded, k, number_format, skip_zero_patterns, step)
    if as_json:
        print(json.dumps(result, indent=1))
        return
    table = Table("layer", "forward err", "backward err", "update err", "LIF u err", "LIF du err")
    for layer in result["layers"]:

        def cell(key: str, layer=layer) -> str:
            return f"{layer[key]:.1e}" if key in layer else "-"

        table.add_row(
            layer["layer"],
            cell("forward_err"),
            cell("backward_err"),
            cell("update_err"),
            cell("lif_u_err"),
            cell("lif_du_err"),
        )
    out.print(table)
    out.print(f"max error {result['max_err']:.2e} ({number_format}, k={k})")


_PROGRESS_COLUMNS = (
    TextColumn("[bold]{task.description} {task.fields[what]}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
)


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        app()
    except H2LearnError as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(_validation_message(exc))
    except KeyboardInterrupt:
        fail("interrupted; finished epochs are checkpointed (continue with --resume)", 130)


if __name__ == "__main__":
    main()
