"""``h2learn trace --encoding/--engine-format``: the options reach the recorded iteration."""

from __future__ import annotations

import sys

import pytest
import torch
from typer.testing import CliRunner

from h2learn.cli import app, main
from h2learn.snn.data import load_dataset
from h2learn.workload.trace import Trace


def record(tmp_path, *options: str) -> Trace:
    """Run ``h2learn trace`` on four digits with ``options``; return the written trace."""
    path = tmp_path / "trace.h2t"
    args = ["trace", "--dataset", "digits", "--batch-size", "4", "--out", str(path), *options]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return Trace.load(path)


def test_poisson_encoding_records_spike_input(tmp_path):
    trace = record(tmp_path, "--encoding", "poisson")
    assert trace.meta["source"]["encoding"] == "poisson"
    assert trace.spec.input_kind == "spikes"
    assert "engine_format" not in trace.meta["source"]  # PyTorch float by default
    spikes = trace.layers[0].tensors["input"]
    steps = trace.spec.time_steps
    assert spikes.shape == (steps, 4, 64)
    # Bernoulli draws with p = intensity: black pixels never fire, white ones always.
    images = load_dataset("digits", "train", limit=4).tensors[0].reshape(4, 64)
    assert torch.equal(spikes[:, images == 0], torch.zeros_like(spikes[:, images == 0]))
    assert torch.equal(spikes[:, images == 1], torch.ones_like(spikes[:, images == 1]))


def test_defaults_record_direct_float_input(tmp_path):
    trace = record(tmp_path)
    assert trace.meta["source"]["encoding"] == "direct"
    assert trace.spec.input_kind == "image"
    assert "engine_format" not in trace.meta["source"]


def test_engine_format_records_the_engines_iteration(tmp_path):
    trace = record(tmp_path, "--engine-format", "float16", "--encoding", "latency")
    assert trace.meta["source"]["engine_format"] == "float16"
    assert trace.meta["source"]["encoding"] == "latency"
    assert "loss_scale" in trace.meta  # only the engines' iteration carries one


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--encoding", "bogus"], "unknown encoding 'bogus'"),
        (["--engine-format", "fixed3"], "unknown number format 'fixed3'"),
        (["--dataset", "synthetic", "--model", "digits-mlp", "--encoding", "poisson"], "synthetic"),
    ],
)
def test_bad_option_gives_one_error_line(tmp_path, monkeypatch, capsys, options, message):
    out = str(tmp_path / "trace.h2t")
    argv = ["h2learn", "trace", "--batch-size", "4", "--out", out, *options]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert not (tmp_path / "trace.h2t").exists()
