"""Sparsity across training: traces recorded during training, their densities, the report."""

from __future__ import annotations

import pytest
import torch

from h2learn.errors import H2LearnError
from h2learn.report.characterization import markdown_table, write_characterization
from h2learn.snn.train import CHECKPOINT_NAME, TrainConfig, load_checkpoint, train
from h2learn.workload.characterize import (
    DENSITY_FIELDS,
    characterize,
    density_series,
    mean_densities,
    trace_path,
)
from h2learn.workload.stats import density
from h2learn.workload.trace import Trace


def small_config(**changes) -> TrainConfig:
    base = dict(dataset="digits", epochs=2, batch_size=32, limit_train=128, limit_test=64, seed=3)
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture(scope="module")
def characterized(tmp_path_factory):
    out = tmp_path_factory.mktemp("characterize")
    summary = characterize(small_config(), out, trace_every=1, trace_batch=8)
    return out, summary


def test_a_trace_before_training_and_after_every_epoch(characterized):
    out, summary = characterized
    assert [row["epoch"] for row in summary["epochs"]] == [0, 1, 2]
    assert summary["epochs"][0]["test_accuracy"] is None
    assert all(0.0 <= row["test_accuracy"] <= 1.0 for row in summary["epochs"][1:])
    for epoch in (0, 1, 2):
        assert trace_path(out, epoch).is_file()


def test_densities_are_those_of_the_saved_traces(characterized):
    out, summary = characterized
    for row in summary["epochs"]:
        trace = Trace.load(out / row["trace"])
        assert trace.batch_size == 8
        for layer in row["layers"]:
            record = trace[layer["layer"]]
            for name, tensor in (("mask", "mask"), ("input", "input"), ("du_psum", "grad_psum")):
                if tensor in record.tensors:
                    assert layer[name] == density(record.tensors[tensor])
                else:
                    assert name not in layer
        assert any("mask" in layer for layer in row["layers"])


def test_recording_does_not_change_training(characterized, tmp_path):
    """The same config trained without recording ends with the same weights, bit for bit."""
    out, _ = characterized
    train(small_config(), tmp_path)
    plain = load_checkpoint(tmp_path / CHECKPOINT_NAME)["model"]
    recorded = load_checkpoint(out / CHECKPOINT_NAME)["model"]
    assert plain.keys() == recorded.keys()
    for name, tensor in plain.items():
        assert torch.equal(tensor, recorded[name]), name


def test_densities_move_with_training(characterized):
    """Weights change between epochs, so the recorded masks are not all identical."""
    _, summary = characterized
    masks = density_series(summary, "mask")
    assert masks and all(len(values) == 3 for values in masks.values())
    assert any(len(set(values)) > 1 for values in masks.values())


def test_mean_densities_and_report(characterized, tmp_path):
    _, summary = characterized
    last = mean_densities(summary)
    first = mean_densities(summary, epoch=0)
    assert set(last) <= set(DENSITY_FIELDS) and "mask" in last
    assert 0.0 <= first["mask"] <= 1.0
    with pytest.raises(H2LearnError, match="epoch 7 was not recorded"):
        mean_densities(summary, epoch=7)
    table = markdown_table(summary)
    assert table.count("\n| 2 |") == len(summary["epochs"][-1]["layers"])
    files = write_characterization(summary, tmp_path)
    assert files["plot"].stat().st_size > 0 and files["table"].read_text().startswith("# ")


def test_trace_every_skips_epochs_but_keeps_the_last(tmp_path):
    summary = characterize(small_config(epochs=3, limit_train=64), tmp_path, trace_every=2)
    assert [row["epoch"] for row in summary["epochs"]] == [0, 2, 3]


def test_bad_options_and_reuse_give_one_line(characterized, tmp_path):
    out, _ = characterized
    with pytest.raises(H2LearnError, match="trace_every=0"):
        characterize(small_config(), tmp_path, trace_every=0)
    with pytest.raises(H2LearnError, match="trace_batch=0"):
        characterize(small_config(), tmp_path, trace_batch=0)
    with pytest.raises(H2LearnError, match="already holds a run"):
        characterize(small_config(), out)
