"""Trainer: accuracy on digits, deterministic resume, divergence and checkpoint errors."""

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from h2learn.errors import CheckpointError, H2LearnError, TrainingDiverged
from h2learn.snn import train as train_module
from h2learn.snn.train import TrainConfig, load_model, train


def test_digits_defaults_reach_97_percent(tmp_path):
    metrics = train(TrainConfig(), tmp_path)
    assert metrics["test_accuracy"] >= 0.97
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["test_accuracy"] == metrics["test_accuracy"]
    assert len(saved["history"]) == 30 and saved["train_seconds"] > 0
    model = load_model(tmp_path / "checkpoint.pt")
    assert model.spec.name == "digits-mlp"


SMALL = dict(dataset="digits", epochs=3, limit_train=256, limit_test=64, batch_size=32)


def test_killed_and_resumed_run_ends_with_identical_weights(tmp_path):
    config = TrainConfig(**SMALL)
    train(config, tmp_path / "straight")

    def kill(epoch, step, steps, loss):
        if epoch == 1 and step == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=kill)
    resumed = train(config, tmp_path / "killed", resume=True)
    assert resumed["epochs"] == 3
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_same_seed_same_weights_other_seed_differs(tmp_path):
    config = TrainConfig(**{**SMALL, "epochs": 1})
    runs = [train(config, tmp_path / "a"), train(config, tmp_path / "b")]
    other = train(TrainConfig(**{**SMALL, "epochs": 1, "seed": 5}), tmp_path / "c")
    assert runs[0]["history"][0]["train_loss"] == runs[1]["history"][0]["train_loss"]
    assert other["history"][0]["train_loss"] != runs[0]["history"][0]["train_loss"]


def test_augmented_runs_are_deterministic_and_differ_from_plain(tmp_path):
    config = TrainConfig(**{**SMALL, "epochs": 1, "augment": True})
    runs = [train(config, tmp_path / "a"), train(config, tmp_path / "b")]
    plain = train(TrainConfig(**{**SMALL, "epochs": 1}), tmp_path / "c")
    first, second = (run["history"][0] for run in runs)
    assert {**first, "seconds": 0} == {**second, "seconds": 0}
    assert plain["history"][0]["train_loss"] != runs[0]["history"][0]["train_loss"]


def test_divergence_is_reported_with_its_step(tmp_path, monkeypatch):
    def poisoned(name, split, *args, **kwargs):
        x = torch.rand(64, 1, 8, 8)
        x[40] = float("nan")
        return TensorDataset(x, torch.zeros(64, dtype=torch.long))

    monkeypatch.setattr(train_module, "load_dataset", poisoned)
    config = TrainConfig(dataset="digits", epochs=1, batch_size=16, schedule="constant")
    with pytest.raises(TrainingDiverged, match=r"epoch 1, step \d"):
        train(config, tmp_path)


def test_corrupt_checkpoint_gives_one_line_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt or truncated") as info:
        train(TrainConfig(**SMALL), tmp_path, resume=True)
    assert "\n" not in str(info.value)


def test_resume_refuses_other_settings_and_existing_runs(tmp_path):
    train(TrainConfig(**{**SMALL, "epochs": 1}), tmp_path)
    with pytest.raises(CheckpointError, match="different settings"):
        train(TrainConfig(**{**SMALL, "epochs": 1, "lr": 0.1}), tmp_path, resume=True)
    with pytest.raises(H2LearnError, match="already holds a run"):
        train(TrainConfig(**{**SMALL, "epochs": 1}), tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        train(TrainConfig(**SMALL), tmp_path / "empty", resume=True)


def test_mse_loss_and_sgd_train(tmp_path):
    metrics = train(
        TrainConfig(**{**SMALL, "loss": "mse", "optimizer": "sgd", "lr": 0.05}), tmp_path
    )
    assert 0.0 <= metrics["test_accuracy"] <= 1.0


def test_bad_config_values_are_rejected():
    with pytest.raises(ValueError, match="unknown model"):
        TrainConfig(model="nope")
    with pytest.raises(ValueError):
        TrainConfig(time_steps=0)


def test_resumed_poisson_run_sees_the_same_spikes(tmp_path):
    config = TrainConfig(**{**SMALL, "epochs": 2, "limit_train": 96, "encoding": "poisson"})
    train(config, tmp_path / "straight")

    def kill(epoch, step, steps, loss):
        if epoch == 1 and step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(config, tmp_path / "killed", progress=kill)
    resumed = train(config, tmp_path / "killed", resume=True)
    assert resumed["epochs"] == 2
    a = torch.load(tmp_path / "straight" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=False)["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_engine_format_training_refuses_several_processes(tmp_path, monkeypatch):
    from h2learn.snn.distributed import World

    config = TrainConfig(**{**SMALL, "engine_format": "fixed8.8"})
    model = train_module.build_model(config)
    with pytest.raises(H2LearnError, match="one process"):
        train_module._stepper(config, model, World(rank=0, size=2))
