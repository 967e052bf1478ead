"""``h2learn report``: the HTML report of a run folder."""

from __future__ import annotations

from pathlib import Path

import typer

from h2learn.cli.app import app, out


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="run directory (e.g. runs/demo)"),
    out_file: Path | None = typer.Option(None, "--out", help="HTML file to write"),
) -> None:
    """Write the self-contained HTML report of a run directory."""
    from h2learn.report.html import write_html_report

    out.print(f"report: {write_html_report(run_dir, out_file)}")
