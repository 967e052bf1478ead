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

One module per file format, one :class:`DatasetInfo` (name, aliases, shape,
files and loader) per dataset, declared next to its reader:

* :mod:`.digits`: scikit-learn's 8x8 digits;
* :mod:`.idx`: MNIST / Fashion-MNIST IDX files (optionally gzipped);
* :mod:`.cifar`: CIFAR-10 / CIFAR-100 pickled batches (NumPy arrays only);
* :mod:`.nmnist`: N-MNIST ``.bin`` files (decoded by tonic);
* :mod:`.dvs_gesture`: DVS128 Gesture AEDAT 3.1 recordings and label files;
* :mod:`.cifar10_dvs`: CIFAR10-DVS AEDAT 2.0 recordings (decoded by tonic);
* :mod:`.events`: :class:`Events` and :func:`events_to_frames`, shared by the
  event datasets; :mod:`.files`: reading a file or failing in one line;
  :mod:`.base`: :class:`DatasetInfo` and the validated request a loader gets.

This module holds the one registry, :data:`DATASETS`, and re-exports every
public name, so ``from h2learn.snn.data import ...`` works as before the split.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import TensorDataset

from h2learn.errors import DataError
from h2learn.snn.data.base import SPLITS, DatasetInfo, LoadRequest, Split
from h2learn.snn.data.cifar import CIFAR10, CIFAR100, CIFAR_URL
from h2learn.snn.data.cifar10_dvs import (
    CIFAR10_DVS,
    CIFAR10_DVS_CLASSES,
    CIFAR10_DVS_URL,
    read_cifar10_dvs,
)
from h2learn.snn.data.digits import DIGITS
from h2learn.snn.data.dvs_gesture import (
    DVS_GESTURE,
    DVS_GESTURE_URL,
    read_aedat_polarity,
    read_gesture_labels,
)
from h2learn.snn.data.events import Events, events_to_frames
from h2learn.snn.data.idx import (
    DEBIAN_FASHION_MNIST,
    FASHION_MNIST,
    FASHION_MNIST_URL,
    IDX_FILES,
    MNIST,
    MNIST_URL,
    read_idx,
)
from h2learn.snn.data.nmnist import NMNIST, NMNIST_URL, read_nmnist

__all__ = [
    "ALIASES",
    "CIFAR10_DVS_CLASSES",
    "CIFAR10_DVS_URL",
    "CIFAR_URL",
    "DATASETS",
    "DEBIAN_FASHION_MNIST",
    "DVS_GESTURE_URL",
    "FASHION_MNIST_URL",
    "IDX_FILES",
    "MNIST_URL",
    "NMNIST_URL",
    "SPLITS",
    "DatasetInfo",
    "Events",
    "LoadRequest",
    "Split",
    "dataset_info",
    "dataset_names",
    "events_to_frames",
    "load_dataset",
    "read_aedat_polarity",
    "read_cifar10_dvs",
    "read_gesture_labels",
    "read_idx",
    "read_nmnist",
]


def _registry(*infos: DatasetInfo) -> dict[str, DatasetInfo]:
    """``{name: info}``, refusing an entry without a loader or a name used twice."""
    registry: dict[str, DatasetInfo] = {}
    for info in infos:
        if info.loader is None:
            raise ValueError(f"dataset {info.name!r} has no loader")
        for key in (info.name, *info.aliases):
            if key in registry or any(key in other.aliases for other in registry.values()):
                raise ValueError(f"dataset name or alias {key!r} is used twice")
        registry[info.name] = info
    return registry


#: Every dataset, by canonical name, in a stable order.
DATASETS: dict[str, DatasetInfo] = _registry(
    DIGITS, MNIST, FASHION_MNIST, CIFAR10, CIFAR100, NMNIST, DVS_GESTURE, CIFAR10_DVS
)

#: Other accepted names, derived from the entries: ``{alias: canonical name}``.
ALIASES: dict[str, str] = {alias: info.name for info in DATASETS.values() for alias in info.aliases}


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
    assert info.loader is not None  # _registry admits no entry without one
    x, y = info.loader(LoadRequest(info, split, directory, time_steps, limit))
    return TensorDataset(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)),
    )
