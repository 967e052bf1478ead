"""Training in the engines' numerics: bit-identical to the engines on a trace, formats, errors."""

import subprocess
import sys

import pytest
import torch
from pydantic import ValidationError

from h2learn.arch.numerics import FormatError, parse_format
from h2learn.arch.verify import verify_trace
from h2learn.snn.engine_numerics import EngineNumerics, parse_training_format
from h2learn.snn.models import build
from h2learn.snn.train import TrainConfig, loss_fn
from h2learn.workload.record import record_engine_trace


def stepped_network(model, fmt, input_kind, steps=2, batch=4, **overrides):
    """A network after one optimizer step trained in ``fmt``, and a fresh batch."""
    torch.manual_seed(0)
    net = build(model, batch_size=batch, time_steps=steps, input_kind=input_kind, **overrides)
    shape = net.spec.input_shape
    gen = torch.Generator().manual_seed(1)
    if input_kind == "spikes":
        x = (torch.rand(steps, batch, *shape, generator=gen) < 0.3).float()
    else:
        x = torch.rand(batch, *shape, generator=gen)
    labels = torch.randint(0, net.spec.num_classes, (batch,), generator=gen)
    stepper = EngineNumerics(net, fmt)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
    loss_fn(stepper(x), labels, "ce").backward()
    optimizer.step()
    return stepper, x, labels


def assert_bit_identical(report):
    errors = {
        f"{layer['layer']}.{key}": value
        for layer in report["layers"]
        for key, value in layer.items()
        if key.endswith("_err")
    }
    assert errors and all(value == 0.0 for value in errors.values()), errors  # NaN fails too
    assert report["spike_mismatches"] == 0


@pytest.mark.parametrize(
    "fmt", ["fixed8.8", "fixed8.8:floor", "fixed6.10:stochastic", "float16", "bfloat16"]
)
@pytest.mark.parametrize("input_kind", ["image", "spikes"])
def test_training_step_is_bit_identical_to_the_engines(fmt, input_kind):
    stepper, x, labels = stepped_network("digits-mlp", fmt, input_kind)
    trace = record_engine_trace(stepper, x, labels)
    report = verify_trace(trace, k=stepper.k, fmt=fmt)
    assert_bit_identical(report)
    assert "backward_err" in report["layers"][1]  # the Backward Engine was checked too


@pytest.mark.parametrize("fmt", ["fixed8.8", "float16"])
def test_conv_network_step_is_bit_identical(fmt):
    stepper, x, labels = stepped_network(
        "fmnist-conv", fmt, "image", input_shape=(1, 4, 4), batch=2
    )
    trace = record_engine_trace(stepper, x, labels)
    assert_bit_identical(verify_trace(trace, k=stepper.k, fmt=fmt))
    assert trace["conv2"].tensors["lower_mask"].dtype == torch.bool  # routed through pooling


def test_fixed_point_tensors_lie_on_the_grid():
    stepper, x, labels = stepped_network("digits-mlp", "fixed6.6", "spikes")
    trace = record_engine_trace(stepper, x, labels)
    step = 2.0**-6
    for record in trace:
        for name in ("psum", "u", "grad_psum", "grad_weight", "grad_input", "grad_current"):
            if name in record.tensors:
                scaled = record.tensors[name].double() / step
                assert torch.equal(scaled, scaled.round()), (record.spec.name, name)


def test_recording_leaves_the_network_unchanged():
    stepper, x, labels = stepped_network("digits-mlp", "fixed8.8", "image")
    before = {k: v.clone() for k, v in stepper.network.state_dict().items()}
    record_engine_trace(stepper, x, labels)
    after = stepper.network.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_format_with_zero_fraction_bits_is_refused():
    assert parse_format("fixed8.0").frac_bits == 0  # a valid engine format ...
    with pytest.raises(FormatError, match="no fraction bits") as info:
        parse_training_format("fixed8.0")  # ... but not one to train in
    assert "\n" not in str(info.value)
    with pytest.raises(ValidationError, match="no fraction bits"):
        TrainConfig(engine_format="fixed8.0")
    with pytest.raises(ValidationError, match="unknown number format"):
        TrainConfig(engine_format="float12")
    with pytest.raises(FormatError, match="power of two"):
        EngineNumerics(build("digits-mlp"), "fixed8.8", loss_scale=1000)


def test_cli_bad_format_is_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "h2learn.cli", "train", "--engine-format", "fixed8.0"],
        capture_output=True,
        text=True,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "no fraction bits" in lines[0] and "Traceback" not in result.stderr


def test_engine_format_training_learns_digits(tmp_path):
    from h2learn.snn.train import train

    config = TrainConfig(
        dataset="digits", epochs=2, limit_train=256, limit_test=128, engine_format="fixed8.8"
    )
    metrics = train(config, tmp_path)
    assert metrics["test_accuracy"] > 0.5  # chance is 0.1
