"""Shared helpers of the engine tests: small layers, seeded data, reference models."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from h2learn.arch.numerics import (
    expected_error_bound,
    parse_format,
)
from h2learn.spec import LayerSpec

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def conv_layer(
    channels: int,
    size: int,
    out_channels: int,
    kernel: int = 3,
    stride: int = 1,
    padding: int = 1,
    binary: bool = True,
) -> LayerSpec:
    out = (size + 2 * padding - kernel) // stride + 1
    return LayerSpec(
        "conv",
        "conv",
        (channels, size, size),
        (out_channels, out, out),
        kernel=kernel,
        stride=stride,
        padding=padding,
        binary_input=binary,
    )


def fc_layer(features: int, out_features: int, binary: bool = True) -> LayerSpec:
    return LayerSpec("fc", "fc", (features,), (out_features,), binary_input=binary)


def spikes(layer: LayerSpec, steps: int, batch: int, density: float, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (steps, batch, *layer.in_shape)
    return (torch.rand(shape, generator=generator) < density).to(torch.float64)


def randn(shape: tuple[int, ...], seed: int, scale: float = 1.0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator, dtype=torch.float64) * scale


def dense_forward(weights: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """``W (*) x`` with torch in float64, ``[T, B, *out_shape]``."""
    steps = inputs.flatten(0, 1).to(torch.float64)
    w = weights.to(torch.float64)
    if layer.kind == "conv":
        out = F.conv2d(steps, w, stride=layer.stride, padding=layer.padding)
    else:
        out = F.linear(steps, w)
    return out.reshape(*inputs.shape[:2], *layer.out_shape)


def autograd_grads(
    weights: torch.Tensor, inputs: torch.Tensor, grad_output: torch.Tensor, layer: LayerSpec
) -> tuple[torch.Tensor, torch.Tensor]:
    """Input and weight gradients of ``W (*) x`` by torch.autograd (float64)."""
    x = inputs.to(torch.float64).clone().requires_grad_(True)
    w = weights.to(torch.float64).clone().requires_grad_(True)
    out = dense_forward(w, x, layer)
    grad_x, grad_w = torch.autograd.grad(out, (x, w), grad_output.to(torch.float64))
    return grad_x, grad_w


def saturate(values: np.ndarray, fmt_text: str) -> np.ndarray:
    fmt = parse_format(fmt_text)
    if fmt.saturate:
        return np.clip(values, fmt.int_min, fmt.int_max)
    bits = fmt.total_bits
    return (values + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)


def to_int_numpy(values: torch.Tensor, fmt_text: str) -> np.ndarray:
    """Independent operand quantization: NumPy round-half-even, then saturate or wrap."""
    frac_bits = parse_format(fmt_text).frac_bits
    return saturate(np.round(values.numpy() * 2**frac_bits).astype(np.int64), fmt_text)


def round_half_even(acc: int, shift: int) -> int:
    return round(Fraction(acc, 2**shift))


def taps(layer: LayerSpec):
    """All (dy, dx) kernel offsets of a layer (one for fc)."""
    return itertools.product(range(layer.kernel), repeat=2)


CONV_CASES = [
    # (channels, size, out_channels, kernel, stride, padding); fan-in 27, 20, 18, 4
    (3, 7, 4, 3, 1, 1),
    (5, 8, 3, 2, 2, 0),
    (2, 6, 5, 3, 2, 2),
    (4, 5, 2, 1, 1, 0),
]


def forward_bound(
    fmt: str, weights: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec, k: int
) -> torch.Tensor:
    """Per-output error bound of a LUT forward pass in ``fmt`` (tables, then group sums)."""
    groups = math.ceil(layer.fan_in / k)
    abs_sum = dense_forward(weights.abs(), inputs, layer)
    active = dense_forward(torch.ones_like(weights), inputs, layer)
    return expected_error_bound(fmt, depth=k + groups + 1, abs_sum=abs_sum, rounded_operands=active)
