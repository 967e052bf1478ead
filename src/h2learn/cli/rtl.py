"""``h2learn rtl``: Verilog of the PEs, their synthesis statistics and the derived cost table."""

from __future__ import annotations

from pathlib import Path

import typer

from h2learn.cli.app import app, config_or_default, out, progress_steps
from h2learn.errors import H2LearnError


def _parse_ks(text: str) -> list[int]:
    try:
        ks = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise H2LearnError(f"--k {text!r}: give comma-separated integers, e.g. 2,4,6") from None
    if not ks:
        raise H2LearnError("--k: give at least one LUT group size, e.g. 2,4,6")
    return ks


@app.command()
def rtl(
    config_file: Path | None = typer.Option(None, "--config", help="hardware config YAML"),
    out_dir: Path = typer.Option(..., "--out", help="output directory"),
    ks: str = typer.Option("2,4,6", "--k", help="LUT group sizes to synthesize, e.g. 2,4,6"),
    number_format: str | None = typer.Option(
        None,
        "--format",
        help="datapath format: fixed<I>.<F>, float16, bfloat16 or float32 (default: the config's)",
    ),
) -> None:
    """Generate the PEs' Verilog, synthesize them with Yosys and derive a cost table."""
    from h2learn.rtl.report import rtl_config, write_rtl_outputs

    groups = _parse_ks(ks)
    config = rtl_config(config_or_default(config_file), number_format)
    if out_dir.exists() and not out_dir.is_dir():
        raise H2LearnError(f"--out {out_dir} is a file; give a directory")
    total = 6 + 2 * len(groups)
    with progress_steps("rtl", total, "synthesize") as step:
        paths = write_rtl_outputs(config, out_dir, groups, step)
    out.print(f"RTL of the PEs ({config.datapath_format}) written to {out_dir}:")
    for name, path in paths.items():
        out.print(f"  {name}: {path}")
