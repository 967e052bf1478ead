"""Dataset loaders on tiny files written here in each dataset's real on-disk format.

The files are built byte by byte from the format descriptions (IDX, CIFAR's
pickled batches, N-MNIST's 5-byte events, AEDAT 3.1 packets), independently of
the loader's code, and the decoded tensors and event frames are checked exactly.
"""

from __future__ import annotations

import collections
import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from h2learn.errors import DataError
from h2learn.snn import data
from h2learn.snn.data import (
    ALIASES,
    DATASETS,
    dataset_info,
    dataset_names,
    load_dataset,
)
from h2learn.spec import ZOO

# --------------------------------------------------------------------------
# Writers for each format.
# --------------------------------------------------------------------------


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


def nmnist_event(x: int, y: int, p: int, t: int) -> bytes:
    """One 40-bit N-MNIST event: x, y, then polarity bit 7 and a 23-bit timestamp."""
    return bytes([x, y, (p << 7) | (t >> 16), (t >> 8) & 0xFF, t & 0xFF])


AEDAT_HEADER = b"#!AER-DAT3.1\r\n#Format: RAW\r\n#Source 1: DVS128\r\n#!END-HEADER\r\n"


def aedat_packet(kind: int, overflow: int, events: list[tuple[int, int]]) -> bytes:
    """A 28-byte AEDAT 3.1 packet header and its 8-byte (data, timestamp) events."""
    n = len(events)
    header = struct.pack("<hhiiiiii", kind, 1, 8, 4, overflow, n, n, n)
    return header + b"".join(struct.pack("<Ii", word, ts) for word, ts in events)


def polarity_word(x: int, y: int, p: int, valid: int = 1) -> int:
    """AEDAT 3.1 polarity data: bit 0 valid, bit 1 polarity, bits 2..16 y, bits 17..31 x."""
    return (x << 17) | (y << 2) | (p << 1) | valid


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


def frames_from(entries: dict[tuple[int, int, int, int], int], shape) -> np.ndarray:
    """Expected frames: zeros except ``{(t, polarity, y, x): count}``."""
    frames = np.zeros(shape, dtype=np.float32)
    for index, count in entries.items():
        frames[index] = count
    return frames


# --------------------------------------------------------------------------
# Registry and argument checks.
# --------------------------------------------------------------------------


def test_registry_names_aliases_and_models():
    assert dataset_names() == [
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "nmnist",
        "dvs-gesture",
    ]
    for alias, name in ALIASES.items():
        assert dataset_info(alias) is DATASETS[name]
    assert dataset_info("CIFAR10").name == "cifar10"
    for info in DATASETS.values():
        assert info.default_model in ZOO
        assert "\n" not in info.files
    assert dataset_info("nmnist").input_shape == (2, 34, 34)
    assert dataset_info("dvs-gesture").num_classes == 11
    assert dataset_info("cifar100").num_classes == 100


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DataError, match="unknown dataset 'imagenet'.*digits, mnist"):
        load_dataset("imagenet", "train")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"split": "valid"}, "unknown split 'valid'"),
        ({"split": "train", "time_steps": 0}, "time_steps=0"),
        ({"split": "train", "limit": 0}, "limit=0"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(DataError, match=message):
        load_dataset("digits", **kwargs)


# --------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------


def test_digits_split_sizes_values_and_determinism():
    train = load_dataset("digits", "train")
    test = load_dataset("digits", "test")
    x, y = train.tensors
    assert x.shape == (1347, 1, 8, 8) and x.dtype == torch.float32
    assert y.dtype == torch.int64
    assert test.tensors[0].shape == (450, 1, 8, 8)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    # Pixels are multiples of 1/16.
    assert torch.equal(x * 16, (x * 16).round())
    # Stratified: every class is in both splits in proportion.
    counts = torch.bincount(test.tensors[1], minlength=10)
    assert counts.min() >= 43 and counts.max() <= 46
    again = load_dataset("digits", "train")
    assert torch.equal(again.tensors[0], x) and torch.equal(again.tensors[1], y)
    assert torch.equal(load_dataset("digits", "train", limit=7).tensors[1], y[:7])


# --------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST)
# --------------------------------------------------------------------------


def small_idx_arrays(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    return images, np.array([7, 0, 9][:n], dtype=np.uint8)


@pytest.mark.parametrize("gz", [False, True])
def test_idx_plain_and_gzipped(tmp_path, gz):
    images, labels = small_idx_arrays()
    write_idx_set(tmp_path, "test", images, labels, gz)
    x, y = load_dataset("mnist", "test", tmp_path).tensors
    assert x.shape == (3, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(y, torch.tensor([7, 0, 9]))
    assert torch.allclose(x[:, 0], torch.from_numpy(images).float() / 255)
    assert float(x[0, 0, 0, 0]) == 0.0 and float(x[0, 0, 0, 1]) == 1.0
    x2, y2 = load_dataset("fmnist", "test", str(tmp_path), limit=2).tensors
    assert torch.equal(x2, x[:2]) and torch.equal(y2, y[:2])


def test_idx_missing_directory(tmp_path):
    with pytest.raises(
        DataError, match=r"no IDX files in .*nowhere.*t10k-images-idx3-ubyte\[.gz\]"
    ) as err:
        load_dataset("fashion-mnist", "test", tmp_path / "nowhere")
    assert "dataset-fashion-mnist" in str(err.value) and "\n" not in str(err.value)


def test_idx_truncated(tmp_path):
    images, labels = small_idx_arrays()
    write_idx_set(tmp_path, "train", images, labels, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte: truncated IDX file"):
        load_dataset("mnist", "train", tmp_path)


def test_idx_truncated_gzip_stream(tmp_path):
    images, labels = small_idx_arrays()
    write_idx_set(tmp_path, "train", images, labels, gz=True)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-6])
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: not a valid gzip file"):
        load_dataset("mnist", "train", tmp_path)


def test_idx_wrong_magic(tmp_path):
    images, labels = small_idx_arrays()
    write_idx_set(tmp_path, "train", images, labels, gz=False)
    # A label file where the image file should be.
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(labels))
    with pytest.raises(
        DataError, match=r"train-images-idx3-ubyte: bad IDX magic 0x00000801, expected 0x00000803"
    ):
        load_dataset("mnist", "train", tmp_path)


def test_idx_count_mismatch_and_bad_labels(tmp_path):
    images, labels = small_idx_arrays()
    write_idx_set(tmp_path, "train", images, labels[:2], gz=False)
    with pytest.raises(DataError, match="3 images but 2 labels"):
        load_dataset("mnist", "train", tmp_path)
    write_idx_set(tmp_path, "train", images, np.array([1, 2, 12]), gz=False)
    with pytest.raises(DataError, match=r"labels range 1\.\.12, expected 0\.\.9"):
        load_dataset("mnist", "train", tmp_path)


def test_debian_fashion_mnist_test_split():
    if not (data.DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("Debian's dataset-fashion-mnist package is not installed")
    x, y = load_dataset("fashion-mnist", "test").tensors
    assert x.shape == (10000, 1, 28, 28) and x.dtype == torch.float32
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0
    assert torch.equal(torch.bincount(y), torch.full((10,), 1000))
    assert y[:5].tolist() == [9, 2, 1, 1, 6]


# --------------------------------------------------------------------------
# CIFAR
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# N-MNIST
# --------------------------------------------------------------------------


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


# --------------------------------------------------------------------------
# DVS128 Gesture
# --------------------------------------------------------------------------


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


def test_events_to_frames_bins_equal_durations():
    t = np.arange(10, dtype=np.int64)
    zeros = np.zeros(10, dtype=np.int64)
    frames = data.events_to_frames(data.Events(zeros, zeros, zeros + 1, t), 0, 10, 5, 1, 1)
    assert frames.shape == (5, 2, 1, 1) and frames.dtype == np.float32
    assert frames[:, 1, 0, 0].tolist() == [2, 2, 2, 2, 2]
    assert frames[:, 0].sum() == 0
