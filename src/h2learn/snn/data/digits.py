"""scikit-learn's bundled 8x8 digits: the one dataset that always works offline."""

from __future__ import annotations

import numpy as np

from h2learn.snn.data.base import DatasetInfo, LoadRequest


def load_digits(req: LoadRequest) -> tuple[np.ndarray, np.ndarray]:
    """The 8x8 digits, pixels / 16, in a fixed stratified 75/25 split."""
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None]
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=0, stratify=digits.target
    )
    x, y = (x_train, y_train) if req.split == "train" else (x_test, y_test)
    n = req.take(len(y))
    return x[:n], y[:n]


DIGITS = DatasetInfo(
    "digits",
    (1, 8, 8),
    10,
    "image",
    "digits-mlp",
    "none: scikit-learn ships the 8x8 digits (1797 images)",
    loader=load_digits,
)
