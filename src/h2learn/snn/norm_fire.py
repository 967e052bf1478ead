"""Batch norm fused with the LIF neuron that fires on its output (training mode).

Also the block without batch norm, ``conv/fc (+ bias) -> LIF`` (``norm=None``):
the same kernels with ``scale = 1`` and ``shift = bias``; and a max or average
pooling behind the neurons.

The block ``conv/fc -> batch norm -> LIF`` is most of a spiking network's
elementwise work.  Run as two operators, batch norm writes its normalised
output, the neuron reads it and writes its spikes and the potential it keeps
for BPTT, and the backward passes read and write those again.  Fused (the C++
kernels of ``norm_lif.cpp``, see :mod:`h2learn.snn.kernels`):

* forward: the per-channel mean and variance of the layer's output ``y`` (two
  passes, accumulated in double), then ``z = y * scale + shift`` charges the
  neuron, which writes only its spikes.  Nothing but ``y``, which batch norm
  keeps anyway, is saved: the neuron keeps no potential.
* backward: per block of elements the potentials are recomputed from ``y``
  (bit for bit the forward pass's values), the BPTT loop of
  :mod:`h2learn.snn.neuron` gives ``dL/dz`` and, in the same pass, the
  per-channel sums that batch norm's backward needs; one more pass turns
  ``dL/dz`` into ``dL/dy`` in place.

What is computed is batch norm over the merged ``T * B`` batch followed by the
LIF neuron, as in :class:`~h2learn.snn.layers.WeightedBlock` unfused; only the
rounding differs (``y * scale + shift`` instead of ``(y - mean) * invstd *
weight + bias``), so the two agree to rounding, and tests check both against
autograd.  Running statistics are updated as ``nn.BatchNorm`` updates them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from h2learn.snn.kernels import require_kernels
from h2learn.snn.layout import channel_innermost, empty_channel_innermost
from h2learn.snn.running_stats import update_running_stats
from h2learn.spec import LIFParams


def fusable(y_dim: int, norm: nn.Module | None, count: int) -> bool:
    """Whether batch norm ``norm`` over ``count`` values per channel can fuse with firing.

    Training mode with batch statistics and an affine transform, on a 2-D
    (fc) or 4-D (conv) output; a batch of one value per channel is left to
    PyTorch, which rejects it with its own error.
    """
    return (
        isinstance(norm, nn.modules.batchnorm._BatchNorm)
        and norm.training
        and norm.affine
        and y_dim in (2, 4)
        and count > 1
    )


def poolable(shape: torch.Size | tuple[int, ...], kernel: int, stride: int, padding: int) -> bool:
    """Whether max or average pooling of a conv output ``[N, C, H, W]`` can fuse behind its neurons.

    Non-overlapping windows that tile the map exactly: ``stride == kernel``, no
    padding, ``H`` and ``W`` multiples of the kernel, at most 256 positions.
    """
    return (
        len(shape) == 4
        and stride == kernel
        and padding == 0
        and 1 <= kernel <= 16
        and shape[2] % kernel == 0
        and shape[3] % kernel == 0
    )


def norm_fire(
    y: torch.Tensor,
    norm: nn.Module | None,
    params: LIFParams,
    steps: int,
    repeated: bool = False,
    pool: int = 0,
    planar: bool = False,
    *,
    average: bool = False,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Spikes ``[T*B, C, ...]`` of LIF neurons driven by batch norm of ``y`` (or by ``y + bias``).

    ``y`` is the merged batch ``[T*B, C, ...]`` of ``steps`` time steps, time
    outermost, or with ``repeated`` one step's ``[B, C, ...]`` that is the
    same at every step (a time-invariant input: batch norm over its ``T``
    copies has the same statistics, and the running variance's correction
    counts ``T * B`` samples, as in the unfused layer).  ``norm`` (an
    ``nn.BatchNorm1d/2d`` in training mode) provides the affine parameters and
    receives the running statistics.  The spikes have ``y``'s layout
    (channels-last for conv outputs).

    ``pool=k`` (a conv output for which :func:`poolable` holds) returns the
    spikes max-pooled over ``k x k`` windows, ``[T*B, C, H/k, W/k]``: they are
    pooled as they are produced, and the unpooled spikes are never stored.
    They are channels-last, or with ``planar`` NCHW-contiguous, so that a
    flatten in PyTorch's ``(C, H, W)`` order that follows is a free view.
    ``average``: average instead of max pooling.

    ``norm=None``: no batch norm, the neurons are charged with ``y + bias``
    (``bias`` a per-channel parameter or ``None``); the gradient reaches
    ``y`` and ``bias`` as through those two operations.
    """
    if pool and not poolable(y.shape, pool, pool, 0):
        shape = tuple(y.shape)
        raise ValueError(f"cannot fuse {pool}x{pool} max pooling into a map of shape {shape}")
    require_kernels()
    y = channel_innermost(y)
    setting = _Setting(params, steps, repeated, pool, planar and bool(pool), average and bool(pool))
    if norm is None:
        return _Fire.apply(y, bias, setting)
    channels = y.shape[1]
    mean = torch.empty(channels, dtype=torch.float64)
    var = torch.empty(channels, dtype=torch.float64)
    torch.ops.h2learn_norm_lif.stats(y, channels, mean, var)
    copies = steps if repeated else 1
    update_running_stats(norm, mean, var, copies * (y.numel() // channels))
    invstd = (var + norm.eps).rsqrt()
    return _NormFire.apply(y, norm.weight, norm.bias, mean, invstd, setting)


@dataclass(frozen=True)
class _Setting:
    """What :class:`_NormFire` computes besides batch norm: the neuron, ``T``, pooling."""

    params: LIFParams
    steps: int
    repeated: bool
    pool: int  # max-pooling kernel behind the neurons, 0: none
    planar: bool  # pooled spikes NCHW-contiguous (else channels-last)
    average: bool = False  # average pooling (else max)

    def kernel_args(self, y: torch.Tensor) -> tuple:
        """The kernels' trailing pooling arguments: kernel, map height and width, layout, mode."""
        return (self.pool, *self.map_size(y), self.planar, self.average)

    def fire(
        self, y: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The fused forward kernel on ``y * scale + shift``: the spikes, and the argmax
        byte of every max-pooling window (an empty tensor without max pooling)."""
        spikes, index = self.empty_out(y), self.empty_index(y)
        p = self.params
        torch.ops.h2learn_norm_lif.forward(
            y,
            scale,
            shift,
            spikes,
            index,
            self.steps,
            self.repeated,
            p.alpha,
            p.v_th,
            *self.kernel_args(y),
        )
        return spikes, index

    def empty_index(self, y: torch.Tensor) -> torch.Tensor:
        """The argmax bytes of max pooling (an empty tensor otherwise)."""
        shape = self.out_shape(y) if self.pool and not self.average else (0, 0)
        return empty_channel_innermost(shape, y, torch.uint8)

    def out_shape(self, y: torch.Tensor) -> tuple[int, ...]:
        batch = y.shape[0] * (self.steps if self.repeated else 1)
        if not self.pool:
            return (batch, *y.shape[1:])
        n, c, h, w = y.shape
        return (batch, c, h // self.pool, w // self.pool)

    def map_size(self, y: torch.Tensor) -> tuple[int, int]:
        """``(H, W)`` of a pooled conv output, ``(0, 0)`` without pooling."""
        return (y.shape[-2], y.shape[-1]) if self.pool else (0, 0)

    def empty_out(self, y: torch.Tensor) -> torch.Tensor:
        """An uninitialised tensor for the spikes (or their gradient) in the kernel's layout."""
        shape = self.out_shape(y)
        if self.planar:
            return torch.empty(shape, dtype=y.dtype, device=y.device)
        return empty_channel_innermost(shape, y)


class _NormFire(torch.autograd.Function):
    """Batch norm (given batch statistics) and LIF firing, with the fused BPTT backward.

    ``mean`` and ``invstd`` (float64) are functions of ``y``; the backward pass
    returns batch norm's full input gradient, which accounts for that, and no
    gradient for them.
    """

    @staticmethod
    def forward(ctx, y, weight, bias, mean, invstd, setting: _Setting):  # type: ignore[override]
        w = weight.detach().double()
        scale64 = w * invstd
        shift64 = bias.detach().double() - mean * scale64
        dtype = y.dtype
        scale, shift = scale64.to(dtype), shift64.to(dtype)
        spikes, index = setting.fire(y, scale, shift)
        ctx.save_for_backward(y, scale, shift, mean, invstd, scale64, index)
        ctx.setting = setting
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):  # type: ignore[override]
        y, scale, shift, mean, invstd, k, index = ctx.saved_tensors
        dtype, channels = y.dtype, y.shape[1]
        grad_y, sums = _bptt(ctx.setting, grad_spikes, index, y, scale, shift, mean, invstd)
        sum_dz, sum_dz_yhat = sums  # dL/dbias, dL/dweight
        count = y.numel() // channels
        mean_dz, mean_dz_yhat = sum_dz / count, sum_dz_yhat / count
        # dL/dy = k * (dz - mean(dz) - y_hat * mean(dz * y_hat)), k = weight * invstd,
        # y_hat = (y - mean) * invstd, written as dz * k + y * b + d per channel.
        b = -k * invstd * mean_dz_yhat
        d = k * (mean * invstd * mean_dz_yhat - mean_dz)
        torch.ops.h2learn_norm_lif.input_grad(grad_y, y, k.to(dtype), b.to(dtype), d.to(dtype))
        needs = ctx.needs_input_grad
        grad_weight = sum_dz_yhat.to(dtype) if needs[1] else None
        grad_bias = sum_dz.to(dtype) if needs[2] else None
        return grad_y, grad_weight, grad_bias, None, None, None


def _bptt(setting: _Setting, grad_spikes, index, y, scale, shift, mean, invstd):
    """The fused BPTT pass: ``(dL/dz, [sum dz, sum dz * y_hat] per channel in float64)``."""
    p = setting.params
    dense = setting.empty_out(y)
    if grad_spikes.stride() != dense.stride():  # the kernel walks y's memory order
        grad_spikes = dense.copy_(grad_spikes)
    dtype = y.dtype
    grad_z = empty_channel_innermost(y.shape, y)
    sums = torch.empty(2, y.shape[1], dtype=torch.float64)
    torch.ops.h2learn_norm_lif.backward(
        grad_spikes,
        index,
        y,
        scale,
        shift,
        mean.to(dtype),
        invstd.to(dtype),
        grad_z,
        sums,
        setting.steps,
        p.alpha,
        p.v_th,
        p.window,
        p.height,
        p.reset_grad,
        setting.repeated,
        *setting.kernel_args(y),
    )
    return grad_z, sums


class _Fire(torch.autograd.Function):
    """LIF firing on ``y + bias`` (no batch norm), with the fused BPTT backward.

    The kernels of :class:`_NormFire` with ``scale = 1`` and ``shift = bias``
    (``y * 1 + bias`` is exactly ``y + bias``); ``dL/dy = dL/dz`` and the bias
    gradient is the kernel's per-channel ``sum dz``.  Only ``y`` is saved.
    """

    @staticmethod
    def forward(ctx, y, bias, setting: _Setting):  # type: ignore[override]
        channels = y.shape[1]
        scale = torch.ones(channels, dtype=y.dtype)
        shift = torch.zeros(channels, dtype=y.dtype) if bias is None else bias.detach().to(y.dtype)
        spikes, index = setting.fire(y, scale, shift)
        ctx.save_for_backward(y, shift, index)
        ctx.setting = setting
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes):  # type: ignore[override]
        y, shift, index = ctx.saved_tensors
        channels = y.shape[1]
        scale = torch.ones(channels, dtype=y.dtype)
        zero = torch.zeros(channels, dtype=torch.float64)
        one = torch.ones(channels, dtype=torch.float64)
        grad_y, sums = _bptt(ctx.setting, grad_spikes, index, y, scale, shift, zero, one)
        grad_bias = sums[0].to(y.dtype) if ctx.needs_input_grad[1] else None
        return grad_y, grad_bias, None
