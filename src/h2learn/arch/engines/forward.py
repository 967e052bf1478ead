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

from h2learn.arch.engines.counts import (
    FORWARD_COUNT_KEYS,
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
    check_weights,
    is_low_precision_float,
    make_counts,
    operand_values,
    sequential_matmul,
    step_chunks,
    unfold_points,
    write_out,
)
from h2learn.arch.numerics import NumberFormat, as_format
from h2learn.spec import LayerSpec

ENGINE = "forward_engine"


# --------------------------------------------------------------------------
# The LUT mechanism (shared with the Weight Update Engine)
# --------------------------------------------------------------------------


def build_subset_tables(
    values: torch.Tensor, k: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Subset-sum tables of groups of ``k`` values: ``[rows, n] -> [ceil(n/k), 2**k, rows]``.

    Represents the table-build step of a LUT PE: for every group of ``k``
    consecutive entries along the last axis and every row, entry ``s`` holds
    the sum of the values whose bit is set in ``s``, built incrementally (one
    add per entry that is not the empty set or a singleton), each add in the
    dtype of ``values``.  A short last group is zero-padded; its padded bits
    are never set in a pattern.  ``out`` may supply the storage.
    """
    rows, n = values.shape
    groups = math.ceil(n / k)
    padded = F.pad(values, (0, groups * k - n)) if groups * k != n else values
    members = padded.reshape(rows, groups, k).permute(1, 2, 0)  # [groups, k, rows]
    if out is None:
        out = torch.empty(groups, 2**k, rows, dtype=values.dtype, device=values.device)
    out[:, 0] = 0
    for bit in range(k):
        low = 2**bit
        torch.add(out[:, :low], members[:, bit : bit + 1], out=out[:, low : 2 * low])
    return out


def table_build_costs(n: int, k: int) -> tuple[int, int]:
    """``(adds, entries)`` to build the tables of one row over ``n`` values in groups of ``k``.

    A full group costs ``2**k - k - 1`` adds and ``2**k`` entries; a short last
    group of ``k'`` values ``2**k' - k' - 1`` and ``2**k'``.
    """
    full, rest = divmod(n, k)
    adds = full * (2**k - k - 1)
    entries = full * 2**k
    if rest:
        adds += 2**rest - rest - 1
        entries += 2**rest
    return adds, entries


def lut_counts(
    engine: str,
    layer: LayerSpec,
    k: int,
    points: int,
    zero_patterns: int,
    skip_zero_patterns: bool,
    block: int | None = None,
) -> dict[str, int]:
    """Exact event counts of one LUT pass of the Forward or the Weight Update Engine.

    Both engines run the same mechanism with the two operands swapped;
    ``engine`` (``"forward_engine"`` or ``"update_engine"``) picks the
    orientation.  With ``O`` output channels, fan-in ``F`` and ``P`` points
    (time steps x samples x output positions):

    * tables are built over the *span*: the fan-in ``F`` (Forward Engine,
      weights) or the ``P`` points (Weight Update Engine, ``du``);
    * the patterns *presented* to each table are one per point (``P``,
      Forward Engine) or one per presynaptic input (``F``, Weight Update Engine);
    * the table operands are read once: ``weight_reads = F*O`` or ``grad_reads = P*O``;
    * one output word per output channel and presented pattern: the outputs
      (Forward Engine) or the ``dW`` words (Weight Update Engine).

    Per output channel, ``ceil(span / k)`` tables are built (costs from
    :func:`table_build_costs`) and every presented pattern is looked up in each
    of them.  ``zero_patterns`` is the number of (presented pattern, group)
    pairs with no spike; each is looked up by every output channel's PE, or
    skipped with ``skip_zero_patterns`` (same result, fewer lookups).
    ``block`` (Weight Update Engine only) is the number of point groups a PE
    sums before merging its partial ``dW`` into the buffer
    (``partial_sum_adds``); ``None`` is one sequential accumulation.

    Conventions [ours]: tables are built once per call (one weight or
    gradient version), reading each table operand once; an accumulator starts
    at zero and every performed lookup is one add (``accumulations ==
    lookups``); a k-bit pattern is read once per group and broadcast to all
    output channels (``spike_reads``); each output word is written once per call.

    Public because :mod:`h2learn.arch.activity` feeds the same formula with
    pattern counts taken from a trace or from densities, so the cost model and
    the engines count alike.
    """
    fan_in, out_channels = layer.fan_in, layer.out_channels
    if engine == "forward_engine":
        span, presented, keys, operand = fan_in, points, FORWARD_COUNT_KEYS, "weight_reads"
    elif engine == "update_engine":
        span, presented, keys, operand = points, fan_in, UPDATE_COUNT_KEYS, "grad_reads"
    else:
        raise EngineError(
            f"lut_counts: engine={engine!r} has no LUT; use 'forward_engine' or 'update_engine'"
        )
    groups = math.ceil(span / k)
    adds, entries = table_build_costs(span, k)
    extra: dict[str, int] = {}
    if block is not None:
        if engine != "update_engine":
            raise EngineError(f"{engine}: no partial-sum blocks (block={block}); pass None")
        extra["partial_sum_adds"] = math.ceil(groups / block) * presented * out_channels
    all_lookups = groups * presented * out_channels
    zero_lookups = zero_patterns * out_channels
    skipped = zero_lookups if skip_zero_patterns else 0
    performed = all_lookups - skipped
    return make_counts(
        engine,
        keys,
        table_build_adds=adds * out_channels,
        table_entries_written=entries * out_channels,
        lookups=performed,
        zero_pattern_lookups=zero_lookups,
        lookups_skipped=skipped,
        accumulations=performed,
        table_reads=performed,
        spike_reads=groups * presented,
        output_writes=out_channels * presented,
        dense_macs=span * presented * out_channels,
        **{operand: span * out_channels},
        **extra,
    )


def pack_patterns(bits: torch.Tensor, k: int) -> torch.Tensor:
    """Pack groups of ``k`` bits along the last axis into integers: ``[a, m] -> [a, ceil(m/k)]``.

    Bit ``j`` of a pattern is element ``j`` of its group; a short last group is
    zero-padded.  Represents the spike-pattern register that addresses a LUT.
    Returns int32 (patterns have at most 28 bits, see ``MAX_TABLE_ENTRIES``).
    """
    a, m = bits.shape
    groups = math.ceil(m / k)
    work = torch.float32 if k <= 24 else torch.float64  # exact integer sums
    values = bits.to(work)
    if groups * k != m:
        values = F.pad(values, (0, groups * k - m))
    weights = 2.0 ** torch.arange(k, dtype=work, device=bits.device)
    return (values.view(a, groups, k) @ weights).to(torch.int32)


def conv_patterns(steps: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """Spike patterns of every point of a conv layer: ``[n, C, H, W] -> [n, groups, L]`` (int32).

    Same result as packing the unfolded input along its fan-in, without materialising the
    unfolded tensor: for each kernel offset, the shifted input map is added,
    scaled by each input's bit weight, into its group's pattern.
    """
    n, channels = steps.shape[:2]
    kernel, stride = layer.kernel, layer.stride
    _, out_h, out_w = layer.out_shape
    work = torch.float32 if k <= 24 else torch.float64
    padded = F.pad(steps.to(work), (layer.padding,) * 4)
    groups = math.ceil(layer.fan_in / k)
    patterns = torch.zeros(n, groups, out_h, out_w, dtype=work, device=steps.device)
    channel = torch.arange(channels, device=steps.device)
    for dy in range(kernel):
        for dx in range(kernel):
            fan_index = channel * kernel * kernel + dy * kernel + dx
            bit_weight = (2.0 ** (fan_index % k)).to(work).view(1, channels, 1, 1)
            window = padded[
                :,
                :,
                dy : dy + stride * (out_h - 1) + 1 : stride,
                dx : dx + stride * (out_w - 1) + 1 : stride,
            ]
            patterns.index_add_(1, fan_index // k, window * bit_weight)
    return patterns.reshape(n, groups, out_h * out_w).to(torch.int32)


def point_patterns(steps: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """k-bit spike patterns ``[n, groups, L]`` of a chunk of steps (conv or fc)."""
    if layer.kind == "conv":
        return conv_patterns(steps, layer, k)
    return pack_patterns(steps.reshape(steps.shape[0], -1), k).unsqueeze(2)


def accumulate_lookups(
    rows: torch.Tensor, table: torch.Tensor, sequential_loop: bool = False
) -> torch.Tensor:
    """``out[p] = sum_g table[rows[p, g]]``, added in order ``g = 0, 1, ...`` in the table's dtype.

    Represents the accumulators of the LUT PEs (one per output channel, all
    fed by the same address).  ``embedding_bag(mode="sum")`` adds a bag's rows
    sequentially from zero in the table dtype for float32/float64; 16-bit
    floats take an explicit loop over groups (torch would accumulate wider).
    """
    if sequential_loop or table.dtype in (torch.float16, torch.bfloat16):
        out = torch.zeros(rows.shape[0], table.shape[1], dtype=table.dtype, device=table.device)
        for g in range(rows.shape[1]):
            out += table.index_select(0, rows[:, g])
        return out
    return F.embedding_bag(rows, table, mode="sum")


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
    points = steps.shape[0] * positions
    macs = fan_in * out_channels * points
    counts = make_counts(
        ENGINE,
        FORWARD_COUNT_KEYS,
        multiplies=macs,
        accumulations=macs,
        weight_reads=fan_in * out_channels,
        input_reads=fan_in * points,
        output_writes=out_channels * points,
        dense_macs=macs,
    )
    return EngineResult(ENGINE, output, counts)
