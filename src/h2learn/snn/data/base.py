"""What a dataset is to the rest of h2learn (:class:`DatasetInfo`), and one load request.

Each dataset module (``digits``, ``idx``, ``cifar``, ``nmnist``, ``dvs_gesture``,
``cifar10_dvs``) declares its :class:`DatasetInfo` next to its loader; the
package ``__init__`` collects them into the one registry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")

#: A loader turns a validated request into ``(x, y)`` NumPy arrays.
Loader = Callable[["LoadRequest"], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class DatasetInfo:
    """What a dataset looks like to a model, which files it needs, and how to read them.

    ``input_shape`` is per sample per time step, ``(C, H, W)``.  ``default_model``
    names a zoo model (:data:`h2learn.spec.ZOO`); build it with this info's
    ``input_shape`` and ``num_classes`` when they differ from the model's own
    (N-MNIST's 2x34x34 frames on ``fmnist-conv``, CIFAR-100 on ``cifar-vgg``).
    ``aliases`` are other accepted names; ``loader`` reads one split (the
    registry in :mod:`h2learn.snn.data` calls it), so name, aliases and reader
    live in one entry.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    kind: Literal["image", "events"]
    default_model: str
    files: str
    aliases: tuple[str, ...] = ()
    loader: Loader | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class LoadRequest:
    """One :func:`~h2learn.snn.data.load_dataset` call, validated, as a loader sees it."""

    info: DatasetInfo
    split: str
    data_dir: Path | None
    time_steps: int
    limit: int | None

    def take(self, count: int) -> int:
        """How many of ``count`` available samples to keep."""
        return count if self.limit is None else min(count, self.limit)

    def folder(self, default: str | Path) -> Path:
        """The user's ``data_dir``, or ``default`` (relative to the working directory)."""
        return self.data_dir if self.data_dir is not None else Path(default)
