"""``h2learn verify`` and ``h2learn simulate``: engines against a trace; one iteration's cost."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from h2learn.cli.app import app, config_or_default, console, out, progress_steps
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
    config_file: Path | None = typer.Option(None, "--config", help="hardware config YAML"),
    batch_size: int = typer.Option(16, help="batch size (statistical mode)"),
    time_steps: int | None = typer.Option(None, "--time-steps", "-T", help="T (statistical)"),
    as_json: bool = typer.Option(False, "--json", help="print JSON"),
    timeline: bool = typer.Option(False, help="include the timeline in the JSON"),
) -> None:
    """Simulate one training iteration on H2Learn, the V100 model and the dense accelerator."""
    from h2learn.spec import build_spec
    from h2learn.workload.trace import Trace

    if (trace_file is None) == (model is None):
        raise H2LearnError("give exactly one of --trace FILE or --model NAME")
    config = config_or_default(config_file)
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
