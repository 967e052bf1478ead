"""The ``h2learn`` command: a thin shell over the Python API.

Every user error ends in one line on stderr (``error: ...``) and exit code 2,
never a traceback.
"""

from __future__ import annotations

import json
import os
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
    reset_grad: bool = typer.Option(
        True, "--reset-grad/--no-reset-grad", help="include the reset-path gradient"
    ),
    precision: str = typer.Option("float32", help="float32 or float64 (e.g. for exact checks)"),
    augment: bool = typer.Option(False, help="random 2-pixel shifts and horizontal flips"),
    out_dir: Path = typer.Option(Path("runs/train"), "--out", help="output folder"),
    resume: bool = typer.Option(False, help="continue the run in --out from its checkpoint"),
) -> None:
    """Train a spiking network with BPTT; writes metrics.json and a checkpoint to --out.

    Under `torchrun --nproc-per-node N -m h2learn train ...` the N processes
    train data-parallel with --batch-size as the global batch: same result.
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
    )
    metrics = run_with_progress(config, out_dir, resume)
    if _is_worker():
        return
    out.print(
        f"test accuracy {metrics['test_accuracy']:.2%} after {metrics['epochs']} epochs "
        f"({metrics['train_seconds']:.1f} s of training); results in {out_dir}"
    )


def _is_worker() -> bool:
    """Whether this is a non-zero rank of a torchrun launch (which stays quiet)."""
    return os.environ.get("RANK", "0") != "0"


def run_with_progress(config, out_dir: Path, resume: bool) -> dict:
    """Train with a progress bar on stderr (rank 0 only under torchrun)."""
    from h2learn.snn.train import train as run_training

    columns = (
        TextColumn("[bold]epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True, disable=_is_worker()) as progress:
        task = progress.add_task("train", total=None, epoch="-", loss=float("nan"))

        def hook(epoch: int, step: int, steps: int, loss: float) -> None:
            progress.update(
                task, completed=step, total=steps, epoch=f"{epoch + 1}/{config.epochs}", loss=loss
            )

        return run_training(config, out_dir, resume=resume, progress=hook, log=console.print)


def simulate_all(workload, spec, config, timeline: bool):
    """H2Learn, the V100 model and the dense accelerator on one workload, and their comparison.

    Returns ``(h2learn result, gpu result, dense result, JSON-ready dict)``.
    """
    from h2learn.arch.simulate import simulate as run_simulation
    from h2learn.baselines.dense import simulate_dense
    from h2learn.baselines.gpu import v100_training_step
    from h2learn.report.reproduce import compare

    result = run_simulation(workload, config)
    gpu = v100_training_step(spec)
    dense = simulate_dense(spec, config)
    comparison = {
        "h2learn": result.to_dict(timeline=timeline),
        "v100_model": gpu.to_dict(),
        "dense_accelerator": dense.to_dict(),
        "v100": compare(result, gpu),
        "dense": compare(result, dense),
    }
    return result, gpu, dense, comparison


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="output folder"),
    epochs: int = typer.Option(30, help="training epochs"),
) -> None:
    """Train digits-mlp on the bundled digits, trace it, verify the engines, simulate, report."""
    import shutil

    from h2learn.arch.config import default_config
    from h2learn.arch.verify import verify_trace
    from h2learn.report.html import write_html_report
    from h2learn.snn.train import TrainConfig, atomic_write_json
    from h2learn.workload.record import record_from_dataset
    from h2learn.workload.stats import trace_stats

    if out_dir.exists():
        shutil.rmtree(out_dir)
    console.print("[bold]1/5[/bold] training digits-mlp on the bundled digits")
    metrics = run_with_progress(TrainConfig(dataset="digits", epochs=epochs), out_dir, False)
    console.print("[bold]2/5[/bold] recording one training iteration of the trained network")
    trace = record_from_dataset(checkpoint=out_dir / "checkpoint.pt", batch_size=32)
    trace.save(out_dir / "trace.h2t")
    atomic_write_json(out_dir / "stats.json", trace_stats(trace))
    console.print("[bold]3/5[/bold] verifying the engines against the trace")
    verified = verify_trace(trace)
    atomic_write_json(out_dir / "verify.json", verified)
    console.print("[bold]4/5[/bold] simulating H2Learn, the V100 and the dense accelerator")
    result, _, _, simulation = simulate_all(trace, trace.spec, default_config(), timeline=True)
    atomic_write_json(out_dir / "simulation.json", simulation)
    console.print("[bold]5/5[/bold] writing the HTML report")
    report = write_html_report(out_dir)
    table = Table("", "value")
    table.add_row("test accuracy", f"{metrics['test_accuracy']:.2%}")
    table.add_row("engines vs trace, max error", f"{verified['max_err']:.1e}")
    table.add_row(
        "H2Learn time / energy", f"{result.seconds * 1e6:.1f} us / {result.energy_j * 1e3:.3f} mJ"
    )
    table.add_row(
        "vs V100 model: speedup, energy",
        f"{simulation['v100']['speedup']:.2f}x, {simulation['v100']['energy_saving']:.2f}x",
    )
    table.add_row(
        "vs dense accelerator: speedup, energy",
        f"{simulation['dense']['speedup']:.2f}x, {simulation['dense']['energy_saving']:.2f}x",
    )
    out.print(table)
    out.print(f"report: {report}")


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="run directory (e.g. runs/demo)"),
    out_file: Path | None = typer.Option(None, "--out", help="HTML file to write"),
) -> None:
    """Write the self-contained HTML report of a run directory."""
    from h2learn.report.html import write_html_report

    out.print(f"report: {write_html_report(run_dir, out_file)}")


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
            cell("du_psum"),
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


@app.command()
def simulate(
    trace_file: Path | None = typer.Option(None, "--trace", help="trace file (trace mode)"),
    model: str | None = typer.Option(None, help="zoo model (statistical mode)"),
    config_file: Path | None = typer.Option(None, "--config", help="hardware config YAML"),
    batch_size: int = typer.Option(16, help="batch size (statistical mode)"),
    time_steps: int | None = typer.Option(None, "--time-steps", "-T", help="T (statistical)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    timeline: bool = typer.Option(False, help="include the timeline in the JSON"),
) -> None:
    """Simulate one training iteration on H2Learn, the V100 model and the dense accelerator."""
    from h2learn.arch.config import default_config, load_config
    from h2learn.spec import build_spec
    from h2learn.workload.trace import Trace

    if (trace_file is None) == (model is None):
        raise H2LearnError("give exactly one of --trace FILE or --model NAME")
    config = load_config(config_file) if config_file else default_config()
    if trace_file is not None:
        workload = Trace.load(trace_file)
        spec = workload.spec
    else:
        overrides = {"batch_size": batch_size}
        if time_steps is not None:
            overrides["time_steps"] = time_steps
        workload = spec = build_spec(model, **overrides)
    with console.status("simulating"):
        result, gpu, dense, comparison = simulate_all(workload, spec, config, timeline)
    if as_json:
        print(json.dumps(comparison, indent=1, default=str))
        return
    table = Table("design", "time (ms)", "energy (mJ)", "power (W)", "area (mm^2)")
    for name, seconds, energy, area in (
        ("H2Learn", result.seconds, result.energy_j, result.area_mm2),
        ("V100 (model)", gpu.seconds, gpu.energy_j, gpu.area_mm2),
        ("dense accelerator", dense.seconds, dense.energy_j, dense.area_mm2),
    ):
        table.add_row(
            name,
            f"{seconds * 1e3:.3f}",
            f"{energy * 1e3:.2f}",
            f"{energy / seconds:.1f}",
            f"{area:.1f}",
        )
    out.print(f"{spec.name}: T={spec.time_steps}, batch {spec.batch_size}, {result.mode} mode")
    out.print(table)
    v = comparison["v100"]
    out.print(
        f"vs V100: {v['speedup']:.2f}x faster, {v['energy_saving']:.2f}x less energy, "
        f"{v['area_saving']:.2f}x less area"
    )


@app.command()
def reproduce(
    out_dir: Path = typer.Option(Path("runs/reproduce"), "--out", help="output folder"),
    config_file: Path | None = typer.Option(None, "--config", help="hardware config YAML"),
    batch_size: int = typer.Option(16, help="mini-batch size of every benchmark"),
    no_traces: bool = typer.Option(False, help="stated densities only, even where data exists"),
) -> None:
    """Run the benchmark suite against the V100 and a dense accelerator; write the report."""
    from h2learn.arch.config import default_config, load_config
    from h2learn.report.reproduce import BENCHMARKS
    from h2learn.report.reproduce import reproduce as run_suite

    config = load_config(config_file) if config_file else default_config()
    with Progress(*_PROGRESS_COLUMNS, console=console, transient=True) as progress:
        task = progress.add_task("reproduce", total=len(BENCHMARKS) + 1, what="")

        def step(name: str) -> None:
            progress.update(task, advance=0 if name == BENCHMARKS[0].name else 1, what=name)

        summary = run_suite(out_dir, config, batch_size, use_traces=not no_traces, progress=step)
    table = Table("vs V100", "paper", "ours")
    paper = summary["paper"]["v100"]
    for metric in ("area_saving", "speedup", "energy_saving"):
        low, high = summary["ranges"]["v100"][metric]
        target = paper[metric]
        target_text = (
            f"{target[0]}-{target[1]}x" if isinstance(target, list | tuple) else f"{target}x"
        )
        table.add_row(metric.replace("_", " "), target_text, f"{low:.2f}-{high:.2f}x")
    out.print(table)
    out.print(f"report: {out_dir / 'report.md'}; numbers: {out_dir / 'summary.json'}")


@app.command()
def sweep(
    config_file: Path | None = typer.Option(None, "--config", help="base hardware config YAML"),
    vary: list[str] = typer.Option(
        ..., "--vary", help="FIELD=V1,V2,... (repeatable; k = both LUTs)"
    ),
    model: str = typer.Option("cifar-vgg", help="zoo model (statistical mode)"),
    batch_size: int = typer.Option(16, help="batch size"),
    out_dir: Path = typer.Option(Path("runs/sweep"), "--out", help="output folder"),
    scheduler: str | None = typer.Option(None, help="Dask scheduler address (default: local pool)"),
    workers: int | None = typer.Option(None, help="local worker processes"),
) -> None:
    """Design-space exploration: simulate every combination of the varied config fields."""
    from h2learn.arch.config import default_config, load_config
    from h2learn.explore.sweep import parse_vary, run_sweep

    config = load_config(config_file) if config_file else default_config()
    grid = parse_vary(vary)
    total = 1
    for values in grid.values():
        total *= len(values)
    with Progress(*_PROGRESS_COLUMNS, console=console, transient=True) as progress:
        task = progress.add_task("sweep", total=total, what="")

        def step(*_args) -> None:
            progress.advance(task)

        rows = run_sweep(config, grid, model, out_dir, scheduler, batch_size, workers, step)
    best = sorted(rows, key=lambda row: row["seconds"])[:5]
    table = Table(*grid, "time (ms)", "energy (mJ)", "area (mm^2)", "pareto")
    for row in best:
        table.add_row(
            *(str(row[key]) for key in grid),
            f"{row['seconds'] * 1e3:.3f}",
            f"{row['energy_j'] * 1e3:.2f}",
            f"{row['area_mm2']:.1f}",
            "yes" if row.get("pareto") else "",
        )
    out.print(f"{len(rows)} points; fastest five:")
    out.print(table)
    out.print(f"results: {out_dir / 'results.json'}, {out_dir / 'results.csv'}")


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
