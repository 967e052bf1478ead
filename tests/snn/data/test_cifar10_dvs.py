"""CIFAR10-DVS loader on AEDAT 2.0 recordings written here from the format."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from h2learn.errors import DataError
from h2learn.snn import data
from h2learn.snn.data import load_dataset

from .helpers import frames_from

AEDAT2_HEADER = b"#!AER-DAT2.0\r\n# This is a raw AE data file - do not edit\r\n"


def dvs128_word(column: int, row: int, off: int) -> int:
    """A DVS128 address: polarity bit 0 (1 = OFF in CIFAR10-DVS), column bits 1..7, row 8..14."""
    return (row << 8) | (column << 1) | off


def write_aedat2(path: Path, events: list[tuple[int, int]]) -> None:
    """An AEDAT 2.0 file: '#' header lines, then big-endian (address, timestamp) words."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = b"".join(struct.pack(">II", address, t) for address, t in events)
    path.write_bytes(AEDAT2_HEADER + body)


def test_cifar10_dvs_decodes_rotates_and_bins(tmp_path):
    path = tmp_path / "cat" / "cifar10_cat_120.aedat"
    # column 5, row 7, ON at t=1000; column 127, row 0, OFF at t=1099
    write_aedat2(path, [(dvs128_word(5, 7, 0), 1000), (dvs128_word(127, 0, 1), 1099)])
    events = data.read_cifar10_dvs(path)
    assert events.x.tolist() == [127 - 7, 127] and events.y.tolist() == [127 - 5, 0]
    assert events.p.tolist() == [1, 0] and events.t.tolist() == [1000, 1099]
    write_aedat2(tmp_path / "airplane" / "cifar10_airplane_3.aedat", [(dvs128_word(0, 0, 0), 5)])
    x, y = load_dataset("dvs-cifar10", "train", tmp_path, time_steps=2).tensors
    assert y.tolist() == [3] and x.shape == (1, 2, 2, 48, 48)
    # x = 120 -> 120 * 48 // 128 = 45, y = 122 -> 45; x = 127 -> 47, y = 0 -> 0
    expected = frames_from({(0, 1, 45, 45): 1, (1, 0, 0, 47): 1}, (2, 2, 48, 48))
    np.testing.assert_array_equal(x[0].numpy(), expected)
    x_test, y_test = load_dataset("cifar10-dvs", "test", tmp_path, time_steps=2).tensors
    assert y_test.tolist() == [0]  # recordings 0..99 of a class are the test split


def test_cifar10_dvs_errors(tmp_path):
    with pytest.raises(DataError, match="no <class>/cifar10_<class>_<i>.aedat files"):
        load_dataset("cifar10-dvs", "train", tmp_path)
    path = tmp_path / "dog" / "cifar10_dog_200.aedat"
    write_aedat2(path, [(dvs128_word(1, 1, 0), 5)])
    path.write_bytes(path.read_bytes() + b"\x00\x01\x02")
    with pytest.raises(DataError, match="not a whole number of 8-byte AEDAT 2.0 events"):
        load_dataset("cifar10-dvs", "train", tmp_path)
    path.write_bytes(b"\x00\x01" * 8)
    with pytest.raises(DataError, match="not an AEDAT 2.0 recording"):
        load_dataset("cifar10-dvs", "train", tmp_path)
