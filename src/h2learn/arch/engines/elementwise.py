"""Element-wise units: batch norm, pooling, loss, bias, residual and optimizer (and LIF).

Each ``*_unit``/``batchnorm_*``/``pool_*`` function is the functional model of
one hardware unit and returns an :class:`EngineResult` with exact operation
and access counts; each has a data-free ``*_counts`` function (below) that the
unit and :mod:`h2learn.arch.activity` both call.  Units without a functional
model (bias, residual add, optimizer step) have a count function only.  The
paper says nothing about these units; everything here is [ours], chosen to
match the equations of SYSTEM.md section 1.  The LIF units live in
:mod:`h2learn.arch.engines.lif` and are re-exported here.

Batch norm, pooling and the loss are modelled at value level: inputs are
quantized to the format, the unit computes in the format's dtype (float64
for fixed point) with torch's kernels, and each output is rounded once.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F

from h2learn.arch.engines.common import EngineError, EngineResult, make_counts
from h2learn.arch.engines.lif import (
    LIF_BACKWARD_COUNT_KEYS,
    LIF_FORWARD_COUNT_KEYS,
    Datapath,
    lif_backward_counts,
    lif_backward_unit,
    lif_forward_counts,
    lif_forward_unit,
)
from h2learn.arch.numerics import NumberFormat, as_format, quantize

__all__ = [
    "ARITH_COUNT_KEYS",
    "LIF_BACKWARD_COUNT_KEYS",
    "LIF_FORWARD_COUNT_KEYS",
    "Datapath",
    "batchnorm_backward",
    "batchnorm_backward_counts",
    "batchnorm_forward",
    "batchnorm_forward_counts",
    "bias_add_counts",
    "bias_gradient_counts",
    "lif_backward_counts",
    "lif_backward_unit",
    "lif_forward_counts",
    "lif_forward_unit",
    "loss_counts",
    "loss_unit",
    "optimizer_counts",
    "pool_backward",
    "pool_backward_counts",
    "pool_forward",
    "pool_forward_counts",
    "residual_add_counts",
]

ARITH_COUNT_KEYS: tuple[str, ...] = (
    "multiplies",
    "adds",
    "divides",
    "sqrts",
    "exps",
    "logs",
    "compares",
    "input_reads",
    "param_reads",
    "output_writes",
)


# --------------------------------------------------------------------------
# Value-level units: batch norm, pooling, loss
# --------------------------------------------------------------------------


def _values(tensor: torch.Tensor, fmt: NumberFormat) -> torch.Tensor:
    """Operand quantized to the format, in the dtype the unit computes in."""
    return quantize(tensor, fmt)


def _channel_dims(x: torch.Tensor) -> tuple[int, ...]:
    """Reduction axes of tdBN over ``[T, B, C, ...]``: all but the channel axis 2."""
    return tuple(d for d in range(x.dim()) if d != 2)


def _channel_view(values: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return values.view(1, 1, -1, *([1] * (x.dim() - 3)))


def batchnorm_forward(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    eps: float = 1e-5,
    fmt: str | NumberFormat = "float32",
) -> EngineResult:
    """tdBN-style batch norm over ``[T, B, C, ...]``: statistics per channel over T, B and space.

    Two passes: mean and (biased) variance, then ``y = x * scale + shift`` with
    ``scale = gamma / sqrt(var + eps)`` and ``shift = beta - mean * scale``.
    ``extra``: ``mean`` and ``inv_std`` (kept for the backward pass).
    """
    unit = "batchnorm_forward"
    if x.dim() < 3:
        raise EngineError(f"{unit}: x must be [T, B, C, ...], got {tuple(x.shape)}")
    fmt = as_format(fmt)
    values = _values(x, fmt)
    channels = values.shape[2]
    dims = _channel_dims(values)
    mean = values.mean(dims)
    var = ((values - _channel_view(mean, values)) ** 2).mean(dims)
    inv_std = torch.rsqrt(var + eps)
    scale = _values(gamma, fmt) * inv_std
    shift = _values(beta, fmt) - mean * scale
    out = values * _channel_view(scale, values) + _channel_view(shift, values)
    counts = make_counts(
        unit, ARITH_COUNT_KEYS, **batchnorm_forward_counts(values.numel(), channels)
    )
    return EngineResult(unit, quantize(out, fmt), counts, {"mean": mean, "inv_std": inv_std})


def batchnorm_backward(
    grad_y: torch.Tensor,
    x: torch.Tensor,
    gamma: torch.Tensor,
    mean: torch.Tensor,
    inv_std: torch.Tensor,
    fmt: str | NumberFormat = "float32",
) -> EngineResult:
    """Batch-norm backward with batch statistics: ``output`` = dx; ``extra``: dgamma, dbeta.

    ``x_hat = (x - mean) * inv_std`` (recomputed from x [ours]),
    ``dbeta = sum dy``, ``dgamma = sum dy * x_hat``,
    ``dx = gamma * inv_std / m * (m * dy - dbeta - x_hat * dgamma)``.
    """
    unit = "batchnorm_backward"
    if grad_y.shape != x.shape:
        raise EngineError(f"{unit}: grad_y {tuple(grad_y.shape)} and x {tuple(x.shape)} differ")
    fmt = as_format(fmt)
    dy, values = _values(grad_y, fmt), _values(x, fmt)
    channels = values.shape[2]
    dims = _channel_dims(values)
    count = values.numel() // channels
    x_hat = (values - _channel_view(mean.to(values.dtype), values)) * _channel_view(
        inv_std.to(values.dtype), values
    )
    dbeta = dy.sum(dims)
    dgamma = (dy * x_hat).sum(dims)
    factor = _values(gamma, fmt) * inv_std.to(values.dtype) / count
    dx = _channel_view(factor, values) * (
        count * dy - _channel_view(dbeta, values) - x_hat * _channel_view(dgamma, values)
    )
    counts = make_counts(
        unit, ARITH_COUNT_KEYS, **batchnorm_backward_counts(values.numel(), channels)
    )
    extra = {"dgamma": quantize(dgamma, fmt), "dbeta": quantize(dbeta, fmt)}
    return EngineResult(unit, quantize(dx, fmt), counts, extra)


PoolKind = Literal["avgpool", "maxpool"]


def _pool_maps(x: torch.Tensor, unit: str) -> torch.Tensor:
    if x.dim() != 5:
        raise EngineError(f"{unit}: expects [T, B, C, H, W], got {tuple(x.shape)}")
    return x.reshape(-1, *x.shape[2:])


def _check_pool_kind(kind: str, unit: str) -> None:
    if kind not in ("avgpool", "maxpool"):
        raise EngineError(f"{unit}: pool kind {kind!r} is unknown; use 'avgpool' or 'maxpool'")


def pool_forward(
    x: torch.Tensor,
    kind: PoolKind,
    kernel: int,
    stride: int | None = None,
    padding: int = 0,
    fmt: str | NumberFormat = "float32",
) -> EngineResult:
    """Average or max pooling of ``[T, B, C, H, W]`` maps (padding counts as zeros for avg).

    Avg: ``k*k - 1`` adds and one multiply by ``1/k^2`` per output; max:
    ``k*k - 1`` compares per output (an OR for binary spikes).  Every window
    element is read (no reuse between overlapping windows) [ours].
    ``extra['indices']`` (max): flat argmax positions for the backward pass.
    """
    unit = "pool_forward"
    _check_pool_kind(kind, unit)
    fmt = as_format(fmt)
    maps = _pool_maps(_values(x, fmt), unit)
    stride = kernel if stride is None else stride
    extra: dict[str, torch.Tensor] = {}
    if kind == "avgpool":
        out = F.avg_pool2d(maps, kernel, stride, padding)
    else:
        out, indices = F.max_pool2d(maps, kernel, stride, padding, return_indices=True)
        extra["indices"] = indices.reshape(*x.shape[:2], *indices.shape[1:])
    counts = make_counts(unit, ARITH_COUNT_KEYS, **pool_forward_counts(kind, kernel, out.numel()))
    output = quantize(out, fmt).reshape(*x.shape[:2], *out.shape[1:])
    return EngineResult(unit, output, counts, extra)


def pool_backward(
    grad_y: torch.Tensor,
    kind: PoolKind,
    kernel: int,
    input_shape: tuple[int, ...],
    stride: int | None = None,
    padding: int = 0,
    indices: torch.Tensor | None = None,
    fmt: str | NumberFormat = "float32",
) -> EngineResult:
    """Gradient of pooling w.r.t. its input ``[T, B, *input_shape]``.

    Avg: each output gradient is scaled by ``1/k^2`` (one multiply) and sent to
    its window; max: routed to the argmax (``indices`` from :func:`pool_forward`).
    An input receiving ``h`` contributions costs ``h - 1`` adds; the whole
    input gradient is written (zeros included).
    """
    unit = "pool_backward"
    _check_pool_kind(kind, unit)
    fmt = as_format(fmt)
    stride = kernel if stride is None else stride
    dy = _pool_maps(_values(grad_y, fmt), unit)
    n, channels = dy.shape[:2]
    size = tuple(input_shape[1:])
    if kind == "avgpool":
        ones_kernel = torch.ones(channels, 1, kernel, kernel, dtype=dy.dtype)
        dx = torch.nn.grad.conv2d_input(
            (n, channels, *size),
            ones_kernel / (kernel * kernel),
            dy,
            stride,
            padding,
            groups=channels,
        )
        hits = torch.nn.grad.conv2d_input(
            (1, 1, *size),
            torch.ones(1, 1, kernel, kernel, dtype=torch.float64),
            torch.ones(1, 1, *dy.shape[2:], dtype=torch.float64),
            stride,
            padding,
        ).expand(n, channels, *size)
    else:
        if indices is None:
            raise EngineError(f"{unit}: max pooling needs the forward pass's indices")
        flat = indices.reshape(n, channels, -1)
        dx = torch.zeros(n, channels, math.prod(size), dtype=dy.dtype)
        dx.scatter_add_(2, flat, dy.reshape(n, channels, -1))
        hits = torch.zeros(n, channels, math.prod(size), dtype=torch.float64)
        hits.scatter_add_(2, flat, torch.ones_like(flat, dtype=torch.float64))
    adds = float((hits - 1).clamp(min=0).sum())
    inputs = n * channels * math.prod(size)
    counts = make_counts(
        unit, ARITH_COUNT_KEYS, **pool_backward_counts(kind, dy.numel(), inputs, adds)
    )
    output = quantize(dx, fmt).reshape(*grad_y.shape[:2], *input_shape)
    return EngineResult(unit, output, counts)


def loss_unit(
    spikes: torch.Tensor,
    targets: torch.Tensor,
    kind: Literal["cross_entropy", "mse"] = "cross_entropy",
    fmt: str | NumberFormat = "float32",
) -> EngineResult:
    """Loss on the time-mean firing rate of ``[T, B, K]`` outputs; ``output`` = mean loss.

    ``r = mean_t o[t]``; cross-entropy ``-log softmax(r)[target]`` (with the
    max subtracted first) or MSE ``mean (r - onehot)^2``, averaged over the
    batch.  ``extra['grad']`` is ``dL/do[t]`` ``[T, B, K]``: the same for every
    step, so it is written once per sample and class [ours].
    """
    unit = "loss_unit"
    if spikes.dim() != 3:
        raise EngineError(f"{unit}: spikes must be [T, B, K], got {tuple(spikes.shape)}")
    if kind not in ("cross_entropy", "mse"):
        raise EngineError(f"{unit}: loss kind {kind!r} is unknown; use 'cross_entropy' or 'mse'")
    fmt = as_format(fmt)
    steps, batch, classes = spikes.shape
    if targets.shape != (batch,):
        raise EngineError(f"{unit}: targets must be [B] = [{batch}], got {tuple(targets.shape)}")
    rate = _values(spikes, fmt).mean(0)
    onehot = F.one_hot(targets.long(), classes).to(rate.dtype)
    if kind == "cross_entropy":
        log_probs = torch.log_softmax(rate, dim=1)
        loss = -(log_probs * onehot).sum() / batch
        grad_rate = (log_probs.exp() - onehot) / batch
    else:
        diff = rate - onehot
        loss = (diff * diff).sum() / (batch * classes)
        grad_rate = 2 * diff / (batch * classes)
    grad = (grad_rate / steps).expand(steps, batch, classes)
    counts = make_counts(unit, ARITH_COUNT_KEYS, **loss_counts(steps, batch, classes, kind))
    return EngineResult(unit, quantize(loss, fmt), counts, {"grad": quantize(grad, fmt)})


# --------------------------------------------------------------------------
# Data-free counts of the value-level units (engines and activity share them)
# --------------------------------------------------------------------------


def batchnorm_forward_counts(elements: int, channels: int, share: float = 1.0) -> dict[str, float]:
    """Counts of :func:`batchnorm_forward` over ``elements`` values of ``channels`` channels.

    Per element: 2 multiplies and 3 adds over the two passes (statistics,
    then scale and shift), 2 reads, 1 write.  Per channel: 4 multiplies, a
    square root, a divide and 2 parameter reads.  ``share`` is the fraction
    of the per-channel work a task carries when a mini-batch is cut into
    micro-batches that share one set of statistics (``samples / batch``).
    """
    n, c = elements, channels
    return {
        "multiplies": 2 * n + 4 * c * share,
        "adds": 3 * n,
        "sqrts": c * share,
        "divides": c * share,
        "input_reads": 2 * n,
        "param_reads": 2 * c * share,
        "output_writes": n,
    }


def batchnorm_backward_counts(elements: int, channels: int, share: float = 1.0) -> dict[str, float]:
    """Counts of :func:`batchnorm_backward` (``share`` as in :func:`batchnorm_forward_counts`).

    Per element: 5 multiplies, 5 adds (``x_hat``, the two reductions and
    ``dx``), 4 reads, 1 write; per channel 2 multiplies fewer adds (the
    reductions start from their first term), a divide, 3 parameter reads and
    the ``dgamma``/``dbeta`` writes.
    """
    n, c = elements, channels
    return {
        "multiplies": 5 * n + 2 * c * share,
        "adds": 5 * n - 2 * c * share,
        "divides": c * share,
        "input_reads": 4 * n,
        "param_reads": 3 * c * share,
        "output_writes": n + 2 * c * share,
    }


def bias_add_counts(elements: int, channels: int, share: float = 1.0) -> dict[str, float]:
    """A bias added to every output of a layer without batch norm [ours]: 1 add, 1 bias read
    per channel (``share`` as in :func:`batchnorm_forward_counts`)."""
    return {"adds": elements, "param_reads": channels * share}


def bias_gradient_counts(elements: int) -> dict[str, float]:
    """The bias gradient: one add per output gradient (a sum over time, batch and space) [ours]."""
    return {"adds": elements}


def residual_add_counts(elements: int) -> dict[str, float]:
    """A residual shortcut: one add and one read of the shortcut's value per element [ours]."""
    return {"adds": elements, "input_reads": elements}


def pool_forward_counts(kind: str, kernel: int, outputs: int) -> dict[str, float]:
    """Counts of :func:`pool_forward` with ``outputs`` output values (data-free).

    Average: ``k*k - 1`` adds and one multiply by ``1/k^2`` per output; max:
    ``k*k - 1`` compares; every window element read, every output written.
    """
    window = kernel * kernel
    avg = kind == "avgpool"
    return {
        "adds": (window - 1) * outputs if avg else 0,
        "multiplies": outputs if avg else 0,
        "compares": 0 if avg else (window - 1) * outputs,
        "input_reads": window * outputs,
        "output_writes": outputs,
    }


def pool_backward_counts(kind: str, outputs: int, inputs: int, adds: float) -> dict[str, float]:
    """Counts of :func:`pool_backward`: ``outputs`` gradients in, ``inputs`` written.

    ``adds``: contributions beyond the first that meet at an input
    (overlapping windows); the unit counts them from the data, statistical
    mode from the geometry.  Average: one multiply by ``1/k^2`` per output
    gradient; max: the argmax index is read with each gradient.
    """
    avg = kind == "avgpool"
    return {
        "multiplies": outputs if avg else 0,
        "adds": adds,
        "input_reads": outputs * (1 if avg else 2),
        "output_writes": inputs,
    }


def loss_counts(steps: int, batch: int, classes: int, kind: str = "cross_entropy"):
    """Counts of :func:`loss_unit` on ``[steps, batch, classes]`` outputs (data-free).

    The time mean (``(T-1)`` adds per value and one scale), then
    cross-entropy (max, subtract, ``exp``, sum, ``log``, divide; the gradient
    ``softmax - onehot``) or MSE; one read per value and step, the gradient
    written once per value plus the loss word.
    """
    n = batch * classes
    if kind == "cross_entropy":
        ops = {"exps": n, "logs": batch, "divides": n, "compares": batch * (classes - 1)}
        adds = n + batch * (classes - 1) + batch + (batch - 1)
        multiplies = 1
    else:
        ops = {}
        adds = n + (n - 1)
        multiplies = n + 1
    return {
        "adds": (steps - 1) * n + adds,
        "multiplies": n + multiplies + n,
        "input_reads": steps * n,
        "output_writes": n + 1,
        **ops,
    }


def optimizer_counts(parameters: float, optimizer: str) -> dict[str, float]:
    """The update step over ``parameters`` trainable values on the element-wise units [ours].

    SGD ``w -= lr * g``: 1 multiply, 1 add, reads w and g, writes w.  Adam as
    ``torch.optim.Adam`` (without weight decay or AMSGrad): per parameter 6
    multiplies, 4 adds, 1 square root, 1 divide; reads w, g, m, v and writes
    w, m, v.
    """
    p = parameters
    if optimizer == "sgd":
        return {
            "multiplies": p,
            "adds": p,
            "param_reads": p,
            "input_reads": p,
            "output_writes": p,
        }
    return {
        "multiplies": 6 * p,
        "adds": 4 * p,
        "sqrts": p,
        "divides": p,
        "param_reads": p,
        "input_reads": 3 * p,
        "output_writes": 3 * p,
    }
