"""Datasets and event encoders for training, read from local files in their real formats.

Nothing here downloads: there is no network at run time.  scikit-learn's bundled
8x8 ``digits`` always works offline; every other dataset is read from files the
user fetched once (each error message says from where and into which folder).

:func:`load_dataset` returns a :class:`~torch.utils.data.TensorDataset` of
``(x float32, y int64)``:

* image datasets give ``x`` of shape ``[N, C, H, W]`` scaled to ``[0, 1]``; the
  model repeats the image over its time steps itself;
* event datasets give ``x`` of shape ``[N, T, 2, H, W]``: each sample's events
  split into ``T = time_steps`` bins of equal duration and counted per
  (polarity, y, x) per bin.  Channel 0 holds OFF events, channel 1 ON events.

Formats read:

* MNIST / Fashion-MNIST: IDX files (optionally gzipped), checked for magic,
  dimensions and length.  Fashion-MNIST defaults to Debian's
  ``dataset-fashion-mnist`` package, which installs the four gzipped IDX files
  flat in ``/usr/share/datasets/fashion-mnist/``.
* CIFAR-10 / CIFAR-100: the pickled "python version" batches, unpickled with a
  loader that only admits NumPy arrays (a pickle can otherwise run code).
* N-MNIST: ``Train|Test/<digit>/<id>.bin``, 5-byte events.
* DVS128 Gesture: IBM's ``DvsGesture/`` release, AEDAT 3.1 recordings cut into
  samples by their ``_labels.csv`` files.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import math
import pickle
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import TensorDataset

from h2learn.errors import DataError

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

MNIST_URL = "https://yann.lecun.com/exdb/mnist/"
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
NMNIST_URL = "https://www.garrickorchard.com/datasets/n-mnist"
DVS_GESTURE_URL = "https://research.ibm.com/interactive/dvsgesture/"


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like to a model, and which files it needs.

    ``input_shape`` is per sample per time step, ``(C, H, W)``.  ``default_model``
    names a zoo model (:data:`h2learn.spec.ZOO`); build it with this info's
    ``input_shape`` and ``num_classes`` when they differ from the model's own
    (N-MNIST's 2x34x34 frames on ``fmnist-conv``, CIFAR-100 on ``cifar-vgg``).
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    kind: Literal["image", "events"]
    default_model: str
    files: str


DATASETS: dict[str, DatasetInfo] = {
    "digits": DatasetInfo(
        "digits",
        (1, 8, 8),
        10,
        "image",
        "digits-mlp",
        "none: scikit-learn ships the 8x8 digits (1797 images)",
    ),
    "mnist": DatasetInfo(
        "mnist",
        (1, 28, 28),
        10,
        "image",
        "fmnist-conv",
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
        f"t10k-labels-idx1-ubyte (each may be .gz) from {MNIST_URL} in ./data/mnist",
    ),
    "fashion-mnist": DatasetInfo(
        "fashion-mnist",
        (1, 28, 28),
        10,
        "image",
        "fmnist-conv",
        "the four IDX files (each may be .gz): apt-get install dataset-fashion-mnist "
        f"(puts them in {DEBIAN_FASHION_MNIST}) or download from {FASHION_MNIST_URL} "
        "into ./data/fashion-mnist",
    ),
    "cifar10": DatasetInfo(
        "cifar10",
        (3, 32, 32),
        10,
        "image",
        "cifar-vgg",
        f"cifar-10-batches-py/ (the 'python version' from {CIFAR_URL}, extracted) in ./data",
    ),
    "cifar100": DatasetInfo(
        "cifar100",
        (3, 32, 32),
        100,
        "image",
        "cifar-vgg",
        f"cifar-100-python/ (the 'python version' from {CIFAR_URL}, extracted) in ./data",
    ),
    "nmnist": DatasetInfo(
        "nmnist",
        (2, 34, 34),
        10,
        "events",
        "fmnist-conv",
        f"Train/<digit>/*.bin and Test/<digit>/*.bin (Train.zip, Test.zip from {NMNIST_URL}, "
        "extracted) in ./data/nmnist",
    ),
    "dvs-gesture": DatasetInfo(
        "dvs-gesture",
        (2, 128, 128),
        11,
        "events",
        "dvs-gesture",
        f"DvsGesture/ (DvsGesture.tar.gz from {DVS_GESTURE_URL}, extracted: *.aedat, "
        "*_labels.csv, trials_to_train.txt, trials_to_test.txt) in ./data",
    ),
}

ALIASES: dict[str, str] = {
    "fmnist": "fashion-mnist",
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "n-mnist": "nmnist",
    "dvsgesture": "dvs-gesture",
}


def dataset_names() -> list[str]:
    """The canonical dataset names, in a stable order."""
    return list(DATASETS)


def dataset_info(name: str) -> DatasetInfo:
    """Return the :class:`DatasetInfo` of ``name`` (an alias or any letter case is fine)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return DATASETS[key]


@dataclass(frozen=True)
class _Request:
    """One :func:`load_dataset` call, validated, as the per-format loaders see it."""

    info: DatasetInfo
    split: str
    data_dir: Path | None
    time_steps: int
    limit: int | None

    def take(self, count: int) -> int:
        """How many of ``count`` available samples to keep."""
        return count if self.limit is None else min(count, self.limit)


def load_dataset(
    name: str,
    split: Split,
    data_dir: str | Path | None = None,
    time_steps: int = 10,
    limit: int | None = None,
) -> TensorDataset:
    """Load one split of a dataset as a ``TensorDataset`` of ``(x float32, y int64)``.

    ``data_dir`` overrides the dataset's default folder (see ``DatasetInfo.files``).
    ``time_steps`` is the number of event frames per sample (event datasets only).
    ``limit`` keeps the first ``limit`` samples and, for event datasets, reads no
    more files than needed, for quick runs and tests.  Default folders such as
    ``./data/mnist`` are relative to the working directory.  Event frames are
    dense: a full split costs ``N * T * 2 * H * W * 4`` bytes (about 1.4 GB for
    DVS Gesture's training split at ``T = 10``), hence ``limit``.
    """
    info = dataset_info(name)
    if split not in SPLITS:
        raise DataError(f"{info.name}: unknown split {split!r}; use 'train' or 'test'")
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise DataError(f"time_steps={time_steps!r} must be an integer of at least 1")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise DataError(f"limit={limit!r} must be a positive integer, or None for all samples")
    directory = None if data_dir is None else Path(data_dir).expanduser()
    request = _Request(info, split, directory, time_steps, limit)
    x, y = _LOADERS[info.name](request)
    return TensorDataset(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )


def _check_labels(where: str, labels: np.ndarray, num_classes: int) -> None:
    """Reject labels outside ``0 .. num_classes - 1`` (a sign of a wrong or corrupt file)."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(
            f"{where}: labels range {labels.min()}..{labels.max()}, expected 0..{num_classes - 1}; "
            "the file is corrupt or of another dataset, re-download it"
        )


# --------------------------------------------------------------------------
# scikit-learn digits: always available offline.
# --------------------------------------------------------------------------


def _load_digits(req: _Request) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits, pixels / 16, in a fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    x, y = (x_train, y_train) if req.split == "train" else (x_test, y_test)
    n = req.take(len(y))
    return x[:n], y[:n]


# --------------------------------------------------------------------------
# IDX (MNIST, Fashion-MNIST).
# --------------------------------------------------------------------------

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UBYTE = 0x08


def _read_maybe_gzip(path: Path) -> bytes:
    """The bytes of ``path``, decompressed when its name ends in ``.gz``."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: not a valid gzip file ({exc}); re-download it") from None


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (optionally gzipped) with ``ndim`` dimensions.

    The header is the magic ``0x0000 08 <ndim>`` then ``ndim`` big-endian uint32
    sizes; the file must hold exactly their product of bytes after it.
    """
    path = Path(path)
    data = _read_maybe_gzip(path)
    expected_magic = (_IDX_UBYTE << 8) | ndim
    header = 4 + 4 * ndim
    if len(data) < 4:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes); re-download it")
    magic = int.from_bytes(data[:4], "big")
    if magic != expected_magic:
        raise DataError(
            f"{path}: bad IDX magic 0x{magic:08x}, expected 0x{expected_magic:08x}; "
            "the file is not this IDX file, re-download it"
        )
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes); re-download it")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    size = math.prod(dims)
    if len(data) != header + size:
        problem = "truncated" if len(data) < header + size else "too long"
        raise DataError(
            f"{path}: {problem} IDX file: dims {list(dims)} need {header + size} bytes, "
            f"found {len(data)}; re-download it"
        )
    return np.frombuffer(data, dtype=np.uint8, count=size, offset=header).reshape(dims)


def _find_idx(directory: Path, base: str) -> Path | None:
    """``directory/base`` or ``directory/base.gz``, whichever exists first."""
    for candidate in (directory / base, directory / f"{base}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _idx_directories(req: _Request) -> list[Path]:
    """Where to look for the IDX files: the user's folder, or the dataset's defaults."""
    if req.data_dir is not None:
        return [req.data_dir]
    if req.info.name == "fashion-mnist":
        return [DEBIAN_FASHION_MNIST, Path("data") / "fashion-mnist"]
    return [Path("data") / "mnist"]


def _idx_missing(req: _Request, directories: list[Path]) -> DataError:
    """The one-line error for IDX files that are nowhere to be found."""
    expected = ", ".join(f"{base}[.gz]" for base in IDX_FILES[req.split])
    where = " or ".join(str(d) for d in directories)
    if req.info.name == "fashion-mnist":
        fix = (
            "install Debian's dataset-fashion-mnist package or download them from "
            f"{FASHION_MNIST_URL} and pass --data-dir"
        )
    else:
        fix = f"download them from {MNIST_URL} into ./data/mnist or pass --data-dir"
    return DataError(f"{req.info.name}: no IDX files in {where} (expected {expected}); {fix}")


def _load_idx(req: _Request) -> tuple[np.ndarray, np.ndarray]:
    """Images and labels of one MNIST-style split, images scaled to [0, 1]."""
    image_base, label_base = IDX_FILES[req.split]
    directories = _idx_directories(req)
    for directory in directories:
        image_path = _find_idx(directory, image_base)
        label_path = _find_idx(directory, label_base)
        if image_path is not None and label_path is not None:
            break
    else:
        raise _idx_missing(req, directories)
    images = read_idx(image_path, 3)
    labels = read_idx(label_path, 1)
    if images.shape[1:] != req.info.input_shape[1:]:
        raise DataError(
            f"{image_path}: images are {images.shape[1]}x{images.shape[2]}, expected "
            f"{req.info.input_shape[1]}x{req.info.input_shape[2]}; use the {req.info.name} files"
        )
    if len(images) != len(labels):
        raise DataError(
            f"{image_path}: {len(images)} images but {len(labels)} labels in {label_path}; "
            "the files belong to different sets, re-download them"
        )
    n = req.take(len(labels))
    labels = labels[:n].astype(np.int64)
    _check_labels(str(label_path), labels, req.info.num_classes)
    x = images[:n, None].astype(np.float32) / np.float32(255.0)
    return x, labels


# --------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (python version).
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _CifarLayout:
    folder: str
    batches: dict[str, tuple[str, ...]]
    label_key: str


_CIFAR: dict[str, _CifarLayout] = {
    "cifar10": _CifarLayout(
        "cifar-10-batches-py",
        {"train": tuple(f"data_batch_{i}" for i in range(1, 6)), "test": ("test_batch",)},
        "labels",
    ),
    "cifar100": _CifarLayout(
        "cifar-100-python", {"train": ("train",), "test": ("test",)}, "fine_labels"
    ),
}

_NDARRAY_RECONSTRUCT = np.ndarray.__reduce__(np.zeros(1))[0]
_PICKLE_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy.core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _NDARRAY_RECONSTRUCT,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    # Python 3's protocol-2 pickles spell bytes as _codecs.encode(str, "latin1").
    ("_codecs", "encode"): codecs.encode,
}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and NumPy arrays only: a CIFAR batch needs no more,
    and refusing every other class keeps a tampered file from running code."""

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _PICKLE_ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}") from None


def _unpickle_batch(path: Path) -> dict[Any, Any]:
    """Load one CIFAR batch file (Python 2 pickles, hence ``encoding='bytes'``)."""
    try:
        with path.open("rb") as handle:
            batch = _ArrayOnlyUnpickler(handle, encoding="bytes").load()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    except Exception as exc:  # a corrupt pickle can raise almost anything
        raise DataError(
            f"{path}: not a valid CIFAR batch ({type(exc).__name__}: {exc}); re-download it"
        ) from None
    if not isinstance(batch, dict):
        raise DataError(f"{path}: not a CIFAR batch (a {type(batch).__name__}); re-download it")
    return batch


def _batch_field(batch: dict[Any, Any], key: str, path: Path) -> Any:
    """``batch[key]`` whether the pickle stored the key as bytes (the original) or str."""
    for candidate in (key.encode(), key):
        if candidate in batch:
            return batch[candidate]
    raise DataError(f"{path}: CIFAR batch has no {key!r} entry; re-download it")


def _read_cifar_batch(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    """Images ``[N, 3, 32, 32]`` uint8 and labels ``[N]`` of one batch file."""
    batch = _unpickle_batch(path)
    try:
        data = np.asarray(_batch_field(batch, "data", path), dtype=np.uint8)
        labels = np.asarray(_batch_field(batch, label_key, path), dtype=np.int64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{path}: malformed CIFAR batch ({exc}); re-download it") from None
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or labels.shape != (len(data),):
        raise DataError(
            f"{path}: CIFAR batch has data {list(data.shape)} and {labels.size} labels, "
            "expected [N, 3072] and N; re-download it"
        )
    return data.reshape(-1, 3, 32, 32), labels


def _cifar_directory(req: _Request, layout: _CifarLayout) -> Path:
    """The batches folder: ``data_dir/<folder>``, or ``data_dir`` itself if it is that folder."""
    base = req.data_dir if req.data_dir is not None else Path("data")
    first = layout.batches[req.split][0]
    for candidate in (base / layout.folder, base):
        if (candidate / first).is_file():
            return candidate
    raise DataError(
        f"{req.info.name}: no {layout.folder}/{first} under {base}; download the CIFAR "
        f"'python version' from {CIFAR_URL}, extract it into ./data or pass --data-dir"
    )


def _load_cifar(req: _Request) -> tuple[np.ndarray, np.ndarray]:
    """Images scaled to [0, 1] and labels (fine labels for CIFAR-100) of one split."""
    layout = _CIFAR[req.info.name]
    directory = _cifar_directory(req, layout)
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    have = 0
    for name in layout.batches[req.split]:
        if req.limit is not None and have >= req.limit:
            break
        path = directory / name
        if not path.is_file():
            raise DataError(
                f"{req.info.name}: {path} is missing; re-extract the CIFAR archive from {CIFAR_URL}"
            )
        data, batch_labels = _read_cifar_batch(path, layout.label_key)
        _check_labels(str(path), batch_labels, req.info.num_classes)
        images.append(data)
        labels.append(batch_labels)
        have += len(batch_labels)
    n = req.take(have)
    x = np.concatenate(images)[:n].astype(np.float32) / np.float32(255.0)
    return x, np.concatenate(labels)[:n]


# --------------------------------------------------------------------------
# Events to frames.
# --------------------------------------------------------------------------


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


def _check_addresses(where: str, events: Events, height: int, width: int) -> None:
    """Reject events outside the sensor (a sign of a corrupt or foreign file)."""
    if len(events.x) and (events.x.max() >= width or events.y.max() >= height):
        raise DataError(
            f"{where}: event address up to x={events.x.max()}, y={events.y.max()} outside the "
            f"{width}x{height} sensor; the file is corrupt or of another dataset"
        )


# --------------------------------------------------------------------------
# N-MNIST.
# --------------------------------------------------------------------------

_NMNIST_EVENT_BYTES = 5
_NMNIST_SPLIT_DIRS = {"train": "Train", "test": "Test"}


def read_nmnist(path: str | Path) -> Events:
    """Decode one N-MNIST ``.bin`` file: 40-bit big-endian events.

    Byte 0 is x, byte 1 is y, bit 7 of byte 2 the polarity, and the remaining
    23 bits (byte 2's low 7 bits, bytes 3 and 4) the timestamp in microseconds.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    if len(raw) % _NMNIST_EVENT_BYTES:
        raise DataError(
            f"{path}: {len(raw)} bytes is not a whole number of 5-byte N-MNIST events; "
            f"the file is truncated or not N-MNIST, re-download it from {NMNIST_URL}"
        )
    b = np.frombuffer(raw, dtype=np.uint8).reshape(-1, _NMNIST_EVENT_BYTES).astype(np.int64)
    t = ((b[:, 2] & 0x7F) << 16) | (b[:, 3] << 8) | b[:, 4]
    return Events(x=b[:, 0], y=b[:, 1], p=b[:, 2] >> 7, t=t)


def _nmnist_files(req: _Request) -> list[tuple[Path, int]]:
    """The split's ``(file, digit)`` pairs, interleaved digit by digit.

    Interleaving (0, 1, ..., 9, 0, 1, ...) keeps the first ``limit`` samples
    balanced across classes, as the shuffled IDX files are.
    """
    base = req.data_dir if req.data_dir is not None else Path("data") / "nmnist"
    split_dir = base / _NMNIST_SPLIT_DIRS[req.split]
    per_digit = [sorted((split_dir / str(d)).glob("*.bin")) for d in range(10)]
    if not any(per_digit):
        raise DataError(
            f"nmnist: no {split_dir}/<digit>/*.bin files; download Train.zip and Test.zip from "
            f"{NMNIST_URL}, extract them into ./data/nmnist or pass --data-dir"
        )
    longest = max(len(files) for files in per_digit)
    return [
        (files[i], digit)
        for i in range(longest)
        for digit, files in enumerate(per_digit)
        if i < len(files)
    ]


def _load_nmnist(req: _Request) -> tuple[np.ndarray, np.ndarray]:
    """Event frames of N-MNIST; each sample's bins span its first to its last event."""
    _, height, width = req.info.input_shape
    files = _nmnist_files(req)[: req.limit]
    frames = np.zeros((len(files), req.time_steps, 2, height, width), dtype=np.float32)
    labels = np.empty(len(files), dtype=np.int64)
    for i, (path, digit) in enumerate(files):
        events = read_nmnist(path)
        _check_addresses(str(path), events, height, width)
        if len(events.t):
            frames[i] = events_to_frames(
                events, int(events.t.min()), int(events.t.max()) + 1, req.time_steps, height, width
            )
        labels[i] = digit
    return frames, labels


# --------------------------------------------------------------------------
# DVS128 Gesture (AEDAT 3.1).
# --------------------------------------------------------------------------

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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror}); check the file") from None
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


def _gesture_directory(req: _Request) -> Path:
    """The ``DvsGesture`` folder: ``data_dir`` itself, or its ``DvsGesture`` subfolder."""
    base = req.data_dir if req.data_dir is not None else Path("data") / "DvsGesture"
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


def _load_gesture(req: _Request) -> tuple[np.ndarray, np.ndarray]:
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
        _check_addresses(str(trial), events, height, width)
        for label, start, end in segments[: None if req.limit is None else req.limit - len(labels)]:
            frames.append(events_to_frames(events, start, end, req.time_steps, height, width))
            labels.append(label)
    shape = (len(frames), req.time_steps, 2, height, width)
    x = np.stack(frames) if frames else np.zeros(shape, dtype=np.float32)
    return x, np.asarray(labels, dtype=np.int64)


_LOADERS: dict[str, Callable[[_Request], tuple[np.ndarray, np.ndarray]]] = {
    "digits": _load_digits,
    "mnist": _load_idx,
    "fashion-mnist": _load_idx,
    "cifar10": _load_cifar,
    "cifar100": _load_cifar,
    "nmnist": _load_nmnist,
    "dvs-gesture": _load_gesture,
}
