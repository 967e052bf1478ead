"""DVS128 Gesture: IBM's ``DvsGesture/`` release, AEDAT 3.1 recordings cut into labelled samples.

Each recording's ``_labels.csv`` cuts it into segments, one sample each.  The
reader is ours: tonic's ``DVSGesture`` reads only its own preprocessed ``.npy``
release (downloaded), and its ``read_dvs_ibm`` (tonic 1.7) fails on the header
tuple and ignores the valid bit and timestamp overflow of AEDAT 3.1 packets.
"""

from __future__ import annotations

import csv
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from h2learn.errors import DataError
from h2learn.snn.data.base import DatasetInfo, LoadRequest
from h2learn.snn.data.events import Events, check_addresses, events_to_frames
from h2learn.snn.data.files import read_bytes

DVS_GESTURE_URL = "https://research.ibm.com/interactive/dvsgesture/"

_AEDAT_END_HEADER = b"#!END-HEADER"
_AEDAT_PACKET_HEADER = struct.Struct("<hhiiiiii")
_AEDAT_POLARITY_EVENT = 1
_AEDAT_POLARITY_BYTES = 8
_AEDAT_POLARITY_DTYPE = np.dtype([("data", "<u4"), ("ts", "<i4")])
_DVS_LABEL_HEADER = ["class", "startTime_usec", "endTime_usec"]


def _aedat_body_offset(data: bytes, path: Path) -> int:
    """Offset just past the ``#``-prefixed ASCII header ending in ``#!END-HEADER``."""
    if data.startswith(b"#!AER-DAT") and not data.startswith(b"#!AER-DAT3."):
        version = data[: data.find(b"\n")].decode("ascii", "replace").strip()
        raise DataError(f"{path}: {version[2:]} is not supported, only AEDAT 3.x; use IBM's files")
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0 or not data.startswith(b"#", pos):
            raise DataError(
                f"{path}: no AEDAT 3.1 header ending in #!END-HEADER; the file is truncated or "
                f"not AEDAT 3.1, re-download it from {DVS_GESTURE_URL}"
            )
        line = data[pos:end].rstrip(b"\r")
        pos = end + 1
        if line == _AEDAT_END_HEADER:
            return pos


def _aedat_polarity_words(data: bytes, path: Path) -> Iterator[tuple[np.ndarray, int]]:
    """Yield each polarity packet's events (fields ``data`` uint32, ``ts`` int32) and
    its timestamp overflow count, skipping packets of other event types."""
    pos = _aedat_body_offset(data, path)
    header = _AEDAT_PACKET_HEADER
    while pos < len(data):
        if pos + header.size > len(data):
            raise DataError(f"{path}: truncated AEDAT packet header at byte {pos}; re-download it")
        kind, _source, size, _ts_offset, overflow, _capacity, number, _valid = header.unpack_from(
            data, pos
        )
        body = pos + header.size
        if size < 1 or number < 0 or body + size * number > len(data):
            raise DataError(
                f"{path}: corrupt or truncated AEDAT packet at byte {pos} "
                f"({number} events of {size} bytes); re-download it"
            )
        if kind == _AEDAT_POLARITY_EVENT:
            if size != _AEDAT_POLARITY_BYTES:
                raise DataError(f"{path}: polarity events of {size} bytes, expected 8; corrupt")
            events = np.frombuffer(data, dtype=_AEDAT_POLARITY_DTYPE, count=number, offset=body)
            yield events, overflow
        pos = body + size * number


def read_aedat_polarity(path: str | Path) -> Events:
    """The valid polarity events of an AEDAT 3.1 file, in file order.

    A polarity event is a little-endian uint32 ``data`` (bit 0 valid mark, bit 1
    polarity, bits 2..16 y, bits 17..31 x) and an int32 timestamp in
    microseconds, extended to ``(packet overflow << 31) | timestamp``.
    """
    path = Path(path)
    data = read_bytes(path)
    parts = [
        (events["data"].astype(np.int64), events["ts"].astype(np.int64) | (overflow << 31))
        for events, overflow in _aedat_polarity_words(data, path)
    ]
    word = np.concatenate([w for w, _ in parts]) if parts else np.zeros(0, np.int64)
    stamp = np.concatenate([t for _, t in parts]) if parts else np.zeros(0, np.int64)
    valid = (word & 1).astype(bool)
    word, stamp = word[valid], stamp[valid]
    return Events(x=(word >> 17) & 0x7FFF, y=(word >> 2) & 0x7FFF, p=(word >> 1) & 1, t=stamp)


def read_gesture_labels(path: str | Path) -> list[tuple[int, int, int]]:
    """``(class 0..10, start_us, end_us)`` rows of a ``*_labels.csv`` (classes are 1..11 in it)."""
    path = Path(path)
    try:
        with path.open(newline="") as handle:
            rows = [row for row in csv.reader(handle) if row]
    except FileNotFoundError:
        raise DataError(
            f"dvs-gesture: missing labels file {path}; re-extract DvsGesture.tar.gz "
            f"from {DVS_GESTURE_URL}"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read labels ({exc}); re-download it") from None
    if not rows or [cell.strip() for cell in rows[0]] != _DVS_LABEL_HEADER:
        raise DataError(f"{path}: expected the header {','.join(_DVS_LABEL_HEADER)}; corrupt")
    segments = []
    for line, row in enumerate(rows[1:], start=2):
        try:
            label, start, end = (int(cell) for cell in row)
        except ValueError:
            raise DataError(f"{path}:{line}: expected 3 integers, got {row}; corrupt") from None
        if not 1 <= label <= 11 or end <= start:
            raise DataError(f"{path}:{line}: bad segment {row} (class 1..11, end > start)")
        segments.append((label - 1, start, end))
    return segments


def _gesture_directory(req: LoadRequest) -> Path:
    """The ``DvsGesture`` folder: ``data_dir`` itself, or its ``DvsGesture`` subfolder."""
    base = req.folder(Path("data") / "DvsGesture")
    for candidate in (base, base / "DvsGesture"):
        if (candidate / f"trials_to_{req.split}.txt").is_file():
            return candidate
    raise DataError(
        f"dvs-gesture: no trials_to_{req.split}.txt in {base}; download DvsGesture.tar.gz from "
        f"{DVS_GESTURE_URL}, extract it into ./data or pass --data-dir"
    )


def _gesture_trials(directory: Path, split: str) -> list[Path]:
    """The recordings listed in ``trials_to_<split>.txt``."""
    listing = directory / f"trials_to_{split}.txt"
    try:
        names = [line.strip() for line in listing.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{listing}: cannot read ({exc}); re-download it") from None
    return [directory / name for name in names if name]


def load_gesture(req: LoadRequest) -> tuple[np.ndarray, np.ndarray]:
    """One event-frame sample per labelled segment, binned over the segment's span."""
    _, height, width = req.info.input_shape
    directory = _gesture_directory(req)
    frames: list[np.ndarray] = []
    labels: list[int] = []
    for trial in _gesture_trials(directory, req.split):
        if req.limit is not None and len(labels) >= req.limit:
            break
        segments = read_gesture_labels(trial.with_name(f"{trial.stem}_labels.csv"))
        if not trial.is_file():
            raise DataError(f"dvs-gesture: missing recording {trial}; re-extract DvsGesture.tar.gz")
        events = read_aedat_polarity(trial)
        check_addresses(str(trial), events, height, width)
        for label, start, end in segments[: None if req.limit is None else req.limit - len(labels)]:
            frames.append(events_to_frames(events, start, end, req.time_steps, height, width))
            labels.append(label)
    shape = (len(frames), req.time_steps, 2, height, width)
    x = np.stack(frames) if frames else np.zeros(shape, dtype=np.float32)
    return x, np.asarray(labels, dtype=np.int64)


DVS_GESTURE = DatasetInfo(
    "dvs-gesture",
    (2, 128, 128),
    11,
    "events",
    "dvs-gesture",
    f"DvsGesture/ (DvsGesture.tar.gz from {DVS_GESTURE_URL}, extracted: *.aedat, "
    "*_labels.csv, trials_to_train.txt, trials_to_test.txt) in ./data",
    aliases=("dvsgesture",),
    loader=load_gesture,
)
