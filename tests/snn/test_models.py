"""Whole-network BPTT gradients against autograd; the zoo and its spec."""

import pytest
import torch
from reference import network_autograd

from h2learn.snn.models import SpikingNetwork, build
from h2learn.spec import FC, Conv, Pool, SpecError, build_spec, expand, model_names


def _relative(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def _check_network_grads(model: SpikingNetwork, x: torch.Tensor, seed: int = 0):
    model = model.double().train()
    x = x.double()
    torch.manual_seed(seed)
    target = torch.randn(x.shape[-len(model.spec.input_shape) - 1], model.spec.num_classes).double()
    ours = model(x)
    (ours * target).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()
    ref = network_autograd(model, x)
    (ref * target).sum().backward()
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    assert any(g.abs().max() > 0 for g in grads.values()), "no gradient reached the weights"
    for name, p in model.named_parameters():
        if p.grad.abs().max() == 0:
            assert grads[name].abs().max() == 0, name
        else:
            assert _relative(grads[name], p.grad) <= 1e-6, name


@pytest.mark.parametrize("reset_grad", [True, False])
@pytest.mark.parametrize("readout", ["current", "spike"])
@pytest.mark.parametrize("name", ["digits-mlp", "fmnist-conv"])
def test_network_gradients_equal_autograd(name, reset_grad, readout):
    torch.manual_seed(3)
    model = build(name, reset_grad=reset_grad, readout=readout, time_steps=5)
    x = torch.rand(3, *model.spec.input_shape) * 2
    _check_network_grads(model, x)


def test_event_input_and_residual_network_gradients():
    """A small network with event input, avg pooling, stride, a projection and identity shortcut."""
    sketch = [
        Pool("avgpool", 2),
        Conv(8),  # 1
        Conv(8, source=1),  # 2
        Conv(8, source=2, residual=1),  # 3: identity shortcut
        Conv(16, stride=2, source=3),  # 4
        Conv(16, kernel=1, stride=2, padding=0, fires=False, source=3),  # 5: projection
        Conv(16, source=4, residual=5),  # 6
        FC(5),
    ]
    spec = expand("tiny-res", (2, 16, 16), 5, sketch, time_steps=4, input_kind="events")
    torch.manual_seed(4)
    model = SpikingNetwork(spec)
    x = (torch.rand(4, 2, *spec.input_shape) < 0.3).double() * 3  # [T, B, ...] event counts
    _check_network_grads(model, x)


@pytest.mark.parametrize("name", model_names())
def test_zoo_spec_shapes_are_consistent(name):
    spec = build_spec(name)
    for layer in spec.layers:
        if layer.source >= 0:
            assert layer.in_shape == spec.layers[layer.source].out_shape
        else:
            assert layer.in_shape == spec.input_shape
    assert spec.layers[-1].out_shape == (spec.num_classes,)
    assert spec.weighted_layers[0].encoding and not spec.weighted_layers[0].binary_input


def test_cifar_vgg_is_the_first_authors_network():
    spec = build_spec("cifar-vgg", num_classes=100)
    convs = [(c.out_channels, c.stride) for c in spec.layers if c.kind == "conv"]
    assert convs == [
        (128, 1),
        (128, 1),
        (128, 2),
        (256, 1),
        (256, 1),
        (256, 2),
        (512, 1),
        (512, 1),
        (512, 2),
    ]
    assert [f.out_shape[0] for f in spec.layers if f.kind == "fc"] == [1024, 512, 100]
    assert spec.time_steps == 6
    assert build_spec("dvs-gesture").input_shape == (2, 128, 128)
    assert build_spec("dvs-gesture").time_steps == 10
    assert build_spec("dvs-cifar10").input_shape == (2, 48, 48)


@pytest.mark.parametrize("name", ["cifar-vgg", "dvs-cifar10", "alexnet"])
def test_zoo_models_run_forward_and_backward(name):
    overrides = {"input_shape": (3, 64, 64)} if name == "alexnet" else {}
    model = build(name, time_steps=2, **overrides)
    x = torch.rand(2, *model.spec.input_shape)
    if model.spec.input_kind == "events":
        x = torch.rand(2, 2, *model.spec.input_shape)
    out = model(x)
    out.sum().backward()
    assert out.shape == (2, model.spec.num_classes)


def test_model_parameters_match_spec_weights():
    for name in ("cifar-vgg", "resnet", "alexnet"):
        spec = build_spec(name)
        model = SpikingNetwork(spec)
        weights = sum(m.op.weight.numel() for m in model.layers if hasattr(m, "op"))
        assert weights == sum(layer.num_weights for layer in spec.layers)


def test_spec_round_trips_through_json():
    spec = build_spec("resnet", time_steps=3, alpha=0.2)
    assert type(spec).from_json(spec.to_json()) == spec


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: build_spec("nope"), "unknown model"),
        (lambda: build_spec("cifar-vgg", time_steps=0), "T must be at least 1"),
        (lambda: build_spec("cifar-vgg", colour=1), "cannot override"),
        (lambda: build_spec("cifar-vgg", readout="x"), "readout"),
        (lambda: build_spec("resnet", input_shape=(3, 32, 32)), "below 1x1"),
        (lambda: build_spec("digits-mlp", alpha=2.0), "alpha"),
    ],
)
def test_bad_specs_give_clear_errors(call, message):
    with pytest.raises(SpecError, match=message):
        call()


def test_wrong_input_shape_names_the_expected_shape():
    model = build("fmnist-conv")
    with pytest.raises(SpecError, match=r"expects input \[B, 1, 28, 28\]"):
        model(torch.rand(2, 3, 32, 32))
