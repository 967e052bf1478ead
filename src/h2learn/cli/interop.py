"""``h2learn import`` and ``h2learn export``: networks in and out as NIR graphs."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from h2learn.cli.app import app, console, out
from h2learn.errors import H2LearnError


@app.command("import")
def import_nir(
    nir_file: Path = typer.Argument(..., help="NIR graph file (.nir, HDF5)"),
    out_file: Path = typer.Option(..., "--out", help="spec JSON to write (weights go beside it)"),
    time_steps: int | None = typer.Option(
        None, "--time-steps", "-T", help="T (default: the file's h2learn hint, else 6)"
    ),
    batch_size: int | None = typer.Option(None, help="batch size (default: hint, else 32)"),
    dt: float | None = typer.Option(
        None, "--dt", help="seconds per step for NIR's ODEs (default: hint, else 1e-4)"
    ),
    input_kind: str | None = typer.Option(
        None, help="image, events or spikes (default: hint, else image)"
    ),
    simulate: bool = typer.Option(False, help="then simulate one training iteration"),
    config_file: Path | None = typer.Option(None, "--config", help="hardware config YAML"),
    as_json: bool = typer.Option(False, "--json", help="print the simulation as JSON"),
) -> None:
    """Import a NIR graph as an h2learn network: writes SPEC.json and SPEC.pt (weights).

    See docs/nir.md for how each NIR node and neuron parameter maps.
    """
    from h2learn.interop import build_model, import_graph, read_nir, save_weights

    for option, value in (("--time-steps", time_steps), ("--batch-size", batch_size)):
        if value is not None and value < 1:
            raise H2LearnError(f"{option} {value}: must be at least 1")
    imported = import_graph(
        read_nir(nir_file),
        name=nir_file.stem,
        dt=dt,
        time_steps=time_steps,
        batch_size=batch_size,
        input_kind=input_kind,
    )
    spec = imported.spec
    build_model(spec, imported.state_dict, str(nir_file))  # the weights fit the spec
    weights_file = out_file.with_suffix(".pt")
    _write_text(out_file, json.dumps(spec.to_dict(), indent=1, sort_keys=True) + "\n")
    save_weights(weights_file, spec, imported.state_dict)
    report = console if as_json else out
    layers = ", ".join(f"{layer.name}{'*' if layer.fires else ''}" for layer in spec.layers)
    report.print(f"imported {nir_file.name}: {layers} (* fires)")
    report.print(
        f"LIF alpha={spec.lif.alpha:g}, V_th={spec.lif.v_th:g}; T={spec.time_steps}, "
        f"batch {spec.batch_size}, input {spec.input_kind} {list(spec.input_shape)}"
    )
    for note in imported.notes:
        report.print(f"note: {note}", soft_wrap=True)
    report.print(f"wrote {out_file} and {weights_file}")
    if simulate:
        _simulate(spec, config_file, as_json)


@app.command("export")
def export_nir(
    checkpoint: Path = typer.Argument(..., help="training checkpoint or imported weights (.pt)"),
    out_file: Path = typer.Option(..., "--out", help="NIR file to write"),
    dt: float = typer.Option(1e-4, "--dt", help="seconds per step written into tau and r"),
) -> None:
    """Export a trained h2learn network to a NIR graph (batch norm folded in)."""
    from h2learn.interop import export_network, load_weights_file, write_nir

    model = load_weights_file(checkpoint)
    graph = export_network(model, dt)
    write_nir(graph, out_file)
    out.print(f"wrote {out_file}: {len(graph.nodes)} NIR nodes from {model.spec.name}")


def _write_text(path: Path, text: str) -> None:
    from h2learn.interop import NIRError

    try:
        path.write_text(text)
    except OSError as exc:
        raise NIRError(f"cannot write {path}: {exc.strerror or exc}") from None


def _simulate(spec, config_file: Path | None, as_json: bool) -> None:
    """One training iteration of ``spec`` on H2Learn and the baselines (statistical mode).

    ``--config`` is a hardware or comparison config, as for ``h2learn simulate``;
    the network is the imported one, so a ``workload:`` section may only set densities.
    """
    from h2learn.arch.config import default_config
    from h2learn.compare import ComparisonConfig, compare_designs, load_comparison

    setup = load_comparison(config_file) if config_file else ComparisonConfig(default_config())
    with console.status("simulating"):
        comparison = compare_designs(
            spec, setup.hardware, setup.workload.densities, setup.baseline.gpu_numerics
        )
    if as_json:
        print(json.dumps(comparison.to_dict(False), indent=1, default=str))
        return
    table = Table("design", "time (ms)", "energy (mJ)", "power (W)", "area (mm^2)")
    for name, run in (
        ("H2Learn", comparison.h2learn),
        ("V100 (model)", comparison.v100),
        ("dense accelerator", comparison.dense),
    ):
        table.add_row(
            name,
            f"{run.seconds * 1e3:.3f}",
            f"{run.energy_j * 1e3:.2f}",
            f"{run.energy_j / run.seconds:.1f}",
            f"{run.area_mm2:.1f}",
        )
    mode = comparison.h2learn.mode
    out.print(f"{spec.name}: T={spec.time_steps}, batch {spec.batch_size}, {mode} mode")
    out.print(table)
    v = comparison.vs_v100
    out.print(
        f"vs V100: {v['speedup']:.2f}x faster, {v['energy_saving']:.2f}x less energy, "
        f"{v['area_saving']:.2f}x less area"
    )
