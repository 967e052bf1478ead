"""N-MNIST: ``Train|Test/<digit>/<id>.bin`` files of 5-byte events, decoded by tonic.

tonic's ``tonic.io.read_mnist_file`` decodes the events; tonic's ``NMNIST``
dataset class itself downloads unless the original zip archives and 10000
files are present, so file discovery and errors stay ours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from h2learn.errors import DataError
from h2learn.snn.data.base import DatasetInfo, LoadRequest
from h2learn.snn.data.events import Events, interleave, recording_frames
from h2learn.snn.data.files import cannot_read, file_size, tonic_io

NMNIST_URL = "https://www.garrickorchard.com/datasets/n-mnist"

_NMNIST_EVENT_BYTES = 5
_NMNIST_SPLIT_DIRS = {"train": "Train", "test": "Test"}
_NMNIST_SENSOR = (34, 34)
_TONIC_EVENT_DTYPE = np.dtype([("x", np.int64), ("y", np.int64), ("t", np.int64), ("p", np.int64)])


def read_nmnist(path: str | Path) -> Events:
    """Decode one N-MNIST ``.bin`` file with tonic's reader (``tonic.io.read_mnist_file``).

    40-bit big-endian events: byte 0 is x, byte 1 is y, bit 7 of byte 2 the
    polarity, the remaining 23 bits the timestamp in microseconds.  An event
    with ``y = 240`` is a timestamp-overflow marker: it is dropped and every
    later timestamp grows by ``2**13`` (tonic's handling, after Orchard's
    reference reader).  The length check and its message are ours.
    """
    path = Path(path)
    size = file_size(path)
    if size % _NMNIST_EVENT_BYTES:
        raise DataError(
            f"{path}: {size} bytes is not a whole number of 5-byte N-MNIST events; "
            f"the file is truncated or not N-MNIST, re-download it from {NMNIST_URL}"
        )
    reader = tonic_io("nmnist")
    try:
        events = reader.read_mnist_file(str(path), dtype=_TONIC_EVENT_DTYPE)
    except OSError as exc:
        raise cannot_read(path, exc) from None
    return Events(
        x=events["x"].astype(np.int64),
        y=events["y"].astype(np.int64),
        p=events["p"].astype(np.int64),
        t=events["t"].astype(np.int64),
    )


def _nmnist_files(req: LoadRequest) -> list[tuple[Path, int]]:
    """The split's ``(file, digit)`` pairs, interleaved digit by digit (0, 1, ..., 9, 0, ...)."""
    split_dir = req.folder(Path("data") / "nmnist") / _NMNIST_SPLIT_DIRS[req.split]
    per_digit = [
        [(path, digit) for path in sorted((split_dir / str(digit)).glob("*.bin"))]
        for digit in range(10)
    ]
    if not any(per_digit):
        raise DataError(
            f"nmnist: no {split_dir}/<digit>/*.bin files; download Train.zip and Test.zip from "
            f"{NMNIST_URL}, extract them into ./data/nmnist or pass --data-dir"
        )
    return interleave(per_digit)


def load_nmnist(req: LoadRequest) -> tuple[np.ndarray, np.ndarray]:
    """Event frames of N-MNIST; each sample's bins span its first to its last event."""
    files = _nmnist_files(req)[: req.limit]
    return recording_frames(req, files, read_nmnist, _NMNIST_SENSOR)


NMNIST = DatasetInfo(
    "nmnist",
    (2, *_NMNIST_SENSOR),
    10,
    "events",
    "fmnist-conv",
    f"Train/<digit>/*.bin and Test/<digit>/*.bin (Train.zip, Test.zip from {NMNIST_URL}, "
    "extracted) in ./data/nmnist",
    aliases=("n-mnist",),
    loader=load_nmnist,
)
