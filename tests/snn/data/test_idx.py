"""MNIST / Fashion-MNIST loaders on IDX files written here byte by byte from the format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from h2learn.errors import DataError
from h2learn.snn import data
from h2learn.snn.data import load_dataset

from .helpers import idx_bytes, write_idx_set


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
