"""Helpers shared by the event-dataset tests."""

from __future__ import annotations

import numpy as np


def frames_from(entries: dict[tuple[int, int, int, int], int], shape) -> np.ndarray:
    """Expected frames: zeros except ``{(t, polarity, y, x): count}``."""
    frames = np.zeros(shape, dtype=np.float32)
    for index, count in entries.items():
        frames[index] = count
    return frames
