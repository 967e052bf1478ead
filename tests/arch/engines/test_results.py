"""The engines' results against torch/autograd and bit-exact sequential references."""

from __future__ import annotations

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
    quantize,
    relative_error,
)
from h2learn.spec import LayerSpec

from .helpers import (
    CONV_CASES,
    autograd_grads,
    conv_layer,
    dense_forward,
    fc_layer,
    randn,
    spikes,
)

# --------------------------------------------------------------------------
# Forward Engine: results
# --------------------------------------------------------------------------


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
