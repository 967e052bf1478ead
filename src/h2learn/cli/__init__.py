"""The ``h2learn`` command: a thin shell over the Python API.

One module per group of commands, each registering its commands on the one
Typer ``app`` of :mod:`h2learn.cli.app`.  ``COMMAND_MODULES`` lists them in the
order ``h2learn --help`` shows them: a new command group is a new module and
one entry here.
"""

from __future__ import annotations

import importlib

from h2learn.cli.app import app, console, fail, main, out

COMMAND_MODULES = (
    "catalog",  # models, datasets
    "training",  # train
    "encodings",  # encodings
    "workload",  # trace, stats
    "hardware",  # verify, simulate
    "studies",  # reproduce, sweep
    "reports",  # report
    "demo",  # demo
    "interop",  # import, export (NIR)
    "rtl",  # rtl (PE Verilog, synthesis, derived cost table)
)

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}")

__all__ = ["COMMAND_MODULES", "app", "console", "fail", "main", "out"]
