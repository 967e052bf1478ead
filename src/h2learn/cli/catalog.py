"""``h2learn models`` and ``h2learn datasets``: what the zoo and the data loaders hold."""

from __future__ import annotations

import typer  # noqa: F401
from rich.table import Table

from h2learn.cli.app import app, out


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
