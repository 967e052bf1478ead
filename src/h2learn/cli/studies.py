"""``h2learn reproduce`` and ``h2learn sweep``: the paper comparison and design-space sweeps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from h2learn.cli.app import app, config_or_default, fail, out, progress_steps
from h2learn.errors import H2LearnError

if TYPE_CHECKING:
    from h2learn.arch.config import HardwareConfig


def hardware_only(config_file: Path | None) -> HardwareConfig:
    """The hardware of ``config_file`` (default design if None); a comparison config's
    ``workload:``/``baseline:`` sections are refused in one line, since these commands
    choose the runs themselves."""
    from h2learn.compare import SECTIONS

    if config_file is not None:
        from h2learn.arch.config import read_yaml

        data = read_yaml(config_file, "hardware config")
        given = [name for name in SECTIONS if isinstance(data, dict) and name in data]
        if given:
            raise H2LearnError(
                f"{config_file}: this command takes a hardware config; drop the "
                f"{', '.join(given)} section(s) (they are for h2learn simulate --config)"
            )
    return config_or_default(config_file)


@app.command()
def reproduce(
    out_dir: Path = typer.Option(Path("runs/reproduce"), "--out", help="output folder"),
    config_file: Path | None = typer.Option(None, "--config", help="hardware config YAML"),
    batch_size: int = typer.Option(16, help="mini-batch size of every benchmark"),
    no_traces: bool = typer.Option(False, help="stated densities only, even where data exists"),
    trained: bool = typer.Option(
        True,
        "--trained/--no-trained",
        help="also simulate trained networks where the data is here (fresh vs trained)",
    ),
    train_epochs: int = typer.Option(
        1, help="epochs of the short training run for --trained (without --checkpoint)"
    ),
    train_limit: int = typer.Option(6000, help="training samples of that run"),
    checkpoint: list[str] = typer.Option(
        [], help="NAME=CHECKPOINT: use this trained run for benchmark or model NAME (repeatable)"
    ),
    cpu_validation: bool = typer.Option(
        True,
        "--cpu-validation/--no-cpu-validation",
        help="check the V100 model's method on this CPU against the measured step (~1 min)",
    ),
) -> None:
    """Run the benchmark suite against the V100 and a dense accelerator; write the report."""
    from h2learn.report.grounding import DEFAULT_CPU_CASES, TrainedSchedule
    from h2learn.report.reproduce import BENCHMARKS
    from h2learn.report.reproduce import reproduce as run_suite

    config = hardware_only(config_file)
    schedule = None
    if trained:
        if train_epochs < 1 or train_limit < 1:
            fail("--train-epochs and --train-limit must be at least 1")
        schedule = TrainedSchedule(
            epochs=train_epochs, limit_train=train_limit, checkpoints=_checkpoints(checkpoint)
        )
    # the suite, the sensitivity sweep, then the waterfall: area sweep, benchmarks, set search
    total = 2 * len(BENCHMARKS) + 3 + int(cpu_validation)
    if schedule is not None and not no_traces:  # a trained row where a dataset may be present
        total += sum(bench.dataset is not None for bench in BENCHMARKS)
    with progress_steps("reproduce", total, BENCHMARKS[0].name) as step:
        summary = run_suite(
            out_dir,
            config,
            batch_size,
            use_traces=not no_traces,
            progress=step,
            trained=schedule,
            cpu_cases=DEFAULT_CPU_CASES if cpu_validation else (),
        )
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
    search = summary["waterfall_search"]["smallest_set"]
    if search["found"]:
        sets = "; ".join(" + ".join(names) for names in search["sets"])
        out.print(f"inside the paper's ranges under: {sets}")
    else:
        refusing = ", ".join(m.replace("_", " ") for m in search.get("refusing", []))
        out.print(f"no set of stated assumptions lands inside the paper's ranges ({refusing})")
    out.print(f"report: {out_dir / 'report.md'}; numbers: {out_dir / 'summary.json'}")


def _checkpoints(pairs: list[str]) -> dict[str, Path]:
    """``NAME=PATH`` options as a mapping; a missing file or bad pair is one line."""
    found: dict[str, Path] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            fail(f"--checkpoint {pair!r}: write NAME=PATH (a benchmark or zoo model name)")
        if not Path(path).is_file():
            fail(f"--checkpoint {pair!r}: no file at {path}")
        found[name] = Path(path)
    return found


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
    from h2learn.explore.sweep import parse_vary, run_sweep

    config = hardware_only(config_file)
    grid = parse_vary(vary)
    total = 1
    for values in grid.values():
        total *= len(values)
    with progress_steps("sweep", total) as step:
        rows = run_sweep(
            config, grid, model, out_dir, scheduler, batch_size, workers, lambda *_: step()
        )
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
