"""Forward Engine: LUT-based processing elements for ``W (*) spikes``.

Hardware behaviour [paper: "LUT-based processing elements ... make
accumulations implicit and fuse the computations of multiple input points";
mechanism ours, SYSTEM.md section 2]:

* The fan-in of every output neuron (for conv, the receptive field
  ``C*kh*kw`` in torch's unfold order) is split into groups of ``k`` inputs;
  the last group may be shorter (``k' = fan_in - (G-1) k``).
* For every group and output channel, a table of all ``2**k`` subset sums of
  the group's weights is built once per weight version, incrementally:
  ``table[s] = table[s without its top bit] + w[top bit]``, i.e.
  ``2**k - k - 1`` additions (singletons are copies, the empty sum is 0).
* Every point (time step x sample x output position) presents, per group, the
  ``k``-bit pattern of its input spikes (bit ``j`` = input ``j`` of the group);
  the pattern addresses the table, and the looked-up partial sums are added
  into the output accumulator, group after group (in group order).
* With ``skip_zero_patterns`` an all-zero pattern is not looked up (its entry
  is 0, so the result is identical; only the counts change).
* ``k = 1`` is plain accumulation of the weights of active inputs.
* The encoding layer (``layer.binary_input`` False) receives analog values:
  the engine then works as a dense multiply-accumulate array [ours: the
  paper's LUT needs binary inputs], counted as ``multiplies`` + ``accumulations``.

Arithmetic follows :mod:`h2learn.arch.numerics`: tables and accumulators in
the format's dtype (floating) or as exact wide integers (fixed point, one
saturation at write-out).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from h2learn.arch.engines.common import (
    FORWARD_COUNT_KEYS,
    EngineResult,
    as_steps,
    check_activation,
    check_binary,
    check_fixed_bound,
    check_group_size,
    check_table_size,
    check_weighted_layer,
    check_weights,
    is_low_precision_float,
    make_counts,
    operand_values,
    sequential_matmul,
    step_chunks,
    tap_windows,
    unfold_points,
    write_out,
)
from h2learn.arch.engines.lut import (
    accumulate_lookups,
    build_subset_tables,
    lut_counts,
    pack_patterns,
)
from h2learn.arch.engines.lut import table_build_costs as table_build_costs  # re-export
from h2learn.arch.numerics import NumberFormat, as_format
from h2learn.spec import LayerSpec

ENGINE = "forward_engine"


# --------------------------------------------------------------------------
# Spike patterns of the points
# --------------------------------------------------------------------------


def conv_patterns(steps: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """Spike patterns of every point of a conv layer: ``[n, C, H, W] -> [n, groups, L]`` (int32).

    Same result as packing the unfolded input along its fan-in, without materialising the
    unfolded tensor: for each kernel offset, the shifted input map is added,
    scaled by each input's bit weight, into its group's pattern.
    """
    n, channels = steps.shape[:2]
    kernel = layer.kernel
    _, out_h, out_w = layer.out_shape
    work = torch.float32 if k <= 24 else torch.float64
    padded = F.pad(steps.to(work), (layer.padding,) * 4)
    groups = math.ceil(layer.fan_in / k)
    patterns = torch.zeros(n, groups, out_h, out_w, dtype=work, device=steps.device)
    channel = torch.arange(channels, device=steps.device)
    for dy, dx, window in tap_windows(padded, layer):
        fan_index = channel * kernel * kernel + dy * kernel + dx
        bit_weight = (2.0 ** (fan_index % k)).to(work).view(1, channels, 1, 1)
        patterns.index_add_(1, fan_index // k, window * bit_weight)
    return patterns.reshape(n, groups, out_h * out_w).to(torch.int32)


def point_patterns(steps: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """k-bit spike patterns ``[n, groups, L]`` of a chunk of steps (conv or fc)."""
    if layer.kind == "conv":
        return conv_patterns(steps, layer, k)
    return pack_patterns(steps.reshape(steps.shape[0], -1), k).unsqueeze(2)


# --------------------------------------------------------------------------
# The engine
# --------------------------------------------------------------------------


def _check_inputs(weights: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec) -> None:
    check_weighted_layer(layer, ENGINE)
    check_weights(weights, layer, ENGINE)
    check_activation(inputs, layer.in_shape, "inputs", layer, ENGINE)


def _output_from_points(
    points: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec
) -> torch.Tensor:
    """``[steps, O, L] -> [T, B, *out_shape]``."""
    return points.reshape(inputs.shape[0], inputs.shape[1], *layer.out_shape)


def forward_engine(
    weights: torch.Tensor,
    inputs: torch.Tensor,
    layer: LayerSpec,
    k: int = 4,
    fmt: str | NumberFormat = "float32",
    skip_zero_patterns: bool = False,
    *,
    sequential_loop: bool = False,
) -> EngineResult:
    """``W (*) inputs`` on the Forward Engine (conv with the layer's stride/padding, or fc).

    No bias term: a bias would be added once per output, outside the LUT path.

    Args:
        weights: ``layer.weight_shape`` (torch conv/linear layout).
        inputs: ``[T, B, *layer.in_shape]``; binary spikes unless the layer is
            the encoding layer (``binary_input`` False: dense fallback).
        layer: the layer's spec.
        k: LUT group size (inputs fused per lookup).
        fmt: number format (see :mod:`h2learn.arch.numerics`).
        skip_zero_patterns: do not look up all-zero patterns [ours, option].
        sequential_loop: accumulate with the explicit per-group loop (for tests;
            same result as the default path).

    Returns ``EngineResult(output [T, B, *out_shape], counts)`` with the
    counts of :data:`FORWARD_COUNT_KEYS` (``spike_reads`` counts k-bit patterns).
    """
    fmt = as_format(fmt)
    _check_inputs(weights, inputs, layer)
    check_group_size(k, ENGINE)
    if not layer.binary_input:
        return _dense_forward(weights, inputs, layer, fmt)
    check_binary(inputs, "inputs", ENGINE)
    fan_in, out_channels = layer.fan_in, layer.out_channels
    groups = math.ceil(fan_in / k)
    check_table_size(k, groups * out_channels, ENGINE)

    weight_rows = operand_values(weights, fmt).reshape(out_channels, fan_in)
    check_fixed_bound(weight_rows.abs().sum(1).max(), fmt, f"{ENGINE} on {layer.name}")
    table = build_subset_tables(weight_rows, k).reshape(groups * 2**k, out_channels)
    offsets = torch.arange(groups, dtype=torch.int32, device=inputs.device) * 2**k

    steps = as_steps(inputs)
    positions = layer.out_positions
    out = torch.empty(
        steps.shape[0], out_channels, positions, dtype=table.dtype, device=table.device
    )
    zero_patterns = 0
    for start, stop in step_chunks(steps.shape[0], positions * (groups * 3 + out_channels)):
        patterns = point_patterns(steps[start:stop], layer, k)  # [n, groups, L]
        zero_patterns += patterns.numel() - int(torch.count_nonzero(patterns))
        rows = (patterns + offsets.view(1, groups, 1)).transpose(1, 2).reshape(-1, groups)
        sums = accumulate_lookups(rows, table, sequential_loop)
        out[start:stop] = sums.view(stop - start, positions, out_channels).transpose(1, 2)

    output = _output_from_points(write_out(out, fmt.frac_bits, fmt), inputs, layer)
    points = steps.shape[0] * positions
    counts = lut_counts(ENGINE, layer, k, points, zero_patterns, skip_zero_patterns)
    return EngineResult(ENGINE, output, counts)


# --------------------------------------------------------------------------
# Dense fallback for the encoding layer
# --------------------------------------------------------------------------


def _dense_forward(
    weights: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec, fmt: NumberFormat
) -> EngineResult:
    """Analog inputs: a dense MAC array (weight-stationary: each weight read once) [ours].

    Float32/float64 use torch's conv/linear in the dtype; 16-bit floats add one
    product at a time in the format; fixed point multiplies exact integers
    (``2F`` fraction bits), accumulates exactly and rounds once at write-out.
    """
    w = operand_values(weights, fmt)
    x = operand_values(inputs, fmt)
    steps = as_steps(x)
    fan_in, out_channels, positions = layer.fan_in, layer.out_channels, layer.out_positions
    if fmt.is_fixed:
        bound = w.abs().reshape(out_channels, -1).sum(1).max() * x.abs().max().clamp(min=1)
        check_fixed_bound(bound, fmt, f"{ENGINE} (dense) on {layer.name}")
    if is_low_precision_float(fmt):
        w_rows = w.reshape(out_channels, fan_in)
        out = torch.cat(
            [
                sequential_matmul(w_rows, unfold_points(steps[a:b], layer))
                for a, b in step_chunks(steps.shape[0], positions * (fan_in + out_channels))
            ]
        )
    elif layer.kind == "conv":
        out = F.conv2d(steps, w, stride=layer.stride, padding=layer.padding)
    else:
        out = F.linear(steps, w)
    output = write_out(out, 2 * fmt.frac_bits, fmt).reshape(
        inputs.shape[0], inputs.shape[1], *layer.out_shape
    )
    counts = dense_forward_counts(layer, steps.shape[0])
    return EngineResult(ENGINE, output, counts)


def dense_forward_counts(layer: LayerSpec, steps: int) -> dict[str, int]:
    """Counts of ``W (*) x`` on a dense MAC array over ``steps`` (time steps x samples).

    Weight-stationary [ours]: each weight is read once, each input word once
    per output position that uses it, each output written once; one multiply
    and one accumulation per MAC.  Data-free: the Forward Engine's analog
    path and :mod:`h2learn.arch.activity` both count with it.
    """
    points = steps * layer.out_positions
    macs = layer.fan_in * layer.out_channels * points
    return make_counts(
        ENGINE,
        FORWARD_COUNT_KEYS,
        multiplies=macs,
        accumulations=macs,
        weight_reads=layer.fan_in * layer.out_channels,
        input_reads=layer.fan_in * points,
        output_writes=layer.out_channels * points,
        dense_macs=macs,
    )
