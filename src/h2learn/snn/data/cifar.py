"""CIFAR-10 and CIFAR-100: the pickled "python version" batches.

The batches are unpickled with a loader that only admits NumPy arrays (a
pickle can otherwise run code).
"""

from __future__ import annotations

import codecs
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from h2learn.errors import DataError
from h2learn.snn.data.base import DatasetInfo, LoadRequest
from h2learn.snn.data.files import cannot_read, check_labels

CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@dataclass(frozen=True)
class _CifarLayout:
    """Where one CIFAR release keeps its batches, and which key holds the labels."""

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
        raise cannot_read(path, exc) from None
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


def _cifar_directory(req: LoadRequest, layout: _CifarLayout) -> Path:
    """The batches folder: ``data_dir/<folder>``, or ``data_dir`` itself if it is that folder."""
    base = req.folder("data")
    first = layout.batches[req.split][0]
    for candidate in (base / layout.folder, base):
        if (candidate / first).is_file():
            return candidate
    raise DataError(
        f"{req.info.name}: no {layout.folder}/{first} under {base}; download the CIFAR "
        f"'python version' from {CIFAR_URL}, extract it into ./data or pass --data-dir"
    )


def load_cifar(req: LoadRequest) -> tuple[np.ndarray, np.ndarray]:
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
        check_labels(str(path), batch_labels, req.info.num_classes)
        images.append(data)
        labels.append(batch_labels)
        have += len(batch_labels)
    n = req.take(have)
    x = np.concatenate(images)[:n].astype(np.float32) / np.float32(255.0)
    return x, np.concatenate(labels)[:n]


CIFAR10 = DatasetInfo(
    "cifar10",
    (3, 32, 32),
    10,
    "image",
    "cifar-vgg",
    f"cifar-10-batches-py/ (the 'python version' from {CIFAR_URL}, extracted) in ./data",
    aliases=("cifar-10",),
    loader=load_cifar,
)
CIFAR100 = DatasetInfo(
    "cifar100",
    (3, 32, 32),
    100,
    "image",
    "cifar-vgg",
    f"cifar-100-python/ (the 'python version' from {CIFAR_URL}, extracted) in ./data",
    aliases=("cifar-100",),
    loader=load_cifar,
)
