"""The dataset registry, the arguments of ``load_dataset``, and scikit-learn's digits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from h2learn.errors import DataError
from h2learn.snn.data import (
    ALIASES,
    DATASETS,
    LoadRequest,
    dataset_info,
    dataset_names,
    load_dataset,
)
from h2learn.spec import ZOO


def test_registry_names_aliases_and_models():
    assert dataset_names() == [
        "digits",
        "mnist",
        "fashion-mnist",
        "cifar10",
        "cifar100",
        "nmnist",
        "dvs-gesture",
        "cifar10-dvs",
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


def test_one_registry_holds_names_aliases_and_loaders():
    # The aliases the package accepted before it was split, as docs/datasets.md lists them.
    assert ALIASES == {
        "fmnist": "fashion-mnist",
        "cifar-10": "cifar10",
        "cifar-100": "cifar100",
        "n-mnist": "nmnist",
        "dvsgesture": "dvs-gesture",
        "dvs-cifar10": "cifar10-dvs",
        "cifar10dvs": "cifar10-dvs",
    }
    for name, info in DATASETS.items():
        assert info.name == name and callable(info.loader)
        assert not set(info.aliases) & set(DATASETS)
        assert all(ALIASES[alias] == name for alias in info.aliases)


def test_load_request_take_and_folder(tmp_path):
    info = DATASETS["digits"]
    everything = LoadRequest(info, "train", None, 1, None)
    assert everything.take(7) == 7 and everything.folder("data/x") == Path("data/x")
    capped = LoadRequest(info, "test", tmp_path, 1, 5)
    assert capped.take(7) == 5 and capped.take(3) == 3
    assert capped.folder("data/x") == tmp_path
