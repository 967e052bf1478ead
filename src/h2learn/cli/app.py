"""The ``h2learn`` Typer app and the helpers every command shares.

Every user error ends in one line on stderr (``error: ...``) and exit code 2,
never a traceback.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from h2learn.errors import H2LearnError

if TYPE_CHECKING:
    from h2learn.arch.config import HardwareConfig

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="H2Learn: train spiking networks with BPTT and model what training costs on H2Learn.",
)
console = Console(stderr=True)
out = Console()

PROGRESS_COLUMNS = (
    TextColumn("[bold]{task.description} {task.fields[what]}"),
    BarColumn(),
    MofNCompleteColumn(),
    TimeElapsedColumn(),
)


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as one line naming the field."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "input"
    message = str(first.get("msg", "bad value")).removeprefix("Value error, ")
    return f"invalid {where}: {message}"


def fail(message: str, code: int = 2) -> None:
    """Print one unwrapped error line on stderr and exit."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(code)


def is_worker() -> bool:
    """Whether this is a non-zero rank of a torchrun launch (which stays quiet)."""
    return os.environ.get("RANK", "0") != "0"


def config_or_default(config_file: Path | None) -> HardwareConfig:
    """The hardware config in ``config_file``, or the default design when none is given."""
    from h2learn.arch.config import default_config, load_config

    return load_config(config_file) if config_file else default_config()


@contextmanager
def progress_steps(
    description: str, total: int, first: str | None = None
) -> Iterator[Callable[[str], None]]:
    """A transient progress bar on stderr; yields ``step(name)``.

    ``step(name)`` shows ``name`` and advances the bar, except for ``first``
    (the name of the first item, reported when it starts) so that a bar over
    ``total`` items reaches ``total`` when the last one starts and the run ends.
    """
    with Progress(*PROGRESS_COLUMNS, console=console, transient=True) as progress:
        task = progress.add_task(description, total=total, what="")

        def step(name: str = "") -> None:
            progress.update(task, advance=0 if name == first and first else 1, what=name)

        yield step


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit code 2."""
    try:
        app()
    except H2LearnError as exc:
        fail(str(exc))
    except ValidationError as exc:
        fail(validation_message(exc))
    except KeyboardInterrupt:
        fail("interrupted; finished epochs are checkpointed (continue with --resume)", 130)
