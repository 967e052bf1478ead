"""Weight Update Engine: LUT-based processing elements for ``dW = du (x) spikes``.

``dW[i, j] = sum_p du[i, p] * x[j, p]`` over points ``p`` (time step x sample
x output position, in that nesting order); for conv, ``j`` indexes the
receptive field in torch's unfold order and ``x[j, p]`` is the input spike
under tap ``j`` at point ``p`` (0 in the padding).

Hardware behaviour [paper: LUT-based PEs with binary inputs; mechanism ours,
SYSTEM.md section 2]:

* Points are taken in groups of ``k`` consecutive points (the last group may
  be shorter).  For every output neuron ``i`` and point group a table of the
  ``2**k`` subset sums of ``du[i, p1..pk]`` is built incrementally
  (``2**k - k - 1`` adds).
* Every presynaptic input ``j`` presents its ``k``-bit spike pattern over the
  group's points (bit ``b`` = point ``p_{b+1}``); the pattern addresses the
  table of every output neuron ``i`` and the looked-up value is added into
  ``dW[i, j]``'s accumulator, point group after point group.
* ``skip_zero_patterns`` skips all-zero patterns (same result, fewer lookups).
* Partial sums [ours]: a PE accumulates ``dW`` over a block of
  ``partial_sum_groups`` point groups from zero, then adds that partial sum
  into the ``dW`` buffer, block after block.  Besides matching a tiled
  dataflow, this bounds the float rounding error: one sequential sum over all
  ``T * B * H * W`` points (~1e5 terms for a CIFAR layer) loses ~1e-4 relative
  accuracy in float32, blocks of 64 keep it near 1e-6.  ``None`` gives one
  strictly sequential accumulation.
* Analog inputs (the encoding layer) use a dense MAC fallback [ours].

Arithmetic as in :mod:`h2learn.arch.numerics`: tables and accumulators in
the format's dtype (floating), exact wide integers with one saturation at
write-out (fixed point; ``du`` times a spike keeps ``F`` fraction bits).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from h2learn.arch.config import UpdateEngineConfig
from h2learn.arch.engines.common import (
    CHUNK_ELEMENTS,
    UPDATE_COUNT_KEYS,
    EngineError,
    EngineResult,
    as_steps,
    check_activation,
    check_binary,
    check_fixed_bound,
    check_group_size,
    check_table_size,
    check_weighted_layer,
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
from h2learn.arch.numerics import NumberFormat, as_format
from h2learn.spec import LayerSpec

ENGINE = "update_engine"
TABLE_CHUNK_ENTRIES = 2**22
"""LUT entries built per pass over a chunk of point groups (bounds memory) [model only]."""
PARTIAL_SUM_GROUPS: int = UpdateEngineConfig.model_fields["partial_sum_groups"].default
"""Point groups accumulated in a PE before its partial dW is merged into the dW buffer [ours]:
the configuration's default (``update_engine.partial_sum_groups``), the one source of the number."""


def _check_inputs(grad_output: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec) -> None:
    check_weighted_layer(layer, ENGINE)
    check_activation(grad_output, layer.out_shape, "grad_output", layer, ENGINE)
    check_activation(inputs, layer.in_shape, "inputs", layer, ENGINE)
    if grad_output.shape[:2] != inputs.shape[:2]:
        raise EngineError(
            f"{ENGINE}: grad_output has [T, B] = {tuple(grad_output.shape[:2])} but inputs have "
            f"{tuple(inputs.shape[:2])}; pass tensors of the same steps and batch"
        )


def gradients_by_point(grad_output: torch.Tensor) -> torch.Tensor:
    """``du`` as ``[O, P]``: a row per output channel, points in (t, b, position) order."""
    steps = as_steps(grad_output)
    channels = steps.shape[1]
    return steps.reshape(steps.shape[0], channels, -1).permute(1, 0, 2).reshape(channels, -1)


def spikes_by_point(inputs: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """Presynaptic spikes as bits ``[fan_in, P]``: ``x[j, p]`` for every tap ``j`` and point ``p``.

    Filled tap by tap from shifted views of the input (no float im2col buffer).
    """
    steps = as_steps(inputs) != 0
    if layer.kind == "fc":
        return steps.reshape(steps.shape[0], -1).t().contiguous()
    n, channels = steps.shape[:2]
    kernel, pad = layer.kernel, layer.padding
    _, out_h, out_w = layer.out_shape
    padded = F.pad(steps, (pad,) * 4)
    bits = torch.empty(
        channels, kernel, kernel, n, out_h, out_w, dtype=torch.bool, device=inputs.device
    )
    for dy, dx, window in tap_windows(padded, layer):
        bits[:, dy, dx] = window.transpose(0, 1)
    return bits.reshape(layer.fan_in, n * out_h * out_w)


def update_engine(
    grad_output: torch.Tensor,
    inputs: torch.Tensor,
    layer: LayerSpec,
    k: int = 4,
    fmt: str | NumberFormat = "float32",
    skip_zero_patterns: bool = False,
    *,
    sequential_loop: bool = False,
    table_chunk_entries: int = TABLE_CHUNK_ENTRIES,
    partial_sum_groups: int | None = PARTIAL_SUM_GROUPS,
) -> EngineResult:
    """Weight gradient ``dW`` (``layer.weight_shape``) on the Weight Update Engine.

    Args:
        grad_output: ``du`` of the layer, ``[T, B, *layer.out_shape]``.
        inputs: the layer's input, ``[T, B, *layer.in_shape]``; binary spikes
            unless the layer is the encoding layer (dense fallback).
        layer: the layer's spec.
        k: LUT group size (points fused per lookup).
        fmt: number format.
        skip_zero_patterns: do not look up all-zero patterns.
        sequential_loop / table_chunk_entries: model-internal knobs for tests;
            they do not change the result (accumulation order is fixed).
        partial_sum_groups: point groups per partial dW sum (``None``: one
            sequential sum); see the module docstring.

    ``spike_reads`` counts k-bit patterns (one per input and point group).
    """
    fmt = as_format(fmt)
    _check_inputs(grad_output, inputs, layer)
    check_group_size(k, ENGINE)
    out_channels = layer.out_channels
    check_table_size(k, out_channels, ENGINE)
    du = gradients_by_point(operand_values(grad_output, fmt))  # [O, P]
    if not layer.binary_input:
        return _dense_update(du, inputs, layer, fmt)
    check_binary(inputs, "inputs", ENGINE)
    check_fixed_bound(du.abs().sum(1).max(), fmt, f"{ENGINE} on {layer.name}")
    bits = spikes_by_point(inputs, layer)  # [fan_in, P]
    fan_in, points = bits.shape
    point_groups = math.ceil(points / k)
    per_pass = max(1, min(table_chunk_entries // (2**k * out_channels), CHUNK_ELEMENTS // fan_in))
    block = partial_sum_groups
    if block is not None:
        if block < 1:
            raise EngineError(f"{ENGINE}: partial_sum_groups={block} must be at least 1")
        per_pass = max(block, per_pass // block * block)  # passes hold whole blocks

    device = du.device
    accumulator = torch.zeros(fan_in, out_channels, dtype=du.dtype, device=device)
    carry_rows = torch.arange(fan_in, dtype=torch.int32, device=device).view(fan_in, 1)
    zero_patterns = 0
    for first in range(0, point_groups, per_pass):
        last = min(point_groups, first + per_pass)
        start, stop = first * k, min(points, last * k)
        groups = last - first
        patterns = pack_patterns(bits[:, start:stop], k)  # [fan_in, groups]
        zero_patterns += patterns.numel() - int(torch.count_nonzero(patterns))
        if block is not None:
            _add_block_sums(accumulator, du[:, start:stop], patterns, k, block)
            continue
        # One table store: this pass's LUTs, then the running accumulator, which
        # enters every bag first so that the adds stay strictly sequential.
        table = torch.empty(groups * 2**k + fan_in, out_channels, dtype=du.dtype, device=device)
        build_subset_tables(du[:, start:stop], k, out=table[: groups * 2**k].view(groups, 2**k, -1))
        table[groups * 2**k :] = accumulator
        offsets = torch.arange(groups, dtype=torch.int32, device=device) * 2**k
        rows = torch.cat([carry_rows + groups * 2**k, patterns + offsets], dim=1)
        accumulator = accumulate_lookups(rows, table, sequential_loop)

    gradient = accumulator.t().reshape(layer.weight_shape)
    counts = lut_counts(ENGINE, layer, k, points, zero_patterns, skip_zero_patterns, block)
    return EngineResult(ENGINE, write_out(gradient, fmt.frac_bits, fmt), counts)


def _add_block_sums(
    accumulator: torch.Tensor, du: torch.Tensor, patterns: torch.Tensor, k: int, block: int
) -> None:
    """Add this pass's blocks into ``accumulator`` (``[fan_in, out]``) one after another.

    Each block's lookups are summed from zero first.  A block shorter than
    ``block`` is padded with lookups of an all-zero row (adding 0 changes no
    float sum), so the result does not depend on how passes are cut.
    """
    fan_in, groups = patterns.shape
    blocks = math.ceil(groups / block)
    table = torch.zeros(groups * 2**k + 1, du.shape[0], dtype=du.dtype, device=du.device)
    build_subset_tables(du, k, out=table[: groups * 2**k].view(groups, 2**k, -1))
    offsets = torch.arange(groups, dtype=torch.int32, device=du.device) * 2**k
    rows = torch.full((fan_in, blocks * block), groups * 2**k, dtype=torch.int32)
    rows[:, :groups] = patterns + offsets
    partial = accumulate_lookups(rows.view(fan_in * blocks, block), table)
    partial = partial.view(fan_in, blocks, -1)
    for b in range(blocks):
        accumulator += partial[:, b]


def _inputs_by_point(x: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """Analog inputs as ``[1, P, fan_in]`` (points in (t, b, position) order)."""
    steps = as_steps(x)
    parts = [
        unfold_points(steps[a:b], layer).transpose(1, 2).reshape(-1, layer.fan_in)
        for a, b in step_chunks(steps.shape[0], layer.fan_in * layer.out_positions)
    ]
    return torch.cat(parts).unsqueeze(0)


def _dense_update(
    du: torch.Tensor, inputs: torch.Tensor, layer: LayerSpec, fmt: NumberFormat
) -> EngineResult:
    """Analog inputs: dense MACs over points [ours].

    Float32/float64 use torch's weight-gradient kernels in the dtype; 16-bit
    floats add one point at a time in the format; fixed point forms exact
    products with ``2F`` fraction bits and rounds once at write-out.
    """
    x = operand_values(inputs, fmt)
    out_channels, points = du.shape
    if fmt.is_fixed:
        bound = du.abs().sum(1).max() * x.abs().max()
        check_fixed_bound(bound, fmt, f"{ENGINE} (dense) on {layer.name}")
    if is_low_precision_float(fmt):
        gradient = sequential_matmul(du, _inputs_by_point(x, layer))[0]
    elif layer.kind == "conv":
        grad_steps = du.reshape(out_channels, -1, layer.out_positions).transpose(0, 1)
        grad_steps = grad_steps.reshape(-1, *layer.out_shape)
        steps = as_steps(x)
        # Partial sums per (time step, sample), merged in order, as in the LUT path:
        # one float32 kernel over all ~1e5 points loses ~1e-5 relative accuracy.
        gradient = torch.zeros(layer.weight_shape, dtype=du.dtype, device=du.device)
        for index in range(steps.shape[0]):
            gradient += torch.nn.grad.conv2d_weight(
                steps[index : index + 1],
                layer.weight_shape,
                grad_steps[index : index + 1],
                stride=layer.stride,
                padding=layer.padding,
            )
    else:
        gradient = du @ as_steps(x)
    gradient = gradient.reshape(layer.weight_shape)
    counts = dense_update_counts(layer, points // layer.out_positions)
    return EngineResult(ENGINE, write_out(gradient, 2 * fmt.frac_bits, fmt), counts)


def dense_update_counts(layer: LayerSpec, steps: int) -> dict[str, int]:
    """Counts of ``dW = du (x) x`` on a dense MAC array over ``steps`` (time steps x samples).

    One multiply and one accumulation per MAC; every ``du`` and input word is
    read once, every ``dW`` word written once [ours].  Data-free: the Weight
    Update Engine's analog path and :mod:`h2learn.arch.activity` both count with it.
    """
    points = steps * layer.out_positions
    macs = points * layer.fan_in * layer.out_channels
    return make_counts(
        ENGINE,
        UPDATE_COUNT_KEYS,
        multiplies=macs,
        accumulations=macs,
        grad_reads=layer.out_channels * points,
        input_reads=layer.fan_in * points,
        output_writes=layer.out_channels * layer.fan_in,
        dense_macs=macs,
    )
