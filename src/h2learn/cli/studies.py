"""``h2learn reproduce`` and ``h2learn sweep``: the paper comparison and design-space sweeps."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from h2learn.cli.app import app, config_or_default, out, progress_steps


@app.command()
def reproduce(
    out_dir: Path = typer.Option(Path("runs/reproduce"), "--out", help="output folder"),
    config_file: Path | None = typer.Option(None, "--config", help="hardware config YAML"),
    batch_size: int = typer.Option(16, help="mini-batch size of every benchmark"),
    no_traces: bool = typer.Option(False, help="stated densities only, even where data exists"),
) -> None:
    """Run the benchmark suite against the V100 and a dense accelerator; write the report."""
    from h2learn.report.reproduce import BENCHMARKS
    from h2learn.report.reproduce import reproduce as run_suite

    config = config_or_default(config_file)
    with progress_steps("reproduce", len(BENCHMARKS) + 1, BENCHMARKS[0].name) as step:
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
    from h2learn.explore.sweep import parse_vary, run_sweep

    config = config_or_default(config_file)
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
