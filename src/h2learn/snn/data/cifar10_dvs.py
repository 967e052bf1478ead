"""CIFAR10-DVS: the original release, AEDAT 2.0 recordings from a 128x128 DVS128 sensor.

The release has no split: recordings 0..99 of each class are the test split,
the rest the training split.  Each recording is one sample, binned over its
first to last event and scaled onto 48x48 frames [ours].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from h2learn.errors import DataError
from h2learn.snn.data.base import DatasetInfo, LoadRequest
from h2learn.snn.data.events import Events, interleave, recording_frames
from h2learn.snn.data.files import file_size, tonic_io

CIFAR10_DVS_URL = "https://figshare.com/articles/dataset/CIFAR10-DVS_New/4724671"
CIFAR10_DVS_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

_CIFAR10_DVS_SENSOR = 128
_CIFAR10_DVS_TEST_PER_CLASS = 100  # recordings 0..99 of each class: the usual test split


def read_cifar10_dvs(path: str | Path) -> Events:
    """Decode one CIFAR10-DVS ``.aedat`` (AEDAT 2.0) recording on the 128x128 sensor.

    tonic reads the ``#`` header (``tonic.io.read_aedat_header_from_file``) and
    the big-endian ``(address, timestamp)`` words
    (``tonic.io.get_aer_events_from_file``).  The DVS128 address holds the
    polarity in bit 0, the sensor column in bits 1..7 and the row in bits
    8..14; the recordings are rotated, so ``x = 127 - row``, ``y = 127 -
    column`` and ON is bit 0 clear (the CIFAR10-DVS authors' ``dat2mat.m``
    conversion, as the published loaders apply it).
    """
    path = Path(path)
    reader = tonic_io("cifar10-dvs")
    try:
        version, start, _ = reader.read_aedat_header_from_file(str(path))
    except (AssertionError, UnboundLocalError, ValueError, OSError):
        raise DataError(
            f"{path}: not an AEDAT 2.0 recording (no #!AER-DAT header); "
            f"re-download it from {CIFAR10_DVS_URL}"
        ) from None
    if not 2 <= version < 3:
        raise DataError(f"{path}: AEDAT {version} is not the CIFAR10-DVS format (AEDAT 2.0)")
    body = file_size(path) - start
    if body % 8:
        raise DataError(
            f"{path}: {body} data bytes is not a whole number of 8-byte AEDAT 2.0 events; "
            f"the file is truncated, re-download it from {CIFAR10_DVS_URL}"
        )
    words = reader.get_aer_events_from_file(str(path), version, start)
    address = words["address"].astype(np.int64)
    column, row = (address >> 1) & 0x7F, (address >> 8) & 0x7F
    top = _CIFAR10_DVS_SENSOR - 1
    return Events(
        x=top - row, y=top - column, p=1 - (address & 1), t=words["timeStamp"].astype(np.int64)
    )


def _cifar10_dvs_files(req: LoadRequest) -> list[tuple[Path, int]]:
    """``(file, class)`` of the split, class by class in turn (balanced under ``limit``)."""
    base = req.folder(Path("data") / "cifar10-dvs")
    per_class = []
    for label, name in enumerate(CIFAR10_DVS_CLASSES):
        files = []
        for path in (base / name).glob(f"cifar10_{name}_*.aedat"):
            index = path.stem.rsplit("_", 1)[-1]
            if index.isdigit() and (int(index) < _CIFAR10_DVS_TEST_PER_CLASS) == (
                req.split == "test"
            ):
                files.append((int(index), path))
        per_class.append([(path, label) for _, path in sorted(files)])
    if not any(per_class):
        raise DataError(
            f"cifar10-dvs: no <class>/cifar10_<class>_<i>.aedat files under {base}; download the "
            f"ten class zips from {CIFAR10_DVS_URL}, extract them into ./data/cifar10-dvs "
            "or pass --data-dir"
        )
    return interleave(per_class)


def load_cifar10_dvs(req: LoadRequest) -> tuple[np.ndarray, np.ndarray]:
    """Event frames of CIFAR10-DVS, the 128x128 sensor binned onto 48x48 [ours]."""
    files = _cifar10_dvs_files(req)[: req.limit]
    sensor = (_CIFAR10_DVS_SENSOR, _CIFAR10_DVS_SENSOR)
    return recording_frames(req, files, read_cifar10_dvs, sensor)


CIFAR10_DVS = DatasetInfo(
    "cifar10-dvs",
    (2, 48, 48),
    10,
    "events",
    "dvs-cifar10",
    f"<class>/cifar10_<class>_<i>.aedat (the ten class zips from {CIFAR10_DVS_URL}, "
    "extracted) in ./data/cifar10-dvs",
    aliases=("dvs-cifar10", "cifar10dvs"),
    loader=load_cifar10_dvs,
)
