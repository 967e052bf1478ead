"""Property tests over shapes, k, strides, paddings, densities and formats."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h2learn.arch.engines import (
    backward_engine,
    forward_engine,
    update_engine,
)
from h2learn.arch.numerics import (
    expected_error_bound,
)
from h2learn.spec import LayerSpec

from .helpers import (
    autograd_grads,
    conv_layer,
    dense_forward,
    fc_layer,
    forward_bound,
    randn,
    spikes,
)

# --------------------------------------------------------------------------
# Property tests over shapes, k, strides, paddings, densities and formats
# --------------------------------------------------------------------------

FORMATS = ["float64", "float32", "float16", "bfloat16", "fixed8.8", "fixed12.12"]


@st.composite
def layers(draw: st.DrawFn) -> LayerSpec:
    if draw(st.booleans()):
        return fc_layer(draw(st.integers(1, 24)), draw(st.integers(1, 5)))
    kernel = draw(st.integers(1, 3))
    padding = draw(st.integers(0, kernel - 1))
    size = draw(st.integers(max(kernel - 2 * padding, 1), 7))
    return conv_layer(
        draw(st.integers(1, 4)),
        size,
        draw(st.integers(1, 4)),
        kernel=kernel,
        stride=draw(st.integers(1, 2)),
        padding=padding,
    )


@settings(max_examples=25, deadline=None)
@given(
    layers(),
    st.integers(1, 6),
    st.integers(1, 3),
    st.floats(0.0, 1.0),
    st.sampled_from(FORMATS),
    st.integers(0, 2**16),
)
def test_forward_property(
    layer: LayerSpec, k: int, steps: int, density: float, fmt: str, seed: int
) -> None:
    weights = randn(layer.weight_shape, seed)
    inputs = spikes(layer, steps, 2, density, seed + 1)
    result = forward_engine(weights, inputs, layer, k=k, fmt=fmt, skip_zero_patterns=seed % 2 == 0)
    reference = dense_forward(weights, inputs, layer)
    error = (result.output.to(torch.float64) - reference).abs()
    assert (error <= forward_bound(fmt, weights, inputs, layer, k) * (1 + 1e-9) + 1e-300).all()
    counts = result.counts
    points = steps * 2 * layer.out_positions
    total = math.ceil(layer.fan_in / k) * layer.out_channels * points
    assert counts["lookups"] + counts["lookups_skipped"] == total
    assert counts["zero_pattern_lookups"] <= total
    assert counts["dense_macs"] == layer.fan_in * layer.out_channels * points


@settings(max_examples=25, deadline=None)
@given(
    layers(),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    st.sampled_from(FORMATS),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**16),
)
def test_backward_property(
    layer: LayerSpec,
    grad_density: float,
    mask_density: float,
    fmt: str,
    input_sp: bool,
    output_sp: bool,
    seed: int,
) -> None:
    weights = randn(layer.weight_shape, seed)
    grad = randn((2, 2, *layer.out_shape), seed + 1)
    grad = grad * (
        torch.rand(grad.shape, generator=torch.Generator().manual_seed(seed)) < grad_density
    )
    mask = spikes(layer, 2, 2, mask_density, seed + 2).bool()
    result = backward_engine(weights, grad, mask, layer, fmt, input_sp, output_sp)
    grad_x, _ = autograd_grads(weights, torch.zeros(2, 2, *layer.in_shape), grad, layer)
    expected = grad_x * mask if output_sp else grad_x
    # Bound: sum of |w||du| over the terms of each output, plus the operand roundings.
    abs_x, _ = autograd_grads(weights.abs(), torch.zeros_like(grad_x), grad.abs(), layer)
    ones_w = torch.ones_like(weights)
    rounded, _ = autograd_grads(ones_w, torch.zeros_like(grad_x), grad.abs() + 1.0, layer)
    rounded = (
        rounded
        + autograd_grads(weights.abs(), torch.zeros_like(grad_x), 1.0 * (grad != 0), layer)[0]
    )
    terms = layer.out_channels * layer.kernel**2
    bound = expected_error_bound(fmt, depth=terms + 3, abs_sum=abs_x, rounded_operands=rounded)
    error = (result.output.to(torch.float64) - expected).abs()
    assert (error <= bound * (1 + 1e-9) + 1e-300).all()
    counts = result.counts
    assert (
        counts["macs_done"] + counts["macs_skipped_input"] + counts["macs_skipped_output"]
        == counts["macs_dense"]
    )


@settings(max_examples=25, deadline=None)
@given(
    layers(),
    st.integers(1, 6),
    st.floats(0.0, 1.0),
    st.sampled_from(FORMATS),
    st.integers(0, 2**16),
)
def test_update_property(layer: LayerSpec, k: int, density: float, fmt: str, seed: int) -> None:
    inputs = spikes(layer, 2, 2, density, seed)
    grad = randn((2, 2, *layer.out_shape), seed + 1)
    _, grad_w = autograd_grads(torch.zeros(layer.weight_shape), inputs, grad, layer)
    _, abs_sum = autograd_grads(torch.zeros(layer.weight_shape), inputs, grad.abs(), layer)
    _, active = autograd_grads(
        torch.zeros(layer.weight_shape), inputs, torch.ones_like(grad), layer
    )
    result = update_engine(grad, inputs, layer, k=k, fmt=fmt, skip_zero_patterns=seed % 2 == 1)
    points = 4 * layer.out_positions
    depth = k + math.ceil(points / k) + 1
    bound = expected_error_bound(fmt, depth=depth, abs_sum=abs_sum, rounded_operands=active)
    error = (result.output.to(torch.float64) - grad_w).abs()
    assert (error <= bound * (1 + 1e-9) + 1e-300).all()
    counts = result.counts
    total = math.ceil(points / k) * layer.fan_in * layer.out_channels
    assert counts["lookups"] + counts["lookups_skipped"] == total
