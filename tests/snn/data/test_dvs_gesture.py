"""DVS128 Gesture loader on AEDAT 3.1 recordings and label files written here from the format."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from h2learn.errors import DataError
from h2learn.snn.data import load_dataset

from .helpers import frames_from

AEDAT_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def aedat_packet(kind: int, overflow: int, events: list[tuple[int, int]]) -> bytes:
    """A 28-byte AEDAT 3.1 packet header and its 8-byte (data, timestamp) events."""
    n = len(events)
    header = struct.pack("<hhiiiiii", kind, 1, 8, 4, overflow, n, n, n)
    return header + b"".join(struct.pack("<Ii", word, ts) for word, ts in events)


def polarity_word(x: int, y: int, p: int, valid: int = 1) -> int:
    """AEDAT 3.1 polarity data: bit 0 valid, bit 1 polarity, bits 2..16 y, bits 17..31 x."""
    return (x << 17) | (y << 2) | (p << 1) | valid


def write_gesture(root: Path) -> Path:
    """A DvsGesture folder with one training recording of two labelled segments."""
    folder = root / "DvsGesture"
    folder.mkdir(parents=True)
    w = polarity_word
    packets = [
        aedat_packet(0, 0, [(0x1, 900)]),  # a special-event packet, skipped
        aedat_packet(
            1,
            0,
            [
                (w(1, 2, 1), 999),  # before the first segment
                (w(1, 2, 1), 1000),  # bin 0
                (w(1, 2, 1), 1499),  # bin 0
                (w(127, 0, 0), 1500),  # bin 1
                (w(3, 4, 1, valid=0), 1600),  # invalid mark: dropped
                (w(0, 127, 1), 1999),  # bin 1
                (w(9, 9, 1), 2000),  # after the segment (end is exclusive)
            ],
        ),
        # Timestamp overflow 1: full time is 2**31 + ts.
        aedat_packet(1, 1, [(w(5, 6, 0), 3), (w(5, 6, 0), 7), (w(100, 50, 1), 9)]),
    ]
    (folder / "user01_fluorescent.aedat").write_bytes(AEDAT_HEADER + b"".join(packets))
    (folder / "user01_fluorescent_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n3,1000,2000\n11,2147483648,2147483658\n"
    )
    (folder / "trials_to_train.txt").write_text("user01_fluorescent.aedat\n\n")
    (folder / "trials_to_test.txt").write_text("user02_led.aedat\n")
    return folder


def test_gesture_segments_and_frames(tmp_path):
    folder = write_gesture(tmp_path)
    for where in (tmp_path, folder):
        x, y = load_dataset("dvsgesture", "train", where, time_steps=2).tensors
        assert x.shape == (2, 2, 2, 128, 128) and x.dtype == torch.float32
        assert y.tolist() == [2, 10]
        first = frames_from(
            {(0, 1, 2, 1): 2, (1, 0, 0, 127): 1, (1, 1, 127, 0): 1}, (2, 2, 128, 128)
        )
        np.testing.assert_array_equal(x[0].numpy(), first)
        # Window [2**31, 2**31 + 10) in bins of 5 us.
        second = frames_from(
            {(0, 0, 6, 5): 1, (1, 0, 6, 5): 1, (1, 1, 50, 100): 1}, (2, 2, 128, 128)
        )
        np.testing.assert_array_equal(x[1].numpy(), second)
    x1, y1 = load_dataset("dvs-gesture", "train", folder, time_steps=3, limit=1).tensors
    assert x1.shape == (1, 3, 2, 128, 128) and y1.tolist() == [2]
    assert float(x1.sum()) == 4.0


def test_gesture_errors(tmp_path):
    with pytest.raises(DataError, match="no trials_to_train.txt .*DvsGesture.tar.gz"):
        load_dataset("dvs-gesture", "train", tmp_path)
    folder = write_gesture(tmp_path)
    with pytest.raises(DataError, match="missing labels file .*user02_led_labels.csv"):
        load_dataset("dvs-gesture", "test", folder)
    recording = folder / "user01_fluorescent.aedat"
    whole = recording.read_bytes()
    recording.write_bytes(whole[:-3])
    with pytest.raises(DataError, match="corrupt or truncated AEDAT packet"):
        load_dataset("dvs-gesture", "train", folder)
    recording.write_bytes(b"#!AER-DAT3.1\r\n#no end\r\n")
    with pytest.raises(DataError, match="no AEDAT 3.1 header ending in #!END-HEADER"):
        load_dataset("dvs-gesture", "train", folder)
    recording.write_bytes(whole)
    (folder / "user01_fluorescent_labels.csv").write_text(
        "class,startTime_usec,endTime_usec\n12,1,2\n"
    )
    with pytest.raises(DataError, match=r"labels.csv:2: bad segment"):
        load_dataset("dvs-gesture", "train", folder)
