"""Helpers shared by the dataset tests: IDX files written from the format, event frames."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np


def frames_from(entries: dict[tuple[int, int, int, int], int], shape) -> np.ndarray:
    """Expected frames: zeros except ``{(t, polarity, y, x): count}``."""
    frames = np.zeros(shape, dtype=np.float32)
    for index, count in entries.items():
        frames[index] = count
    return frames


def idx_bytes(array: np.ndarray) -> bytes:
    """An unsigned-byte IDX file: 0x0000, type 0x08, ndim, big-endian dims, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_idx_set(directory: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool):
    """Write one split's image and label IDX files, plain or gzipped."""
    directory.mkdir(parents=True, exist_ok=True)
    prefix = "train" if split == "train" else "t10k"
    for name, array in (
        (f"{prefix}-images-idx3-ubyte", images),
        (f"{prefix}-labels-idx1-ubyte", labels),
    ):
        payload = idx_bytes(array)
        if gz:
            (directory / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (directory / name).write_bytes(payload)
