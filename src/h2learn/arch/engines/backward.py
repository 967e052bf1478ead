"""Backward Engine: the transposed product ``do = W^T (*) du`` with dual sparsity.

Hardware behaviour [paper: "exploits both input and output sparsity"; which
tensors, ours from SYSTEM.md section 1]:

* **Input sparsity**: entries of ``du`` (the gradient of the layer's membrane
  potential) that are zero are skipped: their MACs are not performed.  The
  engine fetches ``du`` in compressed form, non-zeros only.
* **Output sparsity**: ``do`` is computed only where the lower layer's
  surrogate mask ``h(u) != 0`` (a 1-bit mask saved in the forward pass); the
  other positions are multiplied by zero in the LIF backward anyway, so the
  engine neither computes nor writes them (the model returns 0 there).
* A MAC skipped for both reasons is counted as skipped for the output.
* ``lower_mask=None`` means no mask (encoding layer's input, or no neuron
  below): every position is needed.

Skipping changes counts only; the result equals the dense transposed
product (masked).  Arithmetic as in :mod:`h2learn.arch.numerics`: float32 and
float64 use torch's transposed-convolution / matmul kernels in the dtype;
16-bit floats add one product at a time in the format (output channel by
output channel, then the overlapping kernel taps); fixed point multiplies
exact integers (``2F`` fraction bits), accumulates exactly and rounds once.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from h2learn.arch.engines.common import (
    BACKWARD_COUNT_KEYS,
    EngineError,
    EngineResult,
    as_steps,
    check_activation,
    check_fixed_bound,
    check_weighted_layer,
    check_weights,
    is_low_precision_float,
    make_counts,
    operand_values,
    sequential_matmul,
    step_chunks,
    write_out,
)
from h2learn.arch.numerics import NumberFormat, as_format
from h2learn.spec import LayerSpec

ENGINE = "backward_engine"


def _check_inputs(
    weights: torch.Tensor,
    grad_output: torch.Tensor,
    lower_mask: torch.Tensor | None,
    layer: LayerSpec,
) -> None:
    check_weighted_layer(layer, ENGINE)
    check_weights(weights, layer, ENGINE)
    check_activation(grad_output, layer.out_shape, "grad_output", layer, ENGINE)
    if lower_mask is not None:
        check_activation(lower_mask, layer.in_shape, "lower_mask", layer, ENGINE)
        if lower_mask.shape[:2] != grad_output.shape[:2]:
            raise EngineError(
                f"{ENGINE}: lower_mask has [T, B] = {tuple(lower_mask.shape[:2])} but grad_output "
                f"has {tuple(grad_output.shape[:2])}; pass tensors of the same steps and batch"
            )
        if lower_mask.dtype != torch.bool:
            raise EngineError(f"{ENGINE}: lower_mask must be a bool tensor, got {lower_mask.dtype}")


def _as_maps(tensor: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """``[T, B, *shape] -> [T*B, C, H, W]``; fc vectors become ``C x 1 x 1`` maps."""
    steps = as_steps(tensor)
    return steps if layer.kind == "conv" else steps.reshape(*steps.shape, 1, 1)


def _geometry(layer: LayerSpec) -> tuple[int, int, int, tuple[int, int]]:
    """``(kernel, stride, padding, (H, W))`` with fc as a 1x1 convolution."""
    if layer.kind == "conv":
        return layer.kernel, layer.stride, layer.padding, tuple(layer.in_shape[1:])  # type: ignore[return-value]
    return 1, 1, 0, (1, 1)


def _transposed_product(
    weights: torch.Tensor, grad_maps: torch.Tensor, layer: LayerSpec, fmt: NumberFormat
) -> torch.Tensor:
    """``W^T (*) du`` over ``[n, O, Ho, Wo]`` maps, computed in ``fmt``'s datapath values."""
    kernel, stride, padding, size = _geometry(layer)
    w = weights.reshape(layer.out_channels, layer.in_channels, kernel, kernel)
    n = grad_maps.shape[0]
    if not is_low_precision_float(fmt):
        return torch.nn.grad.conv2d_input(
            (n, layer.in_channels, *size), w, grad_maps, stride=stride, padding=padding
        )
    # 16-bit floats: per point, sum over output channels one at a time, then fold the taps.
    columns_weights = w.reshape(layer.out_channels, -1).t()  # [C*k*k, O]
    positions = grad_maps.shape[2] * grad_maps.shape[3]
    parts = []
    for a, b in step_chunks(n, positions * (columns_weights.shape[0] + layer.out_channels)):
        columns = sequential_matmul(columns_weights, grad_maps[a:b].reshape(b - a, -1, positions))
        parts.append(F.fold(columns, size, kernel, padding=padding, stride=stride))
    return torch.cat(parts)


def backward_engine(
    weights: torch.Tensor,
    grad_output: torch.Tensor,
    lower_mask: torch.Tensor | None,
    layer: LayerSpec,
    fmt: str | NumberFormat = "float32",
    input_sparsity: bool = True,
    output_sparsity: bool = True,
) -> EngineResult:
    """The gradient w.r.t. the layer input, ``[T, B, *layer.in_shape]``, on the Backward Engine.

    Args:
        weights: ``layer.weight_shape``.
        grad_output: ``du`` of this layer, ``[T, B, *layer.out_shape]``.
        lower_mask: bool ``[T, B, *layer.in_shape]``, the surrogate mask of the
            layer below (``None``: all ones).
        layer: the layer's spec.
        fmt: number format.
        input_sparsity: skip MACs of zero ``du`` entries (counts only).
        output_sparsity: compute ``do`` only where ``lower_mask`` is set
            (elsewhere the output is 0).

    Returns ``EngineResult(do, counts)`` with :data:`BACKWARD_COUNT_KEYS`.
    """
    fmt = as_format(fmt)
    _check_inputs(weights, grad_output, lower_mask, layer)
    w = operand_values(weights, fmt)
    du = operand_values(grad_output, fmt)
    grad_maps = _as_maps(du, layer)
    if fmt.is_fixed:
        kernel, stride, _, _ = _geometry(layer)
        taps = layer.out_channels * -((-kernel // stride) ** 2)  # most terms of one output
        check_fixed_bound(w.abs().max() * du.abs().max() * taps, fmt, f"{ENGINE} on {layer.name}")
    values = _transposed_product(w, grad_maps, layer, fmt)
    steps_shape = (grad_output.shape[0], grad_output.shape[1], *layer.in_shape)
    output = write_out(values, 2 * fmt.frac_bits, fmt).reshape(steps_shape)
    if output_sparsity and lower_mask is not None:
        output = torch.where(lower_mask, output, torch.zeros((), dtype=output.dtype))
    counts = backward_counts(grad_maps != 0, lower_mask, layer, input_sparsity, output_sparsity)
    return EngineResult(ENGINE, output, counts)


def connections(indicator: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """Per lower position ``[n, 1, H, W]``: how many ``(o, tap)`` pairs with indicator 1 reach it.

    ``indicator`` is ``[n, 1, Ho, Wo]`` holding, per upper position, a count
    over output channels (of all of them, or of those with a non-zero ``du``);
    the transposed convolution with a ones kernel sums it over the kernel taps
    that connect each lower position.  Every such ``(o, tap)`` pair is one MAC
    of ``W^T (*) du`` at that position, so this is the Backward Engine's MAC
    count per lower element before output sparsity (fc layers: ``[n, 1, 1, 1]``).

    Public because :mod:`h2learn.arch.activity` counts the links of trace-mode
    tasks with it and turns them into counts with :func:`backward_counts_from_links`,
    as :func:`backward_counts` does.
    """
    kernel, stride, padding, size = _geometry(layer)
    ones = torch.ones(1, 1, kernel, kernel, dtype=torch.float64)
    return torch.nn.grad.conv2d_input(
        (indicator.shape[0], 1, *size), ones, indicator, stride=stride, padding=padding
    )


def backward_counts(
    nonzero_du: torch.Tensor,
    lower_mask: torch.Tensor | None,
    layer: LayerSpec,
    input_sparsity: bool,
    output_sparsity: bool,
) -> dict[str, int]:
    """Exact MAC and access counts of the Backward Engine, derived from the data.

    ``nonzero_du`` is the bool map ``[n, O, Ho, Wo]`` of non-zero gradients.
    A lower element ``(c, y, x)`` of step ``s`` receives one MAC per pair
    (output channel, kernel tap) that links it to an existing ``du`` position:
    ``all`` of them densely, ``nonzero`` of them with input sparsity.
    """
    n = nonzero_du.shape[0]
    channels = layer.in_channels
    upper_ones = torch.full((1, 1, *nonzero_du.shape[2:]), float(layer.out_channels))
    all_links = connections(upper_ones.double(), layer)  # [1, 1, H, W]
    nonzero_links = connections(nonzero_du.sum(1, keepdim=True, dtype=torch.float64), layer)
    if lower_mask is not None and output_sparsity:
        active = _as_maps(lower_mask, layer).sum(1, keepdim=True, dtype=torch.float64)
    else:
        active = torch.full((n, 1, 1, 1), float(channels), dtype=torch.float64)
    dense = channels * n * all_links.sum()
    done_links = nonzero_links if input_sparsity else all_links
    masked = output_sparsity and lower_mask is not None
    totals = backward_counts_from_links(
        macs_dense=float(dense),
        macs_active=float((active * all_links).sum()),
        macs_done=float((active * done_links).sum()),
        grads=nonzero_du.numel(),
        nonzero_grads=int(nonzero_du.sum()),
        lower_elements=n * math.prod(layer.in_shape),
        active_elements=float(active.sum()),
        input_sparsity=input_sparsity,
        masked=masked,
    )
    return make_counts(ENGINE, BACKWARD_COUNT_KEYS, **totals)


def backward_counts_from_links(
    *,
    macs_dense: float,
    macs_active: float,
    macs_done: float,
    grads: float,
    nonzero_grads: float,
    lower_elements: float,
    active_elements: float,
    input_sparsity: bool,
    masked: bool,
) -> dict[str, float]:
    """The Backward Engine's counts from its link totals (data-free; exact or expected).

    ``macs_dense``: all ``(lower element, output channel, tap)`` links;
    ``macs_active``: those of lower elements whose mask is set (all of them
    unless ``masked``); ``macs_done``: active links to a non-zero ``du``
    (with ``input_sparsity``, else all active links).  ``grads`` /
    ``nonzero_grads``: ``du`` words in all / non-zero; ``lower_elements`` /
    ``active_elements``: lower-layer elements in all / with the mask set.

    A MAC skipped for both reasons counts as skipped for the output; one
    weight read per MAC done; ``du`` fetched compressed (non-zeros only) with
    input sparsity; one mask bit read per lower element and ``do`` written
    only where the mask is set with output sparsity.  Floats, because
    statistical mode passes expected totals; :func:`backward_counts` passes
    exact ones.
    """
    return {
        "macs_done": macs_done,
        "macs_dense": macs_dense,
        "macs_skipped_input": macs_active - macs_done if input_sparsity else 0.0,
        "macs_skipped_output": macs_dense - macs_active,
        "weight_reads": macs_done,
        "grad_reads": nonzero_grads if input_sparsity else grads,
        "mask_reads": lower_elements if masked else 0.0,
        "output_writes": active_elements if masked else lower_elements,
    }
