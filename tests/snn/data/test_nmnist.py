"""N-MNIST loader on ``.bin`` files of 5-byte events written here from the format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from h2learn.errors import DataError
from h2learn.snn import data
from h2learn.snn.data import load_dataset

from .helpers import frames_from


def nmnist_event(x: int, y: int, p: int, t: int) -> bytes:
    """One 40-bit N-MNIST event: x, y, then polarity bit 7 and a 23-bit timestamp."""
    return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])


def write_bin(path: Path, events: list[tuple[int, int, int, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(nmnist_event(*event) for event in events))


def test_nmnist_event_frames(tmp_path):
    # Window [1000, 1100) in 4 bins of 25 us; (x, y, polarity, t).
    write_bin(
        tmp_path / "Test" / "3" / "00001.bin",
        [(5, 7, 1, 1000), (5, 7, 1, 1024), (33, 0, 0, 1025), (0, 33, 1, 1074), (2, 1, 0, 1099)],
    )
    # Timestamps above 16 bits exercise the 23-bit field; one event, so one bin.
    write_bin(tmp_path / "Test" / "8" / "00002.bin", [(1, 2, 0, 0x7ABCDE)])
    x, y = load_dataset("n-mnist", "test", tmp_path, time_steps=4).tensors
    assert x.shape == (2, 4, 2, 34, 34) and x.dtype == torch.float32
    assert y.tolist() == [3, 8]
    expected = frames_from(
        {(0, 1, 7, 5): 2, (1, 0, 0, 33): 1, (2, 1, 33, 0): 1, (3, 0, 1, 2): 1}, (4, 2, 34, 34)
    )
    np.testing.assert_array_equal(x[0].numpy(), expected)
    np.testing.assert_array_equal(x[1].numpy(), frames_from({(0, 0, 2, 1): 1}, (4, 2, 34, 34)))


def test_nmnist_reader_decodes_fields(tmp_path):
    path = tmp_path / "one.bin"
    write_bin(path, [(12, 34, 1, 0x7FFFFF), (0, 0, 0, 0x010203)])
    events = data.read_nmnist(path)
    assert events.x.tolist() == [12, 0] and events.y.tolist() == [34, 0]
    assert events.p.tolist() == [1, 0] and events.t.tolist() == [0x7FFFFF, 0x010203]


def test_nmnist_overflow_marker_extends_later_timestamps(tmp_path):
    # y = 240 marks a timestamp overflow: dropped, later events gain 2**13 us.
    path = tmp_path / "one.bin"
    write_bin(path, [(1, 2, 1, 100), (0, 240, 0, 0), (3, 4, 0, 50), (0, 240, 0, 0), (5, 6, 1, 7)])
    events = data.read_nmnist(path)
    assert events.x.tolist() == [1, 3, 5] and events.y.tolist() == [2, 4, 6]
    assert events.t.tolist() == [100, 50 + 2**13, 7 + 2 * 2**13]
    assert events.p.tolist() == [1, 0, 1]


def test_nmnist_without_tonic_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tonic(name, *args, **kwargs):
        if name.startswith("tonic"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tonic)
    path = tmp_path / "one.bin"
    write_bin(path, [(1, 2, 1, 100)])
    with pytest.raises(DataError, match=r"needs the tonic package; install it with pip") as info:
        data.read_nmnist(path)
    assert "\n" not in str(info.value)


def test_nmnist_limit_interleaves_digits(tmp_path):
    for digit in (0, 1):
        for k in range(2):
            write_bin(tmp_path / "Train" / str(digit) / f"{k:05d}.bin", [(k, digit, 1, 10)])
    x, y = load_dataset("nmnist", "train", tmp_path, time_steps=1, limit=3).tensors
    assert y.tolist() == [0, 1, 0] and x.shape == (3, 1, 2, 34, 34)
    assert float(x[2, 0, 1, 0, 1]) == 1.0  # digit 0's second file: x=1, y=0


def test_nmnist_errors(tmp_path):
    with pytest.raises(DataError, match="no .*Train/<digit>/\\*.bin files; download Train.zip"):
        load_dataset("nmnist", "train", tmp_path)
    path = tmp_path / "Train" / "4" / "00001.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(nmnist_event(1, 1, 1, 5) + b"\x00\x01")
    with pytest.raises(DataError, match="7 bytes is not a whole number of 5-byte N-MNIST events"):
        load_dataset("nmnist", "train", tmp_path)
    write_bin(path, [(34, 1, 1, 5)])
    with pytest.raises(DataError, match="outside the 34x34 sensor"):
        load_dataset("nmnist", "train", tmp_path)
