"""Reading dataset files: bytes or one-line :class:`~h2learn.errors.DataError`, labels, tonic.

Every reader in the package goes through these helpers, so an unreadable,
corrupt or foreign file always ends in the same kind of message: the path,
what is wrong and the fix.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from h2learn.errors import DataError


def cannot_read(path: Path, exc: OSError) -> DataError:
    """The one-line error for a file the operating system will not read."""
    return DataError(f"{path}: cannot read ({exc.strerror}); check the file")


def read_bytes(path: Path) -> bytes:
    """The whole content of ``path``."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise cannot_read(path, exc) from None


def file_size(path: Path) -> int:
    """The size of ``path`` in bytes."""
    try:
        return path.stat().st_size
    except OSError as exc:
        raise cannot_read(path, exc) from None


def read_maybe_gzip(path: Path) -> bytes:
    """The bytes of ``path``, decompressed when its name ends in ``.gz``."""
    raw = read_bytes(path)
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc}); re-download it") from None


def check_labels(where: str, labels: np.ndarray, num_classes: int) -> None:
    """Reject labels outside ``0 .. num_classes - 1`` (a sign of a wrong or corrupt file)."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{where}: labels range {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}; "
            "the file is corrupt or of another dataset, re-download it"
        )


def tonic_io(dataset: str) -> Any:
    """``tonic.io``, or a one-line error saying how to install it (the ``events`` extra)."""
    try:
        import tonic.io
    except ImportError:
        raise DataError(
            f"{dataset}: reading its event files needs the tonic package; "
            "install it with pip install 'h2learn[events]' (or pip install tonic)"
        ) from None
    return tonic.io
