"""What every engine returns, the event names it counts, and the plumbing the engines share.

(This module was ``engines/counts.py``; that name still re-exports it.)

An engine model returns an :class:`EngineResult`: the tensor the hardware
writes out and a dictionary of exact event counts (Accelergy style: actions
are counted here and priced elsewhere, by :mod:`h2learn.arch.cost`).  Each
engine has a fixed schema of count names (``*_COUNT_KEYS``); every name is
always present, zero where it does not apply, so a cost table can rely on it.

The rest of the module is shared plumbing: shape checks against a
:class:`~h2learn.spec.LayerSpec`, the conversion of operands into a number
format's datapath values, the single write-out rounding of fixed-point
accumulators, im2col of a time-major activation into "points", and a
sequential multiply-accumulate used where adds must happen one at a time in a
16-bit floating format.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from h2learn.arch.numerics import (
    NumberFormat,
    check_exact_accumulation,
    from_fixed_int,
    quantize,
    round_accumulator,
    to_fixed_int,
)
from h2learn.errors import H2LearnError
from h2learn.spec import LayerSpec

LUT_COUNT_KEYS: tuple[str, ...] = (
    "table_build_adds",  # additions building the 2^k subset-sum tables
    "table_entries_written",  # table words written (all 2^k per table, the zero entry included)
    "lookups",  # table lookups performed (one per group, output channel and point)
    "zero_pattern_lookups",  # lookups whose k-bit pattern is all zero (performed or not)
    "lookups_skipped",  # zero-pattern lookups not performed (skip_zero_patterns)
    "accumulations",  # adds of looked-up values (or of products, dense) into accumulators
    "table_reads",  # table words read (= lookups performed)
    "spike_reads",  # k-bit spike patterns read (one per group; broadcast to all PEs)
    "input_reads",  # analog input words read (dense fallback only)
    "output_writes",  # result words written in the output format
    "dense_macs",  # multiply-accumulates a dense engine would perform
    "multiplies",  # real multiplications (dense fallback only)
)
FORWARD_COUNT_KEYS: tuple[str, ...] = LUT_COUNT_KEYS + ("weight_reads",)
UPDATE_COUNT_KEYS: tuple[str, ...] = LUT_COUNT_KEYS + (
    "grad_reads",
    "partial_sum_adds",  # partial dW sums (one per block of point groups) merged into dW
)
BACKWARD_COUNT_KEYS: tuple[str, ...] = (
    "macs_done",  # multiply-accumulates performed
    "macs_dense",  # multiply-accumulates of the dense transposed product
    "macs_skipped_input",  # skipped because the gradient operand du is zero
    "macs_skipped_output",  # skipped because the lower layer's mask is 0 (wins over input)
    "weight_reads",  # weight operands read (one per MAC performed)
    "grad_reads",  # du words fetched (non-zeros only with input sparsity)
    "mask_reads",  # mask bits read (output sparsity)
    "output_writes",  # do words written
)

MAX_TABLE_ENTRIES = 2**28
"""Largest number of LUT entries an engine call may hold at once [ours: a memory guard]."""

CHUNK_ELEMENTS = 2**24
"""Target size of the intermediate tensors of one chunk of points (bounds memory)."""


class EngineError(H2LearnError, ValueError):
    """An engine was called with inconsistent shapes or settings; the message says how to fix it."""


@dataclass(frozen=True)
class EngineResult:
    """The tensor an engine writes out, its exact event counts and the engine's name.

    ``extra`` holds further outputs of units that produce several (membrane
    potential and mask of the LIF unit, gamma/beta gradients of batch norm).
    """

    name: str
    output: torch.Tensor
    counts: dict[str, int]
    extra: Mapping[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, value in self.counts.items():
            if not isinstance(value, int) or value < 0:
                raise EngineError(f"{self.name}: count {key}={value!r} must be a non-negative int")


def make_counts(name: str, keys: tuple[str, ...], **values: float | int) -> dict[str, int]:
    """A complete count dictionary over ``keys`` (zeros where not given); rejects unknown names."""
    unknown = set(values) - set(keys)
    if unknown:
        raise EngineError(f"{name}: unknown count names {sorted(unknown)}; valid: {list(keys)}")
    counts = {key: 0 for key in keys}
    for key, value in values.items():
        as_int = int(round(float(value)))
        if abs(as_int - float(value)) > 1e-6 * max(1.0, abs(float(value))):
            raise EngineError(f"{name}: count {key}={value} is not an integer (model bug)")
        counts[key] = as_int
    return counts


# --------------------------------------------------------------------------
# Shape checks
# --------------------------------------------------------------------------


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window along one axis."""
    return (size + 2 * padding - kernel) // stride + 1


def check_weighted_layer(layer: LayerSpec, engine: str) -> None:
    """The engines compute conv and fc layers; the spec's output shape must match its geometry."""
    if layer.kind not in ("conv", "fc"):
        raise EngineError(
            f"{engine}: layer {layer.name!r} is {layer.kind}; engines take conv or fc"
        )
    if layer.kind == "conv":
        if len(layer.in_shape) != 3 or len(layer.out_shape) != 3:
            raise EngineError(f"{engine}: conv layer {layer.name!r} needs (C, H, W) shapes")
        _, h, w = layer.in_shape
        expected = (
            layer.out_channels,
            conv_output_size(h, layer.kernel, layer.stride, layer.padding),
            conv_output_size(w, layer.kernel, layer.stride, layer.padding),
        )
        if tuple(layer.out_shape) != expected:
            raise EngineError(
                f"{engine}: layer {layer.name!r} out_shape {layer.out_shape} does not match its "
                f"geometry, which gives {expected}; fix the spec"
            )
    elif len(layer.in_shape) != 1 or len(layer.out_shape) != 1:
        raise EngineError(f"{engine}: fc layer {layer.name!r} needs (N,) shapes; add a flatten")


def check_weights(weights: torch.Tensor, layer: LayerSpec, engine: str) -> None:
    if tuple(weights.shape) != tuple(layer.weight_shape):
        raise EngineError(
            f"{engine}: weights have shape {tuple(weights.shape)} but layer {layer.name!r} "
            f"needs {tuple(layer.weight_shape)}"
        )


def check_activation(
    tensor: torch.Tensor, shape: tuple[int, ...], what: str, layer: LayerSpec, engine: str
) -> None:
    """``tensor`` must be time-major ``[T, B, *shape]``."""
    if tensor.dim() != 2 + len(shape) or tuple(tensor.shape[2:]) != tuple(shape):
        raise EngineError(
            f"{engine}: {what} has shape {tuple(tensor.shape)} but layer {layer.name!r} needs "
            f"[T, B, {', '.join(str(s) for s in shape)}]"
        )


def check_binary(tensor: torch.Tensor, what: str, engine: str) -> None:
    if tensor.dtype == torch.bool:
        return
    if bool(((tensor != 0) & (tensor != 1)).any()):
        raise EngineError(f"{engine}: {what} must be binary spikes (0/1); got other values")


def check_group_size(k: int, engine: str) -> None:
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise EngineError(f"{engine}: LUT group size k={k!r} is invalid; use an integer k >= 1")


def check_table_size(k: int, tables: int, engine: str) -> None:
    entries = 2**k * tables
    if entries > MAX_TABLE_ENTRIES:
        raise EngineError(
            f"{engine}: k={k} needs {entries} LUT entries "
            f"(limit 2**{int(math.log2(MAX_TABLE_ENTRIES))}); use a smaller k"
        )


# --------------------------------------------------------------------------
# Datapath values in a number format
# --------------------------------------------------------------------------


def operand_values(tensor: torch.Tensor, fmt: NumberFormat) -> torch.Tensor:
    """An operand as the datapath holds it.

    Floating formats: the value rounded into the format's dtype.  Fixed point:
    the stored integers, carried exactly in float64 (scaled by ``2**F``).
    """
    if fmt.is_fixed:
        return to_fixed_int(tensor, fmt).to(torch.float64)
    return quantize(tensor, fmt)


def write_out(
    accumulator: torch.Tensor, accumulator_frac_bits: int, fmt: NumberFormat
) -> torch.Tensor:
    """The value an engine writes: floats as computed; fixed point rounded and saturated once."""
    if not fmt.is_fixed:
        return accumulator
    return from_fixed_int(round_accumulator(accumulator, accumulator_frac_bits, fmt), fmt)


def check_fixed_bound(bound: torch.Tensor | float, fmt: NumberFormat, what: str) -> None:
    """For fixed point, make sure the float64 carrier holds every partial sum exactly."""
    if fmt.is_fixed:
        check_exact_accumulation(float(bound), what)


# --------------------------------------------------------------------------
# Points: im2col of time-major activations
# --------------------------------------------------------------------------


def as_steps(tensor: torch.Tensor) -> torch.Tensor:
    """Merge time and batch: ``[T, B, ...] -> [T*B, ...]`` (a view where possible)."""
    return tensor.reshape(tensor.shape[0] * tensor.shape[1], *tensor.shape[2:])


def unfold_points(steps: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """Receptive fields of one chunk of steps: ``[n, fan_in, L]`` in torch's unfold order.

    ``L`` is the number of output positions (1 for fc).  A point is one
    (step, output position); its fan-in index ``j = (c * kh + dy) * kw + dx``.
    """
    if layer.kind == "fc":
        return steps.reshape(steps.shape[0], -1, 1)
    return F.unfold(steps, layer.kernel, padding=layer.padding, stride=layer.stride)


def tap_windows(padded: torch.Tensor, layer: LayerSpec) -> Iterator[tuple[int, int, torch.Tensor]]:
    """``(dy, dx, window)`` for every kernel offset of a padded ``[n, C, H + 2p, W + 2p]`` map.

    ``window`` is the ``[n, C, Ho, Wo]`` strided view of the inputs under tap
    ``(dy, dx)`` at every output position: the one sliding-window loop shared
    by the pattern builders of both LUT engines and the trace-mode counters.
    """
    _, out_h, out_w = layer.out_shape
    stride = layer.stride
    for dy in range(layer.kernel):
        for dx in range(layer.kernel):
            window = padded[
                :,
                :,
                dy : dy + stride * (out_h - 1) + 1 : stride,
                dx : dx + stride * (out_w - 1) + 1 : stride,
            ]
            yield dy, dx, window


def step_chunks(steps: int, elements_per_step: int) -> Iterator[tuple[int, int]]:
    """Ranges of steps whose intermediates hold about :data:`CHUNK_ELEMENTS` elements."""
    size = max(1, CHUNK_ELEMENTS // max(1, elements_per_step))
    for start in range(0, steps, size):
        yield start, min(steps, start + size)


def sequential_matmul(left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """``left [X, R] @ right [n, R, L] -> [n, X, L]`` adding one term at a time in the dtype.

    Each product and each add is rounded to the operands' dtype, terms are added
    in index order.  Models a MAC unit with an accumulator of the format's width
    (used for 16-bit floating formats, where torch kernels accumulate wider).
    """
    accumulator = torch.zeros(
        right.shape[0], left.shape[0], right.shape[2], dtype=left.dtype, device=left.device
    )
    for r in range(left.shape[1]):
        accumulator += left[:, r, None] * right[:, None, r, :]
    return accumulator


def is_low_precision_float(fmt: NumberFormat) -> bool:
    """16-bit floats: torch's CPU kernels would accumulate wider, so the model adds sequentially."""
    return not fmt.is_fixed and fmt.dtype in (torch.float16, torch.bfloat16)
