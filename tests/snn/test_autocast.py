"""h2learn's layers under ``torch.autocast`` (CPU, bfloat16): what PyTorch's own layers do.

The spike matmuls take the autocast dtype as ``F.linear``/``F.conv2d`` would,
the neurons run in float32, the fused kernels step aside, and every parameter
gets a float32 gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from h2learn.snn.layers import _SpikeConv2d, _SpikeLinear
from h2learn.snn.models import build
from h2learn.snn.neuron import LIFParams, lif

AUTOCAST = {"device_type": "cpu", "dtype": torch.bfloat16}


def _spikes(*shape: int) -> torch.Tensor:
    return (torch.rand(*shape, generator=torch.Generator().manual_seed(1)) < 0.3).float()


def test_spike_linear_takes_the_autocast_dtype_like_f_linear():
    spikes = _spikes(12, 40)
    weight = torch.randn(7, 40, generator=torch.Generator().manual_seed(2), requires_grad=True)
    reference = weight.detach().clone().requires_grad_(True)
    with torch.autocast(**AUTOCAST):
        ours = _SpikeLinear.apply(spikes, weight)
        theirs = F.linear(spikes, reference)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    grad = torch.randn(12, 7, generator=torch.Generator().manual_seed(3)).to(torch.bfloat16)
    ours.backward(grad)
    theirs.backward(grad)
    assert weight.grad.dtype == reference.grad.dtype == torch.float32
    torch.testing.assert_close(weight.grad, reference.grad, rtol=1e-2, atol=1e-2)


def test_spike_conv_takes_the_autocast_dtype_like_f_conv2d():
    spikes = _spikes(2, 3, 6, 6)
    weight = torch.randn(4, 3, 3, 3, generator=torch.Generator().manual_seed(4), requires_grad=True)
    reference = weight.detach().clone().requires_grad_(True)
    with torch.autocast(**AUTOCAST):
        ours = _SpikeConv2d.apply(spikes, weight, 1, 1)
        theirs = F.conv2d(spikes, reference, None, 1, 1)
    assert ours.dtype == theirs.dtype == torch.bfloat16
    torch.testing.assert_close(ours, theirs, rtol=1e-2, atol=1e-2)
    grad = torch.randn(theirs.shape, generator=torch.Generator().manual_seed(5)).to(torch.bfloat16)
    ours.backward(grad)
    theirs.backward(grad)
    assert weight.grad.dtype == torch.float32
    torch.testing.assert_close(weight.grad, reference.grad, rtol=2e-2, atol=2e-2)


def test_the_neuron_runs_in_float32_under_autocast_only():
    currents = torch.randn(6, 4, 10, generator=torch.Generator().manual_seed(6)).to(torch.bfloat16)
    params = LIFParams(alpha=0.25, v_th=0.25, window=0.5)
    with torch.autocast(**AUTOCAST):
        spikes = lif(currents, params)
    assert spikes.dtype == torch.float32
    torch.testing.assert_close(spikes, lif(currents.float(), params), rtol=0, atol=0)
    assert lif(currents, params).dtype == torch.bfloat16  # outside autocast: the input's dtype


@pytest.mark.parametrize("name", ["digits-mlp", "fmnist-conv", "resnet"])
def test_a_zoo_step_runs_under_autocast_with_float32_gradients(name):
    torch.manual_seed(0)
    model = build(name)
    spec = model.spec
    shape = (spec.time_steps, 2, *spec.input_shape)
    x = torch.rand(shape, generator=torch.Generator().manual_seed(7))
    with torch.autocast(**AUTOCAST):
        out = model(x)
        loss = out.float().square().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(g.dtype == torch.float32 and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_digits_mlp_trains_as_well_under_autocast():
    """Five epochs on the bundled digits: bfloat16 autocast within 3 points of float32."""
    import contextlib

    from h2learn.snn.data import load_dataset
    from h2learn.snn.train import loss_fn

    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")

    def accuracy(autocast: bool) -> float:
        torch.manual_seed(0)
        model = build("digits-mlp")
        steps = model.spec.time_steps
        optimizer = torch.optim.Adam(model.parameters(), 2e-3)

        def context():
            return torch.autocast(**AUTOCAST) if autocast else contextlib.nullcontext()

        order = torch.Generator().manual_seed(0)
        for _ in range(5):
            for rows in torch.randperm(len(train), generator=order).split(32):
                x, y = train[rows]
                with context():
                    loss = loss_fn(model(x.expand(steps, *x.shape)).float(), y, "ce")
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        x, y = test[:]
        with torch.no_grad(), context():
            rate = model(x.expand(steps, *x.shape)).float()
        return float((rate.argmax(1) == y).float().mean())

    full, mixed = accuracy(False), accuracy(True)
    assert full > 0.9 and mixed > full - 0.03, (full, mixed)
