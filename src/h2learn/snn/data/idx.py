"""MNIST and Fashion-MNIST: IDX files (optionally gzipped), checked for magic, dimensions, length.

Fashion-MNIST defaults to Debian's ``dataset-fashion-mnist`` package, which
installs the four gzipped IDX files flat in ``/usr/share/datasets/fashion-mnist/``.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np

from h2learn.errors import DataError
from h2learn.snn.data.base import DatasetInfo, LoadRequest
from h2learn.snn.data.files import check_labels, read_maybe_gzip

#: Where Debian's ``dataset-fashion-mnist`` package installs the IDX files.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

MNIST_URL = "https://yann.lecun.com/exdb/mnist/"
FASHION_MNIST_URL = "https://github.com/zalandoresearch/fashion-mnist"

IDX_FILES: dict[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_UBYTE = 0x08


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (optionally gzipped) with ``ndim`` dimensions.

    The header is the magic ``0x0000 08 <ndim>`` then ``ndim`` big-endian uint32
    sizes; the file must hold exactly their product of bytes after it.
    """
    path = Path(path)
    data = read_maybe_gzip(path)
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


def _idx_directories(req: LoadRequest) -> list[Path]:
    """Where to look for the IDX files: the user's folder, or the dataset's defaults."""
    if req.data_dir is not None:
        return [req.data_dir]
    if req.info.name == "fashion-mnist":
        return [DEBIAN_FASHION_MNIST, Path("data") / "fashion-mnist"]
    return [Path("data") / "mnist"]


def _idx_missing(req: LoadRequest, directories: list[Path]) -> DataError:
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


def load_idx(req: LoadRequest) -> tuple[np.ndarray, np.ndarray]:
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
    check_labels(str(label_path), labels, req.info.num_classes)
    x = images[:n, None].astype(np.float32) / np.float32(255.0)
    return x, labels


MNIST = DatasetInfo(
    "mnist",
    (1, 28, 28),
    10,
    "image",
    "fmnist-conv",
    "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    f"t10k-labels-idx1-ubyte (each may be .gz) from {MNIST_URL} in ./data/mnist",
    loader=load_idx,
)
FASHION_MNIST = DatasetInfo(
    "fashion-mnist",
    (1, 28, 28),
    10,
    "image",
    "fmnist-conv",
    "the four IDX files (each may be .gz): apt-get install dataset-fashion-mnist "
    f"(puts them in {DEBIAN_FASHION_MNIST}) or download from {FASHION_MNIST_URL} "
    "into ./data/fashion-mnist",
    aliases=("fmnist",),
    loader=load_idx,
)
