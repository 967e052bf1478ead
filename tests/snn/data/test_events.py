"""Event frames and the helpers the event datasets share."""

from __future__ import annotations

import numpy as np
import pytest

from h2learn.errors import DataError
from h2learn.snn import data
from h2learn.snn.data import DatasetInfo, Events, LoadRequest
from h2learn.snn.data.events import interleave, recording_frames
from h2learn.snn.data.files import check_labels, file_size, read_bytes, read_maybe_gzip


def test_events_to_frames_bins_equal_durations():
    t = np.arange(10, dtype=np.int64)
    zeros = np.zeros(10, dtype=np.int64)
    frames = data.events_to_frames(data.Events(zeros, zeros, zeros + 1, t), 0, 10, 5, 1, 1)
    assert frames.shape == (5, 2, 1, 1) and frames.dtype == np.float32
    assert frames[:, 1, 0, 0].tolist() == [2, 2, 2, 2, 2]
    assert frames[:, 0].sum() == 0


def test_interleave_takes_classes_in_turn():
    per_class = [["a0", "a1", "a2"], ["b0"], [], ["d0", "d1"]]
    # Reference: order by rank within the class, then by class.
    ranked = sorted(
        (rank, cls, item) for cls, items in enumerate(per_class) for rank, item in enumerate(items)
    )
    assert interleave(per_class) == [item for _, _, item in ranked]
    assert interleave([[], []]) == []


def brute_force_frames(events: Events, steps: int, size: int, sensor: int) -> np.ndarray:
    """Event by event: bin over the recording's span, address scaled from the sensor."""
    frames = np.zeros((steps, 2, size, size), dtype=np.float32)
    start, end = int(events.t.min()), int(events.t.max()) + 1
    for x, y, p, t in zip(events.x, events.y, events.p, events.t, strict=True):
        step = (int(t) - start) * steps // (end - start)
        frames[step, p, int(y) * size // sensor, int(x) * size // sensor] += 1
    return frames


def test_recording_frames_scales_the_sensor_onto_the_frames(tmp_path):
    rng = np.random.default_rng(3)
    n = 200
    recording = Events(
        x=rng.integers(0, 10, n),
        y=rng.integers(0, 10, n),
        p=rng.integers(0, 2, n),
        t=np.sort(rng.integers(500, 900, n)),
    )
    empty = Events(*(np.zeros(0, np.int64) for _ in range(4)))
    recordings = {tmp_path / "a": recording, tmp_path / "b": empty}
    info = DatasetInfo("toy", (2, 4, 4), 3, "events", "digits-mlp", "none")
    req = LoadRequest(info, "train", None, 3, None)
    files = [(tmp_path / "a", 2), (tmp_path / "b", 1)]
    x, y = recording_frames(req, files, recordings.__getitem__, (10, 10))
    assert x.shape == (2, 3, 2, 4, 4) and y.tolist() == [2, 1]
    np.testing.assert_array_equal(x[0], brute_force_frames(recording, 3, 4, 10))
    assert x[0].sum() == n and not x[1].any()
    outside = recording._replace(x=recording.x + 1)  # x up to 10 on a 10-wide sensor
    with pytest.raises(DataError, match="outside the 10x10 sensor"):
        recording_frames(req, [(tmp_path / "c", 0)], lambda _: outside, (10, 10))


def test_file_helpers_fail_in_one_line(tmp_path):
    with pytest.raises(DataError, match=r"cannot read \(.*\); check the file") as err:
        read_bytes(tmp_path)  # a folder, not a file
    assert "\n" not in str(err.value)
    with pytest.raises(DataError, match="missing.bin: cannot read"):
        file_size(tmp_path / "missing.bin")
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"\x00\x01\x02")
    assert read_maybe_gzip(plain) == b"\x00\x01\x02" and file_size(plain) == 3
    check_labels("ok", np.array([0, 2]), 3)
    with pytest.raises(DataError, match=r"where: labels range -1\.\.2, expected 0\.\.2"):
        check_labels("where", np.array([-1, 2]), 3)
