"""Fixed point bit-exact against integer references; low-precision errors within bounds."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from h2learn.arch.engines import (
    backward_engine,
    forward_engine,
    update_engine,
)
from h2learn.arch.numerics import (
    parse_format,
    relative_error,
    to_fixed_int,
)
from h2learn.spec import LayerSpec

from .helpers import (
    autograd_grads,
    conv_layer,
    dense_forward,
    fc_layer,
    forward_bound,
    randn,
    round_half_even,
    saturate,
    spikes,
    taps,
    to_int_numpy,
)

# --------------------------------------------------------------------------
# Fixed point: bit-exact against brute-force integer references
# --------------------------------------------------------------------------


def _conv_forward_int_reference(w: np.ndarray, x: np.ndarray, layer: LayerSpec) -> np.ndarray:
    steps, batch = x.shape[:2]
    out_channels, _, out_h, out_w = (layer.out_channels, 0, *layer.out_shape[1:])
    _, height, width = layer.in_shape
    out = np.zeros((steps, batch, out_channels, out_h, out_w), dtype=np.int64)
    for t, b, o, yo, xo in itertools.product(
        range(steps), range(batch), range(out_channels), range(out_h), range(out_w)
    ):
        acc = 0
        for c in range(layer.in_channels):
            for dy, dx in taps(layer):
                y, xx = (
                    yo * layer.stride - layer.padding + dy,
                    xo * layer.stride - layer.padding + dx,
                )
                if 0 <= y < height and 0 <= xx < width:
                    acc += int(w[o, c, dy, dx]) * int(x[t, b, c, y, xx])
        out[t, b, o, yo, xo] = acc
    return out


@pytest.mark.parametrize("fmt", ["fixed8.8", "fixed4.4", "fixed4.4:wrap", "fixed6.10"])
@pytest.mark.parametrize("k", [1, 3, 4])
def test_fixed_point_forward_conv_is_bit_exact(fmt: str, k: int) -> None:
    layer = conv_layer(2, 5, 3, kernel=3, stride=2, padding=1)
    weights = randn(layer.weight_shape, seed=3, scale=2.0)  # fixed4.4 saturates/wraps
    inputs = spikes(layer, 2, 2, 0.6, seed=4)
    expected = saturate(
        _conv_forward_int_reference(to_int_numpy(weights, fmt), inputs.numpy(), layer), fmt
    )
    result = forward_engine(weights, inputs, layer, k=k, fmt=fmt)
    assert np.array_equal(to_fixed_int(result.output, fmt).numpy(), expected)


def test_fixed_point_forward_fc_saturates_once_at_write_out() -> None:
    """Partial sums may exceed the format; only the final sum is saturated."""
    layer = fc_layer(8, 2)
    weights = torch.tensor([[7.0] * 4 + [-7.0] * 4, [7.0] * 8], dtype=torch.float64)
    inputs = torch.ones(1, 1, 8, dtype=torch.float64)
    result = forward_engine(weights, inputs, layer, k=2, fmt="fixed4.4")
    assert result.output.flatten().tolist() == [0.0, 8.0 - 2**-4]


def test_fixed_point_dense_forward_rounds_products_once() -> None:
    layer = conv_layer(2, 4, 3, kernel=3, stride=1, padding=1, binary=False)
    fmt, frac = "fixed8.6", 6
    weights = randn(layer.weight_shape, seed=8, scale=0.5)
    inputs = randn((2, 1, *layer.in_shape), seed=9, scale=0.5)
    w_int, x_int = to_int_numpy(weights, fmt), to_int_numpy(inputs, fmt)
    acc = _conv_forward_int_reference(w_int, x_int, layer)
    expected = saturate(np.vectorize(lambda a: round_half_even(int(a), frac))(acc), fmt)
    result = forward_engine(weights, inputs, layer, fmt=fmt)
    assert np.array_equal(to_fixed_int(result.output, fmt).numpy(), expected)
    assert result.counts["multiplies"] == result.counts["dense_macs"] > 0
    assert result.counts["lookups"] == 0


def _backward_int_reference(
    w: np.ndarray, du: np.ndarray, mask: np.ndarray, layer: LayerSpec, frac: int
) -> np.ndarray:
    """Brute force ``W^T (*) du`` on integers, rounded once from 2F to F fraction bits."""
    steps, batch = du.shape[:2]
    _, height, width = layer.in_shape
    out_h, out_w = layer.out_shape[1:]
    out = np.zeros((steps, batch, *layer.in_shape), dtype=np.int64)
    for t, b, c, y, x in itertools.product(
        range(steps), range(batch), range(layer.in_channels), range(height), range(width)
    ):
        if not mask[t, b, c, y, x]:
            continue
        acc = 0
        for o in range(layer.out_channels):
            for dy, dx in taps(layer):
                ny, nx = y + layer.padding - dy, x + layer.padding - dx
                if ny % layer.stride or nx % layer.stride:
                    continue
                yo, xo = ny // layer.stride, nx // layer.stride
                if 0 <= yo < out_h and 0 <= xo < out_w:
                    acc += int(w[o, c, dy, dx]) * int(du[t, b, o, yo, xo])
        out[t, b, c, y, x] = round_half_even(acc, frac)
    return out


@pytest.mark.parametrize("fmt", ["fixed8.8", "fixed3.7", "fixed3.7:wrap"])
def test_fixed_point_backward_conv_is_bit_exact(fmt: str) -> None:
    layer = conv_layer(2, 5, 3, kernel=3, stride=2, padding=1)
    frac = parse_format(fmt).frac_bits
    weights = randn(layer.weight_shape, seed=1)
    grad = randn((2, 1, *layer.out_shape), seed=2, scale=2.0)
    grad[grad.abs() < 0.8] = 0.0
    mask = spikes(layer, 2, 1, 0.7, seed=3).bool()
    expected = saturate(
        _backward_int_reference(
            to_int_numpy(weights, fmt), to_int_numpy(grad, fmt), mask.numpy(), layer, frac
        ),
        fmt,
    )
    expected[~mask.numpy()] = 0
    result = backward_engine(weights, grad, mask, layer, fmt=fmt)
    assert np.array_equal(to_fixed_int(result.output, fmt).numpy(), expected)


def test_fixed_point_update_fc_is_bit_exact() -> None:
    layer = fc_layer(9, 4)
    fmt = "fixed5.6"
    grad = randn((3, 2, 4), seed=4, scale=3.0)
    inputs = spikes(layer, 3, 2, 0.5, seed=5)
    du, x = to_int_numpy(grad, fmt).reshape(-1, 4), inputs.numpy().reshape(-1, 9)
    acc = np.zeros((4, 9), dtype=np.int64)
    for o, j, p in itertools.product(range(4), range(9), range(du.shape[0])):
        acc[o, j] += int(du[p, o]) * int(x[p, j])
    expected = saturate(acc, fmt)  # spikes keep F fraction bits: no rounding
    for k in (1, 3, 5):
        result = update_engine(grad, inputs, layer, k=k, fmt=fmt)
        assert np.array_equal(to_fixed_int(result.output, fmt).numpy(), expected)


# --------------------------------------------------------------------------
# Low-precision formats: error against float64, within the format's bound
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "ceiling"),
    [("float16", 2e-3), ("bfloat16", 2e-2), ("fixed8.8", 2e-2), ("fixed4.12", 2e-3)],
)
def test_low_precision_forward_error_is_within_bound(fmt: str, ceiling: float) -> None:
    layer = conv_layer(8, 8, 8)
    weights = randn(layer.weight_shape, seed=1, scale=0.1)
    inputs = spikes(layer, 4, 2, 0.2, seed=2)
    result = forward_engine(weights, inputs, layer, k=4, fmt=fmt)
    reference = dense_forward(weights, inputs, layer)
    error = (result.output.to(torch.float64) - reference).abs()
    assert (error <= forward_bound(fmt, weights, inputs, layer, 4)).all()
    rel = relative_error(result.output, reference)
    print(f"forward {fmt}: relative error vs float64 = {rel:.3g}")
    assert 0 < rel <= ceiling


@pytest.mark.parametrize(("fmt", "ceiling"), [("float16", 2e-3), ("bfloat16", 2e-2)])
def test_low_precision_backward_and_update_errors(fmt: str, ceiling: float) -> None:
    layer = conv_layer(4, 6, 5, stride=2)
    weights = randn(layer.weight_shape, seed=1, scale=0.2)
    grad = randn((3, 2, *layer.out_shape), seed=2, scale=0.1)
    inputs = spikes(layer, 3, 2, 0.3, seed=3)
    grad_x, grad_w = autograd_grads(weights, inputs, grad, layer)
    backward = backward_engine(weights, grad, None, layer, fmt=fmt)
    update = update_engine(grad, inputs, layer, k=4, fmt=fmt)
    for name, got, want in (
        ("backward", backward.output, grad_x),
        ("update", update.output, grad_w),
    ):
        rel = relative_error(got, want)
        print(f"{name} {fmt}: relative error vs float64 = {rel:.3g}")
        assert 0 < rel <= ceiling
