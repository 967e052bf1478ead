"""Spike encodings: against brute-force references, determinism, training and traces."""

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from h2learn.snn.encoding import (
    DELTA_THRESHOLD,
    SACCADE,
    EncodingError,
    encode,
    encoded_shape,
    sample_generators,
)
from h2learn.snn.train import TrainConfig, build_model, encoded_input, train


def images(n=3, c=1, h=6, w=5, seed=0):
    x = torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))
    x[x < 0.3] = 0.0  # some black pixels
    x[0, 0, 0, 0] = 1.0
    return x


def test_unknown_encoding_is_one_line_error():
    with pytest.raises(EncodingError, match="unknown encoding 'morse'") as info:
        encode(images(), "morse", 4)
    assert "\n" not in str(info.value)
    with pytest.raises(ValidationError, match="unknown encoding"):
        TrainConfig(encoding="morse")


def test_cli_rejects_bad_encoding_in_one_line():
    for args, message in (
        (["encodings", "--only", "morse"], "unknown encoding"),
        (["encodings", "--dataset", "nmnist"], "nmnist is an event dataset"),
    ):
        result = subprocess.run(
            [sys.executable, "-m", "h2learn.cli", *args], capture_output=True, text=True
        )
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert result.returncode == 2 and len(lines) == 1, result.stderr
        assert message in lines[0] and "Traceback" not in result.stderr


def test_event_dataset_refuses_spike_encoding():
    with pytest.raises(ValidationError, match="event dataset"):
        TrainConfig(dataset="nmnist", encoding="poisson")


def test_direct_is_the_image_itself():
    x = images()
    assert encode(x, "direct", 4) is x


def test_latency_matches_a_loop_over_pixels():
    x, steps = images(), 7
    spikes = encode(x, "latency", steps)
    assert spikes.shape == (steps, *x.shape)
    expected = torch.zeros_like(spikes)
    for index in np.ndindex(*x.shape):
        value = float(x[index])
        if value > 0:
            expected[(min(math.floor((1 - value) * steps), steps - 1), *index)] = 1
    assert torch.equal(spikes, expected)
    assert spikes[0, 0, 0, 0, 0] == 1  # the brightest pixel fires first


def test_delta_matches_a_loop_over_pixels():
    x, steps = images(n=2, c=2), 6
    events = encode(x, "delta", steps)
    assert events.shape == (steps, 2, 4, 6, 5)
    frames, y, xx = [], 0, 0
    arr = x.numpy()
    for t in range(steps):
        if t:
            dy, dx = SACCADE[(t - 1) % len(SACCADE)]
            y, xx = y + dy, xx + dx
        frame = np.zeros_like(arr)
        for i in range(arr.shape[2]):
            for j in range(arr.shape[3]):
                si, sj = i - y, j - xx
                if 0 <= si < arr.shape[2] and 0 <= sj < arr.shape[3]:
                    frame[:, :, i, j] = arr[:, :, si, sj]
        frames.append(frame)
    previous = np.zeros_like(arr)
    for t, frame in enumerate(frames):
        change = frame - previous
        for c in range(2):
            off = events[t, :, 2 * c].numpy().astype(bool)
            on = events[t, :, 2 * c + 1].numpy().astype(bool)
            assert np.array_equal(off, change[:, c] < -DELTA_THRESHOLD)
            assert np.array_equal(on, change[:, c] > DELTA_THRESHOLD)
        previous = frame
    assert encoded_shape("delta", (2, 6, 5)) == (4, 6, 5)


def test_poisson_rate_is_the_intensity():
    x = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).view(5, 1, 1, 1)
    steps = 4000
    spikes = encode(x, "poisson", steps, sample_generators(0, 1, torch.arange(5)))
    rate = spikes.mean(0).flatten()
    sigma = torch.sqrt(x.flatten() * (1 - x.flatten()) / steps)
    assert torch.all((rate - x.flatten()).abs() <= 5 * sigma + 1e-12)
    assert rate[0] == 0 and rate[-1] == 1


def test_poisson_is_deterministic_and_independent_of_batch_composition():
    x = images(n=4)
    rows = torch.tensor([10, 11, 12, 13])
    a = encode(x, "poisson", 5, sample_generators(3, 2, rows))
    b = encode(x, "poisson", 5, sample_generators(3, 2, rows))
    assert torch.equal(a, b)
    alone = encode(x[2:3], "poisson", 5, sample_generators(3, 2, rows[2:3]))
    assert torch.equal(alone[:, 0], a[:, 2])  # a sample's spikes do not depend on its batch
    other_seed = encode(x, "poisson", 5, sample_generators(4, 2, rows))
    other_epoch = encode(x, "poisson", 5, sample_generators(3, 3, rows))
    assert not torch.equal(a, other_seed) and not torch.equal(a, other_epoch)


def test_spike_encoded_model_has_binary_first_layer():
    config = TrainConfig(encoding="delta")
    model = build_model(config)
    assert model.spec.input_kind == "spikes"
    assert model.spec.input_shape == (2, 8, 8)
    assert model.spec.layers[0].binary_input
    x = images(n=2, h=8, w=8)
    inputs = encoded_input(x, model, "delta", 0)
    assert inputs.shape == (model.spec.time_steps, 2, 2, 8, 8)
    assert model(inputs).shape == (2, 10)


SMALL = dict(dataset="digits", epochs=1, limit_train=128, limit_test=64, batch_size=32)


def test_poisson_training_is_deterministic_and_learns(tmp_path):
    config = TrainConfig(**SMALL, encoding="poisson")
    first = train(config, tmp_path / "a")
    second = train(config, tmp_path / "b")
    assert first["history"][0]["train_loss"] == second["history"][0]["train_loss"]
    assert first["test_accuracy"] == second["test_accuracy"]
    plain = train(TrainConfig(**SMALL), tmp_path / "c")
    assert plain["history"][0]["train_loss"] != first["history"][0]["train_loss"]


def test_trace_of_latency_coded_batch_has_one_spike_per_lit_pixel():
    from h2learn.snn.data import load_dataset
    from h2learn.workload.record import record_from_dataset
    from h2learn.workload.stats import trace_stats

    trace = record_from_dataset(dataset="digits", batch_size=8, encoding="latency")
    first = trace.layers[0]
    assert trace.spec.input_kind == "spikes" and first.tensors["input"].dtype == torch.bool
    pixels = load_dataset("digits", "train", limit=8).tensors[0]
    lit = float((pixels > 0).float().mean())
    stats = trace_stats(trace)
    assert stats["encoding"] == "latency" and stats["input_kind"] == "spikes"
    assert stats["layers"][0]["input"] == pytest.approx(lit / trace.time_steps, rel=1e-6)
