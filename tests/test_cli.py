"""The command line: one-line errors, listings, a short training run."""

import json
import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "h2learn.cli", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "nope"], "unknown model"),
        (["train", "--dataset", "nope"], "unknown dataset"),
        (["train", "--time-steps", "0"], "time_steps"),
        (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "cifar10"),
        (["train", "--resume", "--out", "/nonexistent/run"], "no checkpoint"),
        (["train", "--model", "resnet"], "below 1x1"),
    ],
)
def test_bad_input_gives_one_line_error(args, message):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr


def test_models_and_datasets_list_everything():
    listing = run("models").stdout
    for name in (
        "digits-mlp",
        "fmnist-conv",
        "cifar-vgg",
        "dvs-gesture",
        "dvs-cifar10",
        "alexnet",
        "resnet",
    ):
        assert name in listing
    assert "fashion-mnist" in run("datasets").stdout


def test_train_writes_metrics(tmp_path):
    out = tmp_path / "run"
    result = run(
        "train",
        "--epochs",
        "1",
        "--limit-train",
        "128",
        "--limit-test",
        "32",
        "--no-reset-grad",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and "train_seconds" in metrics
    assert metrics["config"]["reset_grad"] is False


def test_sweep_command_writes_results(tmp_path):
    out = tmp_path / "sweep"
    result = run(
        "sweep", "--vary", "k=2,4", "--model", "digits-mlp", "--workers", "1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(row["k"] for row in rows) == [2, 4]
