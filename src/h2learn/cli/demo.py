"""``h2learn demo``: the whole chain on the bundled digits, ending in an HTML report."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from h2learn.cli.app import app, console, out
from h2learn.cli.training import run_with_progress


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out", help="output folder"),
    epochs: int = typer.Option(30, help="training epochs"),
) -> None:
    """Train digits-mlp on the bundled digits, trace it, verify the engines, simulate, report."""
    import shutil

    from h2learn.arch.config import default_config
    from h2learn.arch.verify import verify_trace
    from h2learn.compare import compare_designs
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
    comparison = compare_designs(trace, default_config())
    result, simulation = comparison.h2learn, comparison.to_dict(timeline=True)
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
