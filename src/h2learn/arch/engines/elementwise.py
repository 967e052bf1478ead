"""Element-wise units: LIF neurons (forward and BPTT backward), batch norm, pooling, loss.

Each function is the functional model of one hardware unit and returns an
:class:`EngineResult` with exact operation and access counts.  The paper says
nothing about these units; everything here is [ours], chosen to match the
equations of SYSTEM.md section 1 and :mod:`h2learn.snn.neuron`.

Arithmetic
----------
* LIF units run in the datapath format op by op (:class:`Datapath`): floating
  formats round every product and add to the dtype; fixed point keeps stored
  integers, rounds each product back to ``F`` fraction bits and saturates
  (or wraps) after each add, as a narrow neuron datapath would.
* Batch norm, pooling and the loss are modelled at value level: inputs are
  quantized to the format, the unit computes in the format's dtype (float64
  for fixed point) with torch's kernels, and each output is rounded once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from h2learn.arch.engines.counts import EngineError, EngineResult, make_counts
from h2learn.arch.numerics import (
    NumberFormat,
    as_format,
    from_fixed_int,
    quantize,
    saturate_or_wrap,
    shift_round,
    to_fixed_int,
)

LIF_FORWARD_COUNT_KEYS: tuple[str, ...] = (
    "multiplies",  # alpha * u[t-1]
    "adds",  # + x[t]
    "selects",  # reset multiplexer (1 - o[t-1]) as a select
    "compares",  # threshold and the two surrogate-window bounds
    "input_reads",  # x[t]
    "state_reads",  # u[t-1] and o[t-1]
    "state_writes",  # u[t] and o[t] for the next step
    "spike_writes",  # o[t] bits to the activation buffer
    "mask_writes",  # surrogate-mask bits saved for the backward pass
    "potential_writes",  # u[t] saved for the reset-path gradient
)
LIF_BACKWARD_COUNT_KEYS: tuple[str, ...] = (
    "multiplies",
    "adds",
    "selects",  # gating by the surrogate mask and by (1 - o)
    "grad_reads",  # dL/do[t] from the layer above
    "potential_reads",  # u[t] (reset path)
    "state_reads",  # spike and mask bits
    "output_writes",  # du[t]
)
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
# The neuron datapath
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Datapath:
    """Op-by-op arithmetic in a number format (stored values: dtype tensors or int64)."""

    fmt: NumberFormat

    def load(self, tensor: torch.Tensor) -> torch.Tensor:
        if self.fmt.is_fixed:
            return to_fixed_int(tensor, self.fmt)
        return quantize(tensor, self.fmt)

    def constant(self, value: float) -> torch.Tensor:
        return self.load(torch.tensor(float(value), dtype=torch.float64))

    def real(self, stored: torch.Tensor) -> torch.Tensor:
        return from_fixed_int(stored, self.fmt) if self.fmt.is_fixed else stored

    def mul(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.fmt.is_fixed:
            return saturate_or_wrap(shift_round(a * b, self.fmt.frac_bits, self.fmt), self.fmt)
        return a * b

    def add(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return saturate_or_wrap(a + b, self.fmt) if self.fmt.is_fixed else a + b

    def sub(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return saturate_or_wrap(a - b, self.fmt) if self.fmt.is_fixed else a - b

    def zeros_like(self, stored: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(stored)


def _check_time_major(tensor: torch.Tensor, what: str, unit: str) -> None:
    if tensor.dim() < 2:
        raise EngineError(
            f"{unit}: {what} must be time-major [T, B, ...], got {tuple(tensor.shape)}"
        )


def lif_forward_unit(
    x: torch.Tensor,
    alpha: float,
    v_th: float,
    window: float,
    fmt: str | NumberFormat = "float32",
    keep_potential: bool = True,
) -> EngineResult:
    """LIF neurons over ``[T, B, ...]`` input currents: ``output`` = spikes (bool).

    ``u[t] = alpha * u[t-1] * (1 - o[t-1]) + x[t]``, ``o[t] = u[t] > v_th``,
    ``mask[t] = |u[t] - v_th| < window`` (SYSTEM.md section 1).  The reset is
    a multiplexer on the decayed potential; the window test is two compares
    against precomputed bounds.  ``extra``: ``u`` (real values) and ``mask``.
    ``keep_potential`` stores ``u`` for the reset-path gradient.
    Counts are per element-step (uniform: the first step computes too).
    """
    unit = "lif_forward_unit"
    _check_time_major(x, "x", unit)
    path = Datapath(as_format(fmt))
    current = path.load(x)
    decay, threshold = path.constant(alpha), path.constant(v_th)
    low, high = path.constant(v_th - window), path.constant(v_th + window)
    u = path.zeros_like(current[0])
    fired = torch.zeros(current.shape[1:], dtype=torch.bool, device=current.device)
    potentials = torch.empty_like(current)
    spikes = torch.empty(current.shape, dtype=torch.bool, device=current.device)
    for t in range(current.shape[0]):
        decayed = path.mul(decay, u)
        u = path.add(torch.where(fired, path.zeros_like(decayed), decayed), current[t])
        fired = u > threshold
        potentials[t], spikes[t] = u, fired
    mask = (potentials > low) & (potentials < high)
    n = current.numel()
    counts = make_counts(
        unit,
        LIF_FORWARD_COUNT_KEYS,
        multiplies=n,
        adds=n,
        selects=n,
        compares=3 * n,
        input_reads=n,
        state_reads=2 * n,
        state_writes=2 * n,
        spike_writes=n,
        mask_writes=n,
        potential_writes=n if keep_potential else 0,
    )
    return EngineResult(unit, spikes, counts, {"u": path.real(potentials), "mask": mask})


def lif_backward_unit(
    grad_spikes: torch.Tensor,
    u: torch.Tensor,
    spikes: torch.Tensor,
    mask: torch.Tensor,
    alpha: float,
    height: float = 1.0,
    reset_grad: bool = True,
    fmt: str | NumberFormat = "float32",
) -> EngineResult:
    """BPTT through LIF neurons: ``output`` = ``du`` ``[T, B, ...]``.

    From ``t = T`` down to 1 with ``du[T+1] = 0`` (SYSTEM.md section 1)::

        c      = alpha * du[t+1]                       (one multiply, shared)
        do[t]  = g[t] - u[t] * c                        (reset path, if reset_grad)
        du[t]  = height * mask[t] * do[t] + (1 - o[t]) * c

    ``g`` is the spatial gradient ``dL/do`` from the layer above.  Computing
    ``u * (alpha * du)`` instead of ``(alpha * u) * du`` saves a multiply
    [ours]; the two agree bit for bit when ``alpha`` is a power of two.
    The mask gate is a select when ``height == 1``, else a multiply.
    """
    unit = "lif_backward_unit"
    _check_time_major(grad_spikes, "grad_spikes", unit)
    for name, tensor in (("u", u), ("spikes", spikes), ("mask", mask)):
        if tensor.shape != grad_spikes.shape:
            raise EngineError(
                f"{unit}: {name} has shape {tuple(tensor.shape)}, grad_spikes "
                f"{tuple(grad_spikes.shape)}; pass the forward pass's tensors"
            )
    path = Datapath(as_format(fmt))
    grad, potential = path.load(grad_spikes), path.load(u)
    decay, gain = path.constant(alpha), path.constant(height)
    fired, in_window = spikes.to(torch.bool), mask.to(torch.bool)
    zero = path.zeros_like(grad[0])
    du = torch.empty_like(grad)
    carry = None
    for t in range(grad.shape[0] - 1, -1, -1):
        grad_o = grad[t]
        if carry is not None and reset_grad:
            grad_o = path.sub(grad_o, path.mul(potential[t], carry))
        gated = grad_o if height == 1.0 else path.mul(gain, grad_o)
        gated = torch.where(in_window[t], gated, zero)
        if carry is not None:
            gated = path.add(gated, torch.where(fired[t], zero, carry))
        du[t] = gated
        carry = path.mul(decay, gated)
    counts = lif_backward_counts(grad.shape[0], grad[0].numel(), height, reset_grad)
    return EngineResult(unit, path.real(du), counts)


def lif_backward_counts(
    steps: int, elements: int, height: float, reset_grad: bool
) -> dict[str, int]:
    """Event counts of :func:`lif_backward_unit` over ``steps`` steps of ``elements`` neurons.

    The counts depend only on the shape and the settings, not on the data:
    per element, the last step gates only; earlier steps add the carry and
    (with ``reset_grad``) the reset path.  The carry multiply ``alpha * du``
    is counted on the steps that use it; the surrogate height costs one
    multiply per element and step unless it is 1.

    Public because :mod:`h2learn.arch.activity` prices LIF backward tasks
    with it without running the unit.
    """
    earlier = (steps - 1) * elements
    total = steps * elements
    scale = 0 if height == 1.0 else total
    return make_counts(
        "lif_backward_unit",
        LIF_BACKWARD_COUNT_KEYS,
        multiplies=scale + earlier * (2 if reset_grad else 1),
        adds=earlier * (2 if reset_grad else 1),
        selects=total + earlier,
        grad_reads=total,
        potential_reads=earlier if reset_grad else 0,
        state_reads=total,
        output_writes=total,
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
    n = values.numel()
    counts = make_counts(
        unit,
        ARITH_COUNT_KEYS,
        multiplies=2 * n + 4 * channels,
        adds=3 * n,
        sqrts=channels,
        divides=channels,
        input_reads=2 * n,
        param_reads=2 * channels,
        output_writes=n,
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
    n = values.numel()
    counts = make_counts(
        unit,
        ARITH_COUNT_KEYS,
        multiplies=5 * n + 2 * channels,
        adds=5 * n - 2 * channels,
        divides=channels,
        input_reads=4 * n,
        param_reads=3 * channels,
        output_writes=n + 2 * channels,
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
    outputs = out.numel()
    window = kernel * kernel
    counts = make_counts(
        unit,
        ARITH_COUNT_KEYS,
        adds=(window - 1) * outputs if kind == "avgpool" else 0,
        multiplies=outputs if kind == "avgpool" else 0,
        compares=(window - 1) * outputs if kind == "maxpool" else 0,
        input_reads=window * outputs,
        output_writes=outputs,
    )
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
    outputs = dy.numel()
    counts = make_counts(
        unit,
        ARITH_COUNT_KEYS,
        multiplies=outputs if kind == "avgpool" else 0,
        adds=(hits - 1).clamp(min=0).sum(),
        input_reads=outputs * (1 if kind == "avgpool" else 2),
        output_writes=n * channels * math.prod(size),
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
    n = batch * classes
    if kind == "cross_entropy":
        log_probs = torch.log_softmax(rate, dim=1)
        loss = -(log_probs * onehot).sum() / batch
        grad_rate = (log_probs.exp() - onehot) / batch
        ops = {"exps": n, "logs": batch, "divides": n, "compares": batch * (classes - 1)}
        adds = n + batch * (classes - 1) + batch + (batch - 1)
        multiplies = 1
    else:
        diff = rate - onehot
        loss = (diff * diff).sum() / n
        grad_rate = 2 * diff / n
        ops = {}
        adds = n + (n - 1)
        multiplies = n + 1
    grad = (grad_rate / steps).expand(steps, batch, classes)
    counts = make_counts(
        unit,
        ARITH_COUNT_KEYS,
        adds=(steps - 1) * n + adds,
        multiplies=n + multiplies + n,
        input_reads=steps * n,
        output_writes=n + 1,
        **ops,
    )
    return EngineResult(unit, quantize(loss, fmt), counts, {"grad": quantize(grad, fmt)})
