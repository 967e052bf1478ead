"""The engine models: results against torch/autograd and integer references, exact event counts."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import lif_autograd

from h2learn.arch.engines import (
    BACKWARD_COUNT_KEYS,
    FORWARD_COUNT_KEYS,
    UPDATE_COUNT_KEYS,
    EngineError,
    backward_engine,
    batchnorm_backward,
    batchnorm_forward,
    forward_engine,
    lif_backward_unit,
    lif_forward_unit,
    loss_unit,
    pool_backward,
    pool_forward,
    update_engine,
)
from h2learn.arch.engines.backward import connections
from h2learn.arch.engines.forward import lut_counts, table_build_costs
from h2learn.arch.numerics import (
    expected_error_bound,
    parse_format,
    quantize,
    relative_error,
    to_fixed_int,
)
from h2learn.snn.neuron import lif_states
from h2learn.spec import LayerSpec, LIFParams

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


# --------------------------------------------------------------------------
# Forward Engine: results
# --------------------------------------------------------------------------

CONV_CASES = [
    # (channels, size, out_channels, kernel, stride, padding); fan-in 27, 20, 18, 4
    (3, 7, 4, 3, 1, 1),
    (5, 8, 3, 2, 2, 0),
    (2, 6, 5, 3, 2, 2),
    (4, 5, 2, 1, 1, 0),
]


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize(("fmt", "tolerance"), [("float64", 1e-12), ("float32", 1e-5)])
def test_lut_forward_equals_dense_conv(k: int, case: tuple, fmt: str, tolerance: float) -> None:
    layer = conv_layer(*case)
    weights = randn(layer.weight_shape, seed=k)
    inputs = spikes(layer, 3, 2, 0.3, seed=k + 1)
    result = forward_engine(weights, inputs, layer, k=k, fmt=fmt)
    reference = dense_forward(quantize(weights, fmt), inputs, layer)
    assert result.output.dtype == parse_format(fmt).dtype
    assert relative_error(result.output, reference) <= tolerance


@pytest.mark.parametrize("k", [1, 2, 3, 4, 8])
@pytest.mark.parametrize(("fmt", "tolerance"), [("float64", 1e-12), ("float32", 1e-5)])
def test_lut_forward_equals_dense_linear(k: int, fmt: str, tolerance: float) -> None:
    layer = fc_layer(37, 6)
    weights = randn(layer.weight_shape, seed=k)
    inputs = spikes(layer, 4, 3, 0.4, seed=k)
    result = forward_engine(weights, inputs, layer, k=k, fmt=fmt)
    assert relative_error(result.output, dense_forward(weights, inputs, layer)) <= tolerance


def test_skip_zero_patterns_changes_counts_not_results() -> None:
    layer = conv_layer(3, 6, 4)
    weights, inputs = randn(layer.weight_shape, 1), spikes(layer, 2, 2, 0.1, 2)
    plain = forward_engine(weights, inputs, layer, k=4, fmt="float32")
    skipping = forward_engine(weights, inputs, layer, k=4, fmt="float32", skip_zero_patterns=True)
    assert torch.equal(plain.output, skipping.output)
    assert skipping.counts["lookups_skipped"] == plain.counts["zero_pattern_lookups"] > 0
    assert (
        skipping.counts["lookups"] == plain.counts["lookups"] - skipping.counts["lookups_skipped"]
    )


def _sequential_float32_reference(
    weights: torch.Tensor, inputs: torch.Tensor, k: int
) -> np.ndarray:
    """fc LUT forward written with NumPy float32 scalars: incremental tables, group-order sums."""
    w = weights.numpy().astype(np.float32)
    out_features, features = w.shape
    x = inputs.reshape(-1, features).numpy()
    result = np.zeros((x.shape[0], out_features), dtype=np.float32)
    for o in range(out_features):
        tables = []
        for start in range(0, features, k):
            group = w[o, start : start + k]
            table = [np.float32(0.0)]
            for value in group:  # table[s | 2**b] = table[s] + w_b
                table += [np.float32(entry + value) for entry in table]
            tables.append(table)
        for p in range(x.shape[0]):
            acc = np.float32(0.0)
            for g, start in enumerate(range(0, features, k)):
                bits = x[p, start : start + k]
                pattern = int(sum(int(b) << j for j, b in enumerate(bits)))
                acc = np.float32(acc + tables[g][pattern])
            result[p, o] = acc
    return result


@pytest.mark.parametrize("k", [1, 3, 4])
def test_lut_forward_float32_is_bit_exact_to_sequential_model(k: int) -> None:
    """The vectorised engine adds in the documented order: bit-identical to a scalar model."""
    layer = fc_layer(11, 3)
    weights = randn(layer.weight_shape, seed=5) * torch.tensor([1.0, 1e-3, 1e3]).repeat(4)[:11]
    inputs = spikes(layer, 3, 4, 0.5, seed=6)
    result = forward_engine(weights, inputs, layer, k=k, fmt="float32")
    expected = _sequential_float32_reference(weights, inputs, k)
    assert np.array_equal(result.output.reshape(-1, 3).numpy(), expected)
    looped = forward_engine(weights, inputs, layer, k=k, fmt="float32", sequential_loop=True)
    assert torch.equal(looped.output, result.output)


def _scalar_lut_reference(
    values: torch.Tensor, bits: torch.Tensor, k: int, dtype: torch.dtype
) -> torch.Tensor:
    """LUT sums with 0-d tensors in ``dtype``: ``out[r, c] = sum_m values[r, m] * bits[c, m]``.

    Per row, groups of ``k`` consecutive values get incrementally built subset-sum
    tables (``table[s | 2**b] = table[s] + v_b``); per column, the looked-up
    entries are added group after group, every add rounded to ``dtype``.
    """
    rows, length = values.shape
    out = torch.zeros(rows, bits.shape[0], dtype=dtype)
    for r in range(rows):
        tables = []
        for start in range(0, length, k):
            table = [torch.zeros((), dtype=dtype)]
            for value in values[r, start : start + k].to(dtype):
                table += [entry + value for entry in table]
            tables.append(table)
        for c in range(bits.shape[0]):
            acc = torch.zeros((), dtype=dtype)
            for g, start in enumerate(range(0, length, k)):
                group = bits[c, start : start + k].tolist()
                acc = acc + tables[g][sum(int(b) << j for j, b in enumerate(group))]
            out[r, c] = acc
    return out


LOW_FLOATS = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("dtype", LOW_FLOATS, ids=str)
def test_lut_forward_adds_in_the_format_bit_exactly(k: int, dtype: torch.dtype) -> None:
    """16-bit floats too: tables and accumulators round every add to the format."""
    layer = fc_layer(11, 3)
    scales = torch.tensor([1.0, 1e-3, 1e2]).repeat(4)[:11].double()
    weights = randn(layer.weight_shape, seed=5) * scales
    inputs = spikes(layer, 3, 4, 0.5, seed=6)
    fmt = str(dtype).removeprefix("torch.")
    result = forward_engine(weights, inputs, layer, k=k, fmt=fmt)
    expected = _scalar_lut_reference(weights, inputs.reshape(-1, 11), k, dtype)  # [O, points]
    assert torch.equal(result.output.reshape(-1, 3).t(), expected)


@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize("dtype", LOW_FLOATS, ids=str)
def test_lut_update_adds_in_the_format_bit_exactly(k: int, dtype: torch.dtype) -> None:
    layer = fc_layer(5, 3)
    grad = randn((3, 4, 3), seed=7) * torch.tensor([1.0, 1e-3, 1e2]).double()
    inputs = spikes(layer, 3, 4, 0.5, seed=8)
    fmt = str(dtype).removeprefix("torch.")
    result = update_engine(grad, inputs, layer, k=k, fmt=fmt, table_chunk_entries=2**k * 3)
    du_rows = grad.reshape(-1, 3).t()  # [O, points]
    expected = _scalar_lut_reference(du_rows, inputs.reshape(-1, 5).t(), k, dtype)
    assert torch.equal(result.output, expected)


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
# Backward and Weight Update Engines: results
# --------------------------------------------------------------------------


BACKWARD_CASES = [conv_layer(*case) for case in CONV_CASES] + [fc_layer(13, 5)]


@pytest.mark.parametrize("layer", BACKWARD_CASES, ids=lambda layer: str(layer.in_shape))
@pytest.mark.parametrize(("fmt", "tolerance"), [("float64", 1e-12), ("float32", 1e-5)])
def test_backward_equals_autograd_input_gradient_times_mask(
    layer: LayerSpec, fmt: str, tolerance: float
) -> None:
    weights = randn(layer.weight_shape, seed=1)
    grad = randn((3, 2, *layer.out_shape), seed=2)
    grad[grad.abs() < 0.5] = 0.0
    mask = spikes(layer, 3, 2, 0.4, seed=3).bool()
    grad_x, _ = autograd_grads(weights, spikes(layer, 3, 2, 0.5, 4), grad, layer)
    masked = backward_engine(weights, grad, mask, layer, fmt=fmt)
    assert relative_error(masked.output, grad_x * mask) <= tolerance
    assert (masked.output[~mask] == 0).all()
    unmasked = backward_engine(weights, grad, None, layer, fmt=fmt)
    assert relative_error(unmasked.output, grad_x) <= tolerance
    no_output_sparsity = backward_engine(weights, grad, mask, layer, fmt=fmt, output_sparsity=False)
    assert torch.equal(no_output_sparsity.output, unmasked.output)


@pytest.mark.parametrize("layer", BACKWARD_CASES, ids=lambda layer: str(layer.in_shape))
@pytest.mark.parametrize("k", [1, 3, 4])
@pytest.mark.parametrize(("fmt", "tolerance"), [("float64", 1e-12), ("float32", 1e-5)])
def test_update_equals_autograd_weight_gradient(
    layer: LayerSpec, k: int, fmt: str, tolerance: float
) -> None:
    inputs = spikes(layer, 3, 2, 0.3, seed=k)
    grad = randn((3, 2, *layer.out_shape), seed=k + 10)
    _, grad_w = autograd_grads(randn(layer.weight_shape, 0), inputs, grad, layer)
    result = update_engine(grad, inputs, layer, k=k, fmt=fmt)
    assert result.output.shape == layer.weight_shape
    assert relative_error(result.output, grad_w) <= tolerance


@pytest.mark.parametrize("layer", [conv_layer(3, 6, 4, binary=False), fc_layer(7, 3, binary=False)])
def test_encoding_layer_dense_fallbacks_equal_autograd(layer: LayerSpec) -> None:
    weights = randn(layer.weight_shape, seed=1)
    inputs = torch.rand(2, 3, *layer.in_shape, dtype=torch.float64)
    grad = randn((2, 3, *layer.out_shape), seed=2)
    _, grad_w = autograd_grads(weights, inputs, grad, layer)
    forward = forward_engine(weights, inputs, layer, fmt="float64")
    assert relative_error(forward.output, dense_forward(weights, inputs, layer)) <= 1e-12
    update = update_engine(grad, inputs, layer, fmt="float64")
    assert relative_error(update.output, grad_w) <= 1e-12
    assert update.counts["multiplies"] == update.counts["dense_macs"]


def test_update_result_does_not_depend_on_chunking() -> None:
    """Each pass's accumulator enters the next pass first: the add order is strictly sequential."""
    layer = conv_layer(3, 5, 4)
    inputs = spikes(layer, 3, 2, 0.4, seed=1)
    grad = randn((3, 2, *layer.out_shape), seed=2).float()
    whole = update_engine(grad, inputs, layer, k=3, fmt="float32")
    for entries in (8, 40, 1000):
        chunked = update_engine(
            grad, inputs, layer, k=3, fmt="float32", table_chunk_entries=entries
        )
        assert torch.equal(chunked.output, whole.output)
    looped = update_engine(grad, inputs, layer, k=3, fmt="float32", sequential_loop=True)
    assert torch.equal(looped.output, whole.output)


# --------------------------------------------------------------------------
# Counts: closed forms and brute force
# --------------------------------------------------------------------------


def test_forward_counts_closed_form_fc() -> None:
    # fan_in 10, k 4: groups of 4, 4, 2; 3 output neurons; T*B = 6 points.
    layer = fc_layer(10, 3)
    result = forward_engine(randn((3, 10), 0), spikes(layer, 2, 3, 0.5, 1), layer, k=4)
    counts = result.counts
    assert set(counts) == set(FORWARD_COUNT_KEYS)
    assert counts["lookups"] == 3 * 3 * 6  # ceil(10/4) * outputs * points
    assert counts["table_build_adds"] == (2 * (16 - 4 - 1) + (4 - 2 - 1)) * 3
    assert counts["table_entries_written"] == (2 * 16 + 4) * 3
    assert counts["accumulations"] == counts["table_reads"] == counts["lookups"]
    assert counts["spike_reads"] == 3 * 6
    assert counts["weight_reads"] == 30
    assert counts["output_writes"] == 18
    assert counts["dense_macs"] == 10 * 3 * 6
    assert counts["multiplies"] == counts["input_reads"] == counts["lookups_skipped"] == 0


def test_forward_counts_closed_form_conv() -> None:
    # C=2, 5x5, 3x3 kernel, stride 1, pad 1 -> 3 x 5 x 5; fan_in 18 -> groups 4,4,4,4,2.
    layer = conv_layer(2, 5, 3)
    inputs = spikes(layer, 2, 1, 0.5, 0)
    counts = forward_engine(randn(layer.weight_shape, 1), inputs, layer, k=4).counts
    points = 2 * 1 * 25
    assert counts["lookups"] == 5 * 3 * points
    assert counts["table_build_adds"] == (4 * 11 + 1) * 3
    assert counts["dense_macs"] == 18 * 3 * points
    counts_k1 = forward_engine(randn(layer.weight_shape, 1), inputs, layer, k=1).counts
    assert counts_k1["table_build_adds"] == 0
    assert counts_k1["lookups"] == counts_k1["dense_macs"]


def test_all_zero_input_makes_every_lookup_a_zero_pattern() -> None:
    layer = conv_layer(3, 4, 2, stride=2)
    zeros = torch.zeros(2, 2, *layer.in_shape)
    plain = forward_engine(randn(layer.weight_shape, 0), zeros, layer, k=4)
    assert plain.counts["zero_pattern_lookups"] == plain.counts["lookups"] > 0
    skipping = forward_engine(
        randn(layer.weight_shape, 0), zeros, layer, k=4, skip_zero_patterns=True
    )
    assert skipping.counts["lookups"] == skipping.counts["accumulations"] == 0
    assert skipping.counts["lookups_skipped"] == plain.counts["lookups"]
    assert (skipping.output == 0).all()


def test_zero_pattern_count_matches_brute_force() -> None:
    layer = conv_layer(3, 5, 2, kernel=3, stride=2, padding=1)
    inputs = spikes(layer, 2, 2, 0.15, seed=7)
    k = 4
    unfolded = F.unfold(inputs.flatten(0, 1), 3, padding=1, stride=2)  # [n, 27, L]
    zero = 0
    for n, position in itertools.product(range(unfolded.shape[0]), range(unfolded.shape[2])):
        for start in range(0, layer.fan_in, k):
            if not unfolded[n, start : start + k, position].any():
                zero += 1
    counts = forward_engine(randn(layer.weight_shape, 0), inputs, layer, k=k).counts
    assert counts["zero_pattern_lookups"] == zero * layer.out_channels


def test_update_counts_closed_form_fc() -> None:
    # 6 points (T=2, B=3) in groups of 4 -> groups of 4 and 2; fan_in 5; 3 outputs.
    layer = fc_layer(5, 3)
    inputs = spikes(layer, 2, 3, 0.5, 0)
    counts = update_engine(randn((2, 3, 3), 1), inputs, layer, k=4).counts
    assert set(counts) == set(UPDATE_COUNT_KEYS)
    assert counts["lookups"] == 2 * 5 * 3
    assert counts["table_build_adds"] == ((16 - 4 - 1) + (4 - 2 - 1)) * 3
    assert counts["table_entries_written"] == (16 + 4) * 3
    assert counts["grad_reads"] == 3 * 6
    assert counts["spike_reads"] == 2 * 5
    assert counts["output_writes"] == 15
    assert counts["dense_macs"] == 6 * 5 * 3
    x = inputs.reshape(6, 5)
    zero = sum(int(not x[start : start + 4, j].any()) for j in range(5) for start in (0, 4))
    assert counts["zero_pattern_lookups"] == zero * 3


LUT_SHARED_KEYS = tuple(key for key in FORWARD_COUNT_KEYS if key != "weight_reads")


@pytest.mark.parametrize(("span", "presented"), [(10, 6), (6, 10), (18, 50), (7, 1)])
@pytest.mark.parametrize("skip", [False, True])
def test_one_lut_formula_serves_both_engines_with_the_axes_swapped(
    span: int, presented: int, skip: bool
) -> None:
    # Forward Engine: tables over a fan-in of `span`, `presented` points; Weight Update
    # Engine: tables over `span` points, presented by a fan-in of `presented`.
    out, k = 3, 4
    zero = presented  # any count up to groups * presented
    fe = lut_counts("forward_engine", fc_layer(span, out), k, presented, zero, skip)
    wue = lut_counts("update_engine", fc_layer(presented, out), k, span, zero, skip)
    assert set(fe) == set(FORWARD_COUNT_KEYS) and set(wue) == set(UPDATE_COUNT_KEYS)
    assert {key: fe[key] for key in LUT_SHARED_KEYS} == {key: wue[key] for key in LUT_SHARED_KEYS}
    assert fe["weight_reads"] == wue["grad_reads"] == span * out
    groups = math.ceil(span / k)
    adds, entries = table_build_costs(span, k)
    assert fe["lookups"] == groups * presented * out - (zero * out if skip else 0)
    assert fe["table_build_adds"] == adds * out and fe["table_entries_written"] == entries * out
    assert fe["spike_reads"] == groups * presented
    assert fe["output_writes"] == out * presented
    assert wue["partial_sum_adds"] == 0


def test_lut_counts_equal_the_engines_own_counts() -> None:
    layer = conv_layer(2, 5, 3, stride=2)
    inputs = spikes(layer, 2, 3, 0.3, seed=5)
    fe = forward_engine(randn(layer.weight_shape, 1), inputs, layer, k=3, skip_zero_patterns=True)
    points = 2 * 3 * layer.out_positions
    zero = fe.counts["zero_pattern_lookups"] // layer.out_channels
    assert fe.counts == lut_counts("forward_engine", layer, 3, points, zero, True)
    grad = randn((2, 3, *layer.out_shape), seed=2)
    wue = update_engine(grad, inputs, layer, k=3, partial_sum_groups=2)
    zero = wue.counts["zero_pattern_lookups"] // layer.out_channels
    assert wue.counts == lut_counts("update_engine", layer, 3, points, zero, False, 2)


def test_lut_counts_reject_other_engines_and_forward_blocks() -> None:
    layer = fc_layer(8, 2)
    with pytest.raises(EngineError, match="forward_engine"):
        lut_counts("backward_engine", layer, 4, 10, 0, False)
    with pytest.raises(EngineError, match="partial-sum"):
        lut_counts("forward_engine", layer, 4, 10, 0, False, block=4)


def test_connections_count_the_taps_reaching_each_lower_position() -> None:
    # 3x3 kernel, stride 1, padding 1 on a 3x3 map: the centre is reached by all
    # 9 taps of every output channel, an edge by 6, a corner by 4.
    layer = conv_layer(1, 3, 2)
    ones = torch.full((1, 1, 3, 3), float(layer.out_channels), dtype=torch.float64)
    links = connections(ones, layer)[0, 0]
    expected = torch.tensor([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]) * 2
    assert torch.equal(links, expected.double())
    fc_counts = torch.tensor([5.0, 2.0], dtype=torch.float64).view(2, 1, 1, 1)  # non-zero du
    assert torch.equal(connections(fc_counts, fc_layer(4, 5)), fc_counts)


def _backward_counts_brute_force(
    du: torch.Tensor, mask: torch.Tensor, layer: LayerSpec, input_sp: bool, output_sp: bool
) -> dict[str, int]:
    counts = dict.fromkeys(("done", "dense", "skip_in", "skip_out"), 0)
    steps, batch = du.shape[:2]
    lower = (1, 1) if layer.kind == "fc" else layer.in_shape[1:]
    upper = (1, 1) if layer.kind == "fc" else layer.out_shape[1:]
    kernel = layer.kernel if layer.kind == "conv" else 1
    du4 = du.reshape(steps, batch, layer.out_channels, *upper)
    mask4 = mask.reshape(steps, batch, layer.in_channels, *lower)
    for t, b, c, y, x in itertools.product(
        range(steps), range(batch), range(layer.in_channels), range(lower[0]), range(lower[1])
    ):
        for o, dy, dx in itertools.product(range(layer.out_channels), range(kernel), range(kernel)):
            ny, nx = y + layer.padding - dy, x + layer.padding - dx
            if ny % layer.stride or nx % layer.stride:
                continue
            yo, xo = ny // layer.stride, nx // layer.stride
            if not (0 <= yo < upper[0] and 0 <= xo < upper[1]):
                continue
            counts["dense"] += 1
            if output_sp and not mask4[t, b, c, y, x]:
                counts["skip_out"] += 1
            elif input_sp and du4[t, b, o, yo, xo] == 0:
                counts["skip_in"] += 1
            else:
                counts["done"] += 1
    return counts


@pytest.mark.parametrize(
    "layer", [fc_layer(6, 4), conv_layer(2, 5, 3, stride=2), conv_layer(2, 6, 2, 2, 2, 0)]
)
@pytest.mark.parametrize(("input_sp", "output_sp"), [(True, True), (True, False), (False, True)])
def test_backward_mac_counts_match_brute_force(
    layer: LayerSpec, input_sp: bool, output_sp: bool
) -> None:
    grad = randn((2, 2, *layer.out_shape), seed=1)
    grad[grad.abs() < 0.7] = 0.0
    mask = spikes(layer, 2, 2, 0.5, seed=2).bool()
    counts = backward_engine(
        randn(layer.weight_shape, 3), grad, mask, layer, "float32", input_sp, output_sp
    ).counts
    expected = _backward_counts_brute_force(grad, mask, layer, input_sp, output_sp)
    assert set(counts) == set(BACKWARD_COUNT_KEYS)
    assert counts["macs_done"] == expected["done"] == counts["weight_reads"]
    assert counts["macs_dense"] == expected["dense"]
    assert counts["macs_skipped_input"] == expected["skip_in"]
    assert counts["macs_skipped_output"] == expected["skip_out"]
    assert counts["mask_reads"] == (mask.numel() if output_sp else 0)
    assert counts["output_writes"] == (int(mask.sum()) if output_sp else mask.numel())
    assert counts["grad_reads"] == (int((grad != 0).sum()) if input_sp else grad.numel())


def test_backward_counts_hand_checked_fc() -> None:
    """fc 3 -> 2, one step: du = [1, 0], mask = [1, 0, 1]."""
    layer = fc_layer(3, 2)
    grad = torch.tensor([[[1.0, 0.0]]])
    mask = torch.tensor([[[True, False, True]]])
    counts = backward_engine(torch.ones(2, 3), grad, mask, layer).counts
    # 6 MACs densely; lower neuron 1 is masked (2 skipped for output); neurons 0 and 2
    # each skip the MAC with du[1] = 0 (input) and do the one with du[0].
    assert (counts["macs_dense"], counts["macs_done"]) == (6, 2)
    assert (counts["macs_skipped_output"], counts["macs_skipped_input"]) == (2, 2)


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


def _forward_bound(
    fmt: str, weights: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec, k: int
) -> torch.Tensor:
    groups = math.ceil(layer.fan_in / k)
    abs_sum = dense_forward(weights.abs(), inputs, layer)
    active = dense_forward(torch.ones_like(weights), inputs, layer)
    return expected_error_bound(fmt, depth=k + groups + 1, abs_sum=abs_sum, rounded_operands=active)


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
    assert (error <= _forward_bound(fmt, weights, inputs, layer, k) * (1 + 1e-9) + 1e-300).all()
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
    assert (error <= _forward_bound(fmt, weights, inputs, layer, 4)).all()
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


# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------


def _one_line_value_error(call, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_bad_inputs_raise_clear_value_errors() -> None:
    layer = conv_layer(2, 5, 3)
    w, x = randn(layer.weight_shape, 0), spikes(layer, 2, 1, 0.5, 1)
    grad = randn((2, 1, *layer.out_shape), 2)
    _one_line_value_error(
        lambda: forward_engine(w, x, layer, fmt="float8"), "'float8'.*valid forms"
    )
    _one_line_value_error(lambda: forward_engine(w, x, layer, k=0), "k=0.*k >= 1")
    _one_line_value_error(lambda: forward_engine(w, x, layer, k=-2), "k=-2")
    _one_line_value_error(lambda: forward_engine(w, x, layer, k=30), "k=30.*smaller k")
    _one_line_value_error(lambda: update_engine(grad, x, layer, k=30), "k=30.*smaller k")
    _one_line_value_error(lambda: update_engine(grad, x, layer, k=0), "k=0")
    _one_line_value_error(lambda: forward_engine(w[:, :1], x, layer), "weights have shape")
    _one_line_value_error(lambda: forward_engine(w, x[:, :, :1], layer), r"inputs has shape")
    _one_line_value_error(lambda: forward_engine(w, x * 0.5, layer), "binary spikes")
    _one_line_value_error(lambda: backward_engine(w, grad[:, :, :2], None, layer), "grad_output")
    _one_line_value_error(
        lambda: backward_engine(w, grad, x[:, :, :1].bool(), layer), "lower_mask has shape"
    )
    _one_line_value_error(lambda: backward_engine(w, grad, x, layer), "bool")
    _one_line_value_error(lambda: update_engine(grad, x[:1], layer), r"\[T, B\]")
    bad_spec = LayerSpec("c", "conv", (2, 5, 5), (3, 4, 4), kernel=3, padding=1, binary_input=True)
    _one_line_value_error(lambda: forward_engine(w, x, bad_spec), "does not match its geometry")
    pool = LayerSpec("p", "avgpool", (2, 4, 4), (2, 2, 2), kernel=2, stride=2)
    _one_line_value_error(lambda: forward_engine(w, x, pool), "engines take conv or fc")


# --------------------------------------------------------------------------
# Element-wise units
# --------------------------------------------------------------------------


def test_lif_forward_unit_matches_neuron_model_bit_for_bit() -> None:
    x = torch.rand(6, 4, 50) * 0.6
    result = lif_forward_unit(x, alpha=0.25, v_th=0.25, window=0.5, fmt="float32")
    u, fired, mask = lif_states(x, LIFParams())
    assert torch.equal(result.output, fired)
    assert torch.equal(result.extra["u"], u)
    assert torch.equal(result.extra["mask"], mask)
    n = x.numel()
    counts = result.counts
    assert (counts["multiplies"], counts["adds"], counts["compares"]) == (n, n, 3 * n)
    assert counts["state_reads"] == counts["state_writes"] == 2 * n


def test_lif_forward_unit_fixed_point_matches_integer_loop() -> None:
    fmt, frac = "fixed4.6", 6
    x = torch.rand(5, 3, 7, dtype=torch.float64) * 0.7
    result = lif_forward_unit(x, alpha=0.2, v_th=0.5, window=0.5, fmt=fmt)
    xs, alpha = to_int_numpy(x, fmt), round(0.2 * 2**frac)
    threshold = 0.5 * 2**frac
    for b, i in itertools.product(range(3), range(7)):
        u, fired = 0, False
        for t in range(5):
            decayed = 0 if fired else round_half_even(alpha * u, frac)
            u = max(-(2**9), min(2**9 - 1, decayed + int(xs[t, b, i])))
            fired = u > threshold
            assert bool(result.output[t, b, i]) == fired
            assert result.extra["u"][t, b, i].item() == u / 2**frac


@pytest.mark.parametrize(
    ("alpha", "reset_grad", "height"), [(0.25, True, 1.0), (0.25, False, 1.0), (0.2, True, 0.5)]
)
def test_lif_backward_unit_matches_autograd(alpha: float, reset_grad: bool, height: float) -> None:
    params = LIFParams(alpha=alpha, v_th=0.25, window=0.5, height=height, reset_grad=reset_grad)
    x = (torch.rand(6, 3, 20, dtype=torch.float64) * 0.6).requires_grad_(True)
    grad = torch.randn(6, 3, 20, dtype=torch.float64)
    (expected,) = torch.autograd.grad(lif_autograd(x, params), x, grad)
    forward = lif_forward_unit(x.detach(), alpha, 0.25, 0.5, fmt="float64")
    result = lif_backward_unit(
        grad,
        forward.extra["u"],
        forward.output,
        forward.extra["mask"],
        alpha,
        height,
        reset_grad,
        fmt="float64",
    )
    assert relative_error(result.output, expected) <= 1e-12
    elements, steps = 3 * 20, 6
    counts = result.counts
    earlier = (steps - 1) * elements
    assert counts["adds"] == earlier * (2 if reset_grad else 1)
    assert counts["multiplies"] == (0 if height == 1.0 else steps * elements) + earlier * (
        2 if reset_grad else 1
    )


def test_batchnorm_units_match_autograd() -> None:
    x = torch.randn(3, 4, 5, 6, 6, dtype=torch.float64).requires_grad_(True)
    gamma = torch.rand(5, dtype=torch.float64).requires_grad_(True)
    beta = torch.randn(5, dtype=torch.float64).requires_grad_(True)
    y = F.batch_norm(x.flatten(0, 1), None, None, gamma, beta, training=True, eps=1e-5)
    grad = torch.randn_like(y)
    dx, dgamma, dbeta = torch.autograd.grad(y, (x, gamma, beta), grad)
    forward = batchnorm_forward(x.detach(), gamma.detach(), beta.detach(), fmt="float64")
    assert relative_error(forward.output.flatten(0, 1), y.detach()) <= 1e-12
    backward = batchnorm_backward(
        grad.view_as(x),
        x.detach(),
        gamma.detach(),
        forward.extra["mean"],
        forward.extra["inv_std"],
        fmt="float64",
    )
    assert relative_error(backward.output, dx) <= 1e-10
    assert relative_error(backward.extra["dgamma"], dgamma) <= 1e-10
    assert relative_error(backward.extra["dbeta"], dbeta) <= 1e-10
    n = x.numel()
    assert forward.counts["multiplies"] == 2 * n + 4 * 5
    assert forward.counts["sqrts"] == 5


@pytest.mark.parametrize(
    ("kind", "kernel", "stride", "padding"),
    [("avgpool", 2, 2, 0), ("maxpool", 2, 2, 0), ("maxpool", 3, 2, 1), ("avgpool", 3, 1, 1)],
)
def test_pool_units_match_autograd(kind: str, kernel: int, stride: int, padding: int) -> None:
    x = torch.randn(2, 3, 4, 6, 6, dtype=torch.float64).requires_grad_(True)
    pool = F.avg_pool2d if kind == "avgpool" else F.max_pool2d
    y = pool(x.flatten(0, 1), kernel, stride, padding)
    grad = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, grad)
    forward = pool_forward(x.detach(), kind, kernel, stride, padding, fmt="float64")  # type: ignore[arg-type]
    assert torch.allclose(forward.output.flatten(0, 1), y.detach())
    backward = pool_backward(
        grad.view(*forward.output.shape),
        kind,
        kernel,
        (4, 6, 6),
        stride,
        padding,  # type: ignore[arg-type]
        forward.extra.get("indices"),
        fmt="float64",
    )
    assert torch.allclose(backward.output, dx)
    outputs = y.numel()
    if kind == "avgpool":
        assert forward.counts["adds"] == (kernel * kernel - 1) * outputs
    else:
        assert forward.counts["compares"] == (kernel * kernel - 1) * outputs
    if stride == kernel and padding == 0:
        assert backward.counts["adds"] == 0  # no overlapping windows


def test_loss_unit_matches_autograd() -> None:
    spikes_out = (torch.rand(6, 4, 10) < 0.3).to(torch.float64).requires_grad_(True)
    targets = torch.tensor([1, 0, 9, 3])
    loss = F.cross_entropy(spikes_out.mean(0), targets)
    (grad,) = torch.autograd.grad(loss, spikes_out)
    result = loss_unit(spikes_out.detach(), targets, fmt="float64")
    assert result.output.item() == pytest.approx(loss.item(), rel=1e-12)
    assert relative_error(result.extra["grad"], grad) <= 1e-12
    assert result.counts["exps"] == 40 and result.counts["logs"] == 4
    mse = loss_unit(spikes_out.detach(), targets, kind="mse", fmt="float64")
    expected = F.mse_loss(spikes_out.mean(0), F.one_hot(targets, 10).double())
    assert mse.output.item() == pytest.approx(expected.item(), rel=1e-12)


def test_update_partial_sums_keep_float32_error_small_on_long_sums() -> None:
    """Blocked partial sums: ~1e5 points in float32 stay within 1e-5 of float64."""
    layer = fc_layer(6, 4)
    inputs = spikes(layer, 8, 4096, 0.5, seed=3)
    grad = randn((8, 4096, 4), seed=4)
    exact = update_engine(grad, inputs, layer, k=4, fmt="float64").output
    blocked = update_engine(grad.float(), inputs, layer, k=4, fmt="float32").output
    sequential = update_engine(
        grad.float(), inputs, layer, k=4, fmt="float32", partial_sum_groups=None
    ).output
    assert relative_error(blocked.double(), exact) <= 1e-5
    assert relative_error(blocked.double(), exact) < relative_error(sequential.double(), exact)
    for entries in (2**k * 4 * 3 for k in (4,)):
        chunked = update_engine(grad.float(), inputs, layer, k=4, table_chunk_entries=entries)
        assert torch.equal(chunked.output, blocked)


def test_update_partial_sum_adds_are_counted() -> None:
    layer = fc_layer(5, 3)
    inputs = spikes(layer, 2, 100, 0.5, seed=1)  # 200 points, k=4: 50 groups
    grad = randn((2, 100, 3), seed=2)
    counts = update_engine(grad, inputs, layer, k=4, partial_sum_groups=16).counts
    assert counts["partial_sum_adds"] == 4 * 5 * 3  # ceil(50 / 16) blocks per dW word
    assert (
        update_engine(grad, inputs, layer, k=4, partial_sum_groups=None).counts["partial_sum_adds"]
        == 0
    )
