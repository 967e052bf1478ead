"""``h2learn verify`` and ``h2learn simulate``: engines against a trace; one iteration's cost."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from h2learn.cli.app import app, console, out, progress_steps
from h2learn.errors import H2LearnError


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
    with progress_steps("verify", len(loaded.layers), loaded.layers[0].spec.name) as step:
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
    config_file: Path | None = typer.Option(
        None, "--config", help="hardware or comparison config YAML (workload:, baseline:)"
    ),
    batch_size: int | None = typer.Option(None, help="batch size (statistical; default 16)"),
    time_steps: int | None = typer.Option(None, "--time-steps", "-T", help="T (statistical)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    timeline: bool = typer.Option(False, help="include the timeline in the JSON"),
) -> None:
    """Simulate one training iteration on H2Learn, the V100 model and the dense accelerator."""
    from h2learn.arch.config import default_config
    from h2learn.compare import ComparisonConfig, compare_designs, load_comparison
    from h2learn.workload.trace import Trace

    setup = load_comparison(config_file) if config_file else ComparisonConfig(default_config())
    if trace_file is not None and model is not None:
        raise H2LearnError("give exactly one of --trace FILE or --model NAME")
    if trace_file is not None:
        if setup.workload.model_dump(exclude_none=True):
            raise H2LearnError("--trace brings its own run; drop the config's workload: section")
        if batch_size is not None or time_steps is not None:
            raise H2LearnError("--trace brings its own batch and T; drop --batch-size and -T")
        workload, densities = Trace.load(trace_file), None
    elif model is None and setup.workload.model is None:
        raise H2LearnError("give exactly one of --trace FILE or --model NAME")
    else:
        workload = setup.spec(model, batch_size, time_steps)
        densities = setup.workload.densities
    with console.status("simulating"):
        comparison = compare_designs(
            workload, setup.hardware, densities, setup.baseline.gpu_numerics
        )
    _print_comparison(comparison, as_json, timeline)


def _print_comparison(comparison, as_json: bool, timeline: bool) -> None:
    result, gpu, dense = comparison.h2learn, comparison.v100, comparison.dense
    if as_json:
        print(json.dumps(comparison.to_dict(timeline), indent=1, default=str))
        return
    table = Table("design", "time (ms)", "energy (mJ)", "power (W)", "area (mm^2)")
    for name, seconds, energy, area in (
        ("H2Learn", result.seconds, result.energy_j, result.area_mm2),
        (f"V100 (model, {gpu.numerics})", gpu.seconds, gpu.energy_j, gpu.area_mm2),
        ("dense accelerator", dense.seconds, dense.energy_j, dense.area_mm2),
    ):
        table.add_row(
            name,
            f"{seconds * 1e3:.3f}",
            f"{energy * 1e3:.2f}",
            f"{energy / seconds:.1f}",
            f"{area:.1f}",
        )
    out.print(
        f"{result.network}: T={result.time_steps}, batch {result.batch_size}, {result.mode} mode"
    )
    out.print(table)
    v = comparison.vs_v100
    out.print(
        f"vs V100: {v['speedup']:.2f}x faster, {v['energy_saving']:.2f}x less energy, "
        f"{v['area_saving']:.2f}x less area"
    )
