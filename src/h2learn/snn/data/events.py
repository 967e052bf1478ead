"""Address events and event frames, shared by the event-camera datasets.

Event datasets give ``x`` of shape ``[N, T, 2, H, W]``: each sample's events
split into ``T = time_steps`` bins of equal duration and counted per
(polarity, y, x) per bin.  Channel 0 holds OFF events, channel 1 ON events.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

import numpy as np

from h2learn.errors import DataError
from h2learn.snn.data.base import LoadRequest

T = TypeVar("T")


class Events(NamedTuple):
    """A stream of address events: pixel ``x``, ``y``, polarity ``p`` (1 = ON) and
    timestamp ``t`` in microseconds, all int64 arrays of equal length."""

    x: np.ndarray
    y: np.ndarray
    p: np.ndarray
    t: np.ndarray

    def select(self, mask: np.ndarray) -> Events:
        """The events where ``mask`` is true."""
        return Events(self.x[mask], self.y[mask], self.p[mask], self.t[mask])


def events_to_frames(
    events: Events, t_start: int, t_end: int, time_steps: int, height: int, width: int
) -> np.ndarray:
    """Count events into ``[time_steps, 2, height, width]`` float32 frames.

    The window ``[t_start, t_end)`` is cut into ``time_steps`` bins of equal
    duration; an event at ``t`` falls in bin ``(t - t_start) * time_steps //
    (t_end - t_start)``.  Events outside the window are ignored.  Channel 0
    counts OFF events, channel 1 ON events.
    """
    duration = t_end - t_start
    if duration < 1:
        raise ValueError(f"empty event window [{t_start}, {t_end})")
    inside = events.select((events.t >= t_start) & (events.t < t_end))
    bins = (inside.t - t_start) * time_steps // duration
    flat = ((bins * 2 + inside.p) * height + inside.y) * width + inside.x
    counts = np.bincount(flat, minlength=time_steps * 2 * height * width)
    return counts.astype(np.float32).reshape(time_steps, 2, height, width)


def check_addresses(where: str, events: Events, height: int, width: int) -> None:
    """Reject events outside the sensor (a sign of a corrupt or foreign file)."""
    if len(events.x) and (events.x.max() >= width or events.y.max() >= height):
        raise DataError(
            f"{where}: event address up to x={events.x.max()}, y={events.y.max()} outside the "
            f"{width}x{height} sensor; the file is corrupt or of another dataset"
        )


def interleave(per_class: Sequence[Sequence[T]]) -> list[T]:
    """The items class by class in turn (0, 1, ..., 0, 1, ...), each class in its own order.

    Taking the first ``limit`` items of the result keeps them balanced across
    classes, as the shuffled IDX files are.
    """
    longest = max((len(items) for items in per_class), default=0)
    return [items[i] for i in range(longest) for items in per_class if i < len(items)]


def recording_frames(
    req: LoadRequest,
    files: Sequence[tuple[Path, int]],
    read: Callable[[Path], Events],
    sensor: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray]:
    """One sample per ``(file, label)``: its events binned over its first to last event.

    ``read`` decodes one file; its addresses must lie on the ``sensor``
    ``(height, width)``, which is scaled onto the dataset's frame size by
    integer division (the identity when the two agree).  A recording with no
    events gives all-zero frames.
    """
    _, height, width = req.info.input_shape
    sensor_height, sensor_width = sensor
    frames = np.zeros((len(files), req.time_steps, 2, height, width), dtype=np.float32)
    labels = np.empty(len(files), dtype=np.int64)
    for i, (path, label) in enumerate(files):
        events = read(path)
        check_addresses(str(path), events, sensor_height, sensor_width)
        binned = events._replace(
            x=events.x * width // sensor_width, y=events.y * height // sensor_height
        )
        if len(events.t):
            start, end = int(events.t.min()), int(events.t.max()) + 1
            frames[i] = events_to_frames(binned, start, end, req.time_steps, height, width)
        labels[i] = label
    return frames, labels
