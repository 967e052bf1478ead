"""CIFAR-10/100 loaders on batches pickled here as Python 2's cPickle wrote them."""

from __future__ import annotations

import collections
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from h2learn.errors import DataError
from h2learn.snn.data import load_dataset


def py2_pickle(obj: object) -> bytes:
    """Protocol-2 pickle as Python 2's cPickle wrote CIFAR's batches.

    Python 2 ``str`` (here: bytes) is a SHORT_BINSTRING/BINSTRING opcode, which
    Python 3 reads back as bytes with ``encoding="bytes"``; uint8 arrays go through
    ``numpy.core.multiarray._reconstruct`` and ``ndarray.__setstate__``.
    """
    out = bytearray(b"\x80\x02")

    def string(value: bytes) -> None:
        if len(value) < 256:
            out.extend(b"U" + bytes([len(value)]) + value)
        else:
            out.extend(b"T" + struct.pack("<I", len(value)) + value)

    def put(value: object) -> None:
        if isinstance(value, dict):
            out.extend(b"}(")
            for key, item in value.items():
                put(key)
                put(item)
            out.extend(b"u")
        elif isinstance(value, list):
            out.extend(b"](")
            for item in value:
                put(item)
            out.extend(b"e")
        elif isinstance(value, bytes):
            string(value)
        elif isinstance(value, int):
            out.extend(b"J" + struct.pack("<i", value))
        elif isinstance(value, np.ndarray):
            assert value.dtype == np.uint8
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85")
            string(b"b")
            out.extend(b"\x87R(K\x01(")  # BUILD state: (version, shape, dtype, fortran, raw)
            for dim in value.shape:
                put(dim)
            out.extend(b"tcnumpy\ndtype\n")
            string(b"u1")
            out.extend(b"K\x00K\x01\x87R(K\x03")
            string(b"|")
            out.extend(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89")
            string(value.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(value))

    put(obj)
    return bytes(out + b".")


def cifar_batch(first: int, n: int, label_key: bytes) -> dict:
    """A batch like the originals: bytes keys, uint8 rows of R, G, B planes."""
    rows = (np.arange(first, first + n)[:, None] + np.arange(3072)[None, :]) % 256
    return {
        b"batch_label": b"testing batch",
        b"data": rows.astype(np.uint8),
        label_key: [(first + i) % 10 for i in range(n)],
        b"filenames": [b"img_%d.png" % i for i in range(n)],
    }


def write_cifar10(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for i in range(1, 6):
        batch = cifar_batch(2 * (i - 1), 2, b"labels")
        (folder / f"data_batch_{i}").write_bytes(py2_pickle(batch))
    (folder / "test_batch").write_bytes(py2_pickle(cifar_batch(50, 3, b"labels")))
    return folder


def test_cifar10_train_and_test(tmp_path):
    folder = write_cifar10(tmp_path)
    x, y = load_dataset("cifar10", "train", tmp_path).tensors
    assert x.shape == (10, 3, 32, 32) and x.dtype == torch.float32
    assert y.tolist() == list(range(10))
    # Sample k's pixel i is (k + i) % 256; channel c, row r, column q is pixel c*1024 + r*32 + q.
    assert float(x[3, 1, 2, 5]) == pytest.approx(((3 + 1024 + 64 + 5) % 256) / 255)
    xt, yt = load_dataset("cifar-10", "test", folder).tensors  # the batches folder itself
    assert xt.shape == (3, 3, 32, 32) and yt.tolist() == [0, 1, 2]
    x3, y3 = load_dataset("cifar10", "train", tmp_path, limit=3).tensors
    assert torch.equal(x3, x[:3]) and torch.equal(y3, y[:3])


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split, first in (("train", 0), ("test", 40)):
        batch = cifar_batch(first, 4, b"fine_labels")
        batch[b"fine_labels"] = [first + 55 + i for i in range(4)]
        batch[b"coarse_labels"] = [1, 2, 3, 4]
        # Python 3's protocol 2 spells bytes as _codecs.encode(...): a re-pickled copy.
        (folder / split).write_bytes(pickle.dumps(batch, protocol=2))
    x, y = load_dataset("cifar100", "test", tmp_path).tensors
    assert x.shape == (4, 3, 32, 32) and y.tolist() == [95, 96, 97, 98]
    assert float(x[0, 0, 0, 0]) == pytest.approx(40 / 255)


def test_cifar_missing_and_corrupt(tmp_path):
    with pytest.raises(DataError, match="no cifar-10-batches-py/data_batch_1 under .*cifar.html"):
        load_dataset("cifar10", "train", tmp_path)
    folder = write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(garbage")
    with pytest.raises(DataError, match="test_batch: not a valid CIFAR batch"):
        load_dataset("cifar10", "test", tmp_path)
    # A pickle naming any class but NumPy's array is refused, not executed.
    hostile = pickle.dumps({b"data": collections.OrderedDict(), b"labels": []}, protocol=2)
    (folder / "test_batch").write_bytes(hostile)
    with pytest.raises(DataError, match="refusing to load collections.OrderedDict"):
        load_dataset("cifar10", "test", tmp_path)
    (folder / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 5), np.uint8)}))
    with pytest.raises(DataError, match="no 'labels' entry"):
        load_dataset("cifar10", "test", tmp_path)
