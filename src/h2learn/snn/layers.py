"""Spiking layers over time-major tensors ``[T, B, ...]``.

Weighted operations (conv, linear) and batch norm are time-invariant, so
they run once on the ``T * B`` merged batch — one large kernel call instead of
``T`` small ones.  Layers whose input is binary spikes keep that input for
the weight gradient as ``bool`` (1 byte) instead of float (4 or 8 bytes).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from h2learn.snn.neuron import LIF
from h2learn.spec import LayerSpec, LIFParams


def merge_time(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...] -> [T*B, ...]``."""
    return x.flatten(0, 1)


def split_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[T*B, ...] -> [T, B, ...]``."""
    return x.unflatten(0, (steps, x.shape[0] // steps))


class _SpikeLinear(torch.autograd.Function):
    """``spikes @ W^T`` keeping the binary spikes as bool for the weight gradient."""

    @staticmethod
    def forward(ctx, spikes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(spikes.to(torch.bool), weight)
        ctx.dtype = spikes.dtype
        return spikes @ weight.t()

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        packed, weight = ctx.saved_tensors
        grad_in = grad @ weight if ctx.needs_input_grad[0] else None
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = grad.t() @ packed.to(ctx.dtype)
        return grad_in, grad_w


class _SpikeConv2d(torch.autograd.Function):
    """2-D convolution of binary spikes, keeping them as bool for the weight gradient."""

    @staticmethod
    def forward(ctx, spikes, weight, stride: int, padding: int):  # type: ignore[override]
        ctx.save_for_backward(spikes.to(torch.bool), weight)
        ctx.conf = (spikes.dtype, stride, padding)
        return F.conv2d(spikes, weight, None, stride, padding)

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        packed, weight = ctx.saved_tensors
        dtype, stride, padding = ctx.conf
        mask = (ctx.needs_input_grad[0], ctx.needs_input_grad[1], False)
        grad_in, grad_w, _ = torch.ops.aten.convolution_backward(
            grad,
            packed.to(dtype),
            weight,
            None,
            [stride, stride],
            [padding, padding],
            [1, 1],
            False,
            [0, 0],
            1,
            mask,
        )
        return grad_in, grad_w, None, None


class WeightedBlock(nn.Module):
    """Conv or linear, optional batch norm (tdBN-style, over ``T*B``), optional LIF firing.

    ``input [T, B, ...] -> current -> (+ residual) -> spikes or current [T, B, ...]``.
    A bias is used only when there is no batch norm (which has its own shift).
    """

    def __init__(self, spec: LayerSpec, lif: LIFParams) -> None:
        super().__init__()
        self.spec = spec
        if spec.kind == "conv":
            self.op: nn.Module = nn.Conv2d(
                spec.in_channels,
                spec.out_channels,
                spec.kernel,
                spec.stride,
                spec.padding,
                bias=not spec.batch_norm,
            )
            norm = nn.BatchNorm2d
        else:
            self.op = nn.Linear(spec.in_shape[0], spec.out_shape[0], bias=not spec.batch_norm)
            norm = nn.BatchNorm1d
        self.norm = norm(spec.out_channels) if spec.batch_norm else None
        self.neuron = LIF.from_params(lif) if spec.fires else None

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input current ``W (*) x (+ b)`` (after batch norm), ``[T, B, ...]``."""
        steps = x.shape[0]
        flat = merge_time(x)
        weight = self.op.weight
        if self.spec.binary_input and torch.is_grad_enabled():
            if self.spec.kind == "conv":
                z = _SpikeConv2d.apply(flat, weight, self.spec.stride, self.spec.padding)
            else:
                z = _SpikeLinear.apply(flat, weight)
            if self.op.bias is not None:
                z = z + (self.op.bias.view(1, -1, 1, 1) if z.dim() == 4 else self.op.bias)
        else:
            z = self.op(flat)
        if self.norm is not None:
            z = self.norm(z)
        return split_time(z, steps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        z = self.current(x)
        if residual is not None:
            z = z + residual
        return self.neuron(z) if self.neuron is not None else z


class TimeDistributed(nn.Module):
    """Applies a stateless per-sample module (pooling, flatten) to every time step."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is not None:
            raise ValueError("only weighted layers accept a residual input")
        return split_time(self.module(merge_time(x)), x.shape[0])


def build_layer(spec: LayerSpec, lif: LIFParams) -> nn.Module:
    """The module that computes one :class:`LayerSpec`."""
    if spec.weighted:
        return WeightedBlock(spec, lif)
    if spec.kind == "avgpool":
        return TimeDistributed(nn.AvgPool2d(spec.kernel, spec.stride, spec.padding))
    if spec.kind == "maxpool":
        return TimeDistributed(nn.MaxPool2d(spec.kernel, spec.stride, spec.padding))
    if spec.kind == "flatten":
        return TimeDistributed(nn.Flatten())
    raise ValueError(f"layer {spec.name}: unknown kind {spec.kind!r}")
