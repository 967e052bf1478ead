"""Training in the arithmetic of H2Learn's engines.

:class:`EngineNumerics` wraps a :class:`~h2learn.snn.models.SpikingNetwork`
and computes its training step with the functional engine models of
:mod:`h2learn.arch.engines` in a number format of :mod:`h2learn.arch.numerics`
(float16, bfloat16, fixed point ``fixed<I>.<F>`` with a rounding mode):

* ``W (*) input`` -- :func:`~h2learn.arch.engines.forward_engine` (LUT engine, or
  its dense fallback for an analog first layer);
* ``W^T (*) du`` -- :func:`~h2learn.arch.engines.backward_engine`, with the
  lower layer's surrogate mask (output sparsity), as the hardware;
* ``dW = du (x) input`` -- :func:`~h2learn.arch.engines.update_engine`;
* LIF neurons forward and BPTT backward -- the LIF units, op by op in the format;
* batch norm (training: batch statistics) -- the batch-norm units.

The engines *are* the arithmetic: each is an autograd function whose forward
and backward call the engine model, so a training step is bit-identical to
what the engines compute on its trace (``tests/snn/test_engine_numerics.py`` checks
this with :func:`h2learn.arch.verify.verify_trace`).  Outside the engines
[ours, documented in docs/engine-numerics.md]: a bias or residual add rounds its
result into the format; pooling moves values without arithmetic; the
time-mean read-out, the loss and the optimizer run in float32 on a float32
master copy of the weights (the engines see the weights rounded into the
format at every step, as mixed-precision training keeps fp32 master weights:
Micikevicius et al., "Mixed Precision Training", ICLR 2018).

Loss scaling: the gradient entering the network is multiplied by
``loss_scale`` (a power of two, so the scaling itself is exact) and the
parameter gradients are divided by it before the optimizer step.  Without it
a fixed-point format's gradients (``|du|`` ~ 1e-4) would round to zero [same
reference].  Default: :data:`FIXED_LOSS_SCALE` for fixed point, 1 for floating
formats (float16's weight gradients of an analog first layer overflow at
2**10).  In evaluation mode batch norm uses its running statistics and rounds
its output into the format.

``snn`` imports ``arch.engines`` here: those modules import only ``spec``,
``errors`` and ``arch.numerics``, so there is no cycle; training in the
engines' arithmetic needs the engines' arithmetic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from h2learn.arch.engines import (
    backward_engine,
    batchnorm_backward,
    batchnorm_forward,
    forward_engine,
    lif_backward_unit,
    lif_forward_unit,
    update_engine,
)
from h2learn.arch.numerics import FormatError, NumberFormat, as_format, parse_format, quantize
from h2learn.snn.running_stats import update_running_stats
from h2learn.spec import LayerSpec, LIFParams

FIXED_LOSS_SCALE = 1024.0
"""Default loss scale of fixed-point formats, 2**10: brings the last layer's gradients
(about 1/(B*T) of the loss gradient) to O(1), well above the LSB [ours]."""
DEFAULT_LUT_K = 4
"""LUT group size of the default hardware (configs/h2learn.yaml); float sums depend on it."""


def parse_training_format(text: str | NumberFormat) -> NumberFormat:
    """A format to train in: any :mod:`~h2learn.arch.numerics` format with ``F >= 1`` if fixed.

    ``fixed<I>.0`` is refused: every gradient (``|du|`` well below 1) would round to zero.
    """
    fmt = text if isinstance(text, NumberFormat) else parse_format(text)
    if fmt.is_fixed and fmt.frac_bits == 0:
        raise FormatError(
            f"{fmt} has no fraction bits: every gradient would round to 0; "
            f"train with F >= 1 fraction bits, e.g. fixed{fmt.int_bits}.8"
        )
    return fmt


def carrier_dtype(fmt: NumberFormat) -> torch.dtype:
    """The dtype activations and gradients travel in: float64 for fixed point (exact)."""
    return fmt.dtype


@dataclass
class _Layer:
    """What the autograd functions of one weighted layer need, and its recording slot."""

    spec: LayerSpec
    fmt: NumberFormat
    k: int
    scale: float
    lif: LIFParams
    lower_mask: torch.Tensor | None = None
    slot: dict[str, torch.Tensor] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def keep(self, **tensors: torch.Tensor) -> None:
        if self.slot is not None:
            self.slot.update({k: v.detach().clone() for k, v in tensors.items()})


class _Weighted(torch.autograd.Function):
    """``psum = W (*) input`` on the Forward Engine; backward on the Backward and
    Weight Update Engines (``dW`` divided by the loss scale for the optimizer)."""

    @staticmethod
    def forward(ctx, inputs: torch.Tensor, weight: torch.Tensor, op: _Layer):  # type: ignore[override]
        psum = forward_engine(weight.detach(), inputs.detach(), op.spec, k=op.k, fmt=op.fmt).output
        ctx.save_for_backward(inputs, weight)
        ctx.op = op
        op.keep(weight=weight, input=inputs.bool() if op.spec.binary_input else inputs, psum=psum)
        if op.lower_mask is not None:
            op.keep(lower_mask=op.lower_mask)
        return psum.to(carrier_dtype(op.fmt))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        inputs, weight = ctx.saved_tensors
        op: _Layer = ctx.op
        grad_psum = quantize(grad, op.fmt)
        grad_weight = update_engine(grad_psum, inputs, op.spec, k=op.k, fmt=op.fmt).output
        grad_input = None
        if ctx.needs_input_grad[0]:
            lower = op.lower_mask
            grad_input = backward_engine(weight, grad_psum, lower, op.spec, fmt=op.fmt).output
            op.keep(grad_input=grad_input)
        op.keep(grad_psum=grad_psum, grad_weight=grad_weight)
        if grad_input is not None:
            grad_input = grad_input.to(inputs.dtype)
        return grad_input, (grad_weight.double() / op.scale).to(weight.dtype), None


class _Fire(torch.autograd.Function):
    """LIF neurons on the LIF forward and backward units."""

    @staticmethod
    def forward(ctx, current: torch.Tensor, op: _Layer):  # type: ignore[override]
        p = op.lif
        unit = lif_forward_unit(current.detach(), p.alpha, p.v_th, p.window, fmt=op.fmt)
        u, mask, spikes = unit.extra["u"], unit.extra["mask"], unit.output
        ctx.save_for_backward(u, spikes, mask)
        ctx.op = op
        op.extra["mask"] = mask
        op.keep(current=current, u=u, spikes=spikes, mask=mask)
        return spikes.to(current.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        u, spikes, mask = ctx.saved_tensors
        op: _Layer = ctx.op
        p = op.lif
        du = lif_backward_unit(
            grad, u, spikes, mask, p.alpha, p.height, p.reset_grad, fmt=op.fmt
        ).output
        op.keep(grad_output=grad, grad_current=du)
        return du.to(grad.dtype), None


class _BatchNorm(torch.autograd.Function):
    """tdBN with batch statistics on the batch-norm units; updates the running statistics."""

    @staticmethod
    def forward(ctx, z, gamma, beta, norm: nn.Module, op: _Layer):  # type: ignore[override]
        unit = batchnorm_forward(z.detach(), gamma.detach(), beta.detach(), norm.eps, fmt=op.fmt)
        mean, inv_std = unit.extra["mean"], unit.extra["inv_std"]
        count = z.numel() // z.shape[2]
        update_running_stats(norm, mean.float(), (inv_std.double() ** -2 - norm.eps).float(), count)
        ctx.save_for_backward(z, gamma, mean, inv_std)
        ctx.op = op
        return unit.output.to(carrier_dtype(op.fmt))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        z, gamma, mean, inv_std = ctx.saved_tensors
        op: _Layer = ctx.op
        unit = batchnorm_backward(grad, z, gamma.detach(), mean, inv_std, fmt=op.fmt)
        dgamma = (unit.extra["dgamma"].double() / op.scale).to(gamma.dtype)
        dbeta = (unit.extra["dbeta"].double() / op.scale).to(gamma.dtype)
        return unit.output.to(grad.dtype), dgamma, dbeta, None, None


class _Round(torch.autograd.Function):
    """Round into the format (forward); pass the gradient through, divided by ``scale``
    when the operand is a parameter (``scale`` 1 for activations)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, fmt: NumberFormat, scale: float):  # type: ignore[override]
        ctx.dtype, ctx.scale = x.dtype, scale
        return quantize(x, fmt).to(carrier_dtype(fmt))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        if ctx.scale != 1.0:
            grad = grad.double() / ctx.scale
        return grad.to(ctx.dtype), None, None


class _ScaleGrad(torch.autograd.Function):
    """Identity forward; the gradient from the loss is multiplied by the loss scale (exact:
    a power of two) and written into the format, as the loss unit hands it to the engines."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: float, fmt: NumberFormat):  # type: ignore[override]
        ctx.scale, ctx.fmt = scale, fmt
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return quantize(grad.double() * ctx.scale, ctx.fmt).to(grad.dtype), None, None


class EngineNumerics(nn.Module):
    """A network's training step in the engines' arithmetic (see the module docstring).

    ``forward(x)`` returns the float32 rate read-out ``[B, classes]``, as the
    network does.  With ``slots`` (a list), one dict per weighted layer is
    appended and filled with the step's tensors (forward now, gradients during
    ``backward``): what :func:`h2learn.workload.record.record_engine_trace` stores.
    """

    def __init__(
        self,
        network: nn.Module,
        fmt: str | NumberFormat,
        k: int = DEFAULT_LUT_K,
        loss_scale: float | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.fmt = parse_training_format(as_format(fmt))
        if loss_scale is None:
            loss_scale = FIXED_LOSS_SCALE if self.fmt.is_fixed else 1.0
        if not (loss_scale > 0 and math.log2(loss_scale).is_integer()):
            raise FormatError(f"loss_scale={loss_scale} must be a power of two (exact scaling)")
        self.k = k
        self.loss_scale = float(loss_scale)

    def forward(self, x: torch.Tensor, slots: list[dict[str, torch.Tensor]] | None = None):
        net = self.network
        spec = net.spec
        signal = net.encode(x)
        if not spec.layers[0].binary_input:
            signal = _Round.apply(signal, self.fmt, 1.0)
        outputs: list[torch.Tensor] = []
        masks: list[torch.Tensor | None] = []
        for layer, module in zip(spec.layers, net.layers, strict=True):
            inp = signal if layer.source < 0 else outputs[layer.source]
            if not layer.weighted:
                outputs.append(_unweighted(layer, inp))
                masks.append(_route_mask(layer, masks[layer.source] if layer.source >= 0 else None))
                continue
            slot = None if slots is None else {}
            if slots is not None:
                slots.append(slot)
            lower = None if layer.encoding or layer.source < 0 else masks[layer.source]
            op = _Layer(layer, self.fmt, self.k, self.loss_scale, spec.lif, lower, slot)
            residual = None if layer.residual is None else outputs[layer.residual]
            out = self._weighted(module, inp, residual, op)
            outputs.append(out)
            masks.append(op.extra.get("mask"))
        last = outputs[-1]
        if torch.is_grad_enabled() and last.requires_grad:
            last = _ScaleGrad.apply(last, self.loss_scale, self.fmt)
        return last.mean(0).float()

    def _weighted(
        self, module: nn.Module, inp: torch.Tensor, residual: torch.Tensor | None, op: _Layer
    ) -> torch.Tensor:
        """Engine product, bias or batch norm, residual add, then the LIF unit."""
        z = _Weighted.apply(inp, module.op.weight, op)
        if module.op.bias is not None:
            bias = _Round.apply(module.op.bias, self.fmt, self.loss_scale)
            z = _Round.apply(z + bias.view(-1, *([1] * (z.dim() - 3))), self.fmt, 1.0)
        if module.norm is not None:
            z = self._norm(module.norm, z, op)
        if residual is not None:
            z = _Round.apply(z + residual, self.fmt, 1.0)
        if not op.spec.fires:
            op.keep(current=z)
            if z.requires_grad:
                z.register_hook(lambda g: op.keep(grad_output=g, grad_current=g))
            return z
        return _Fire.apply(z, op)

    def _norm(self, norm: nn.Module, z: torch.Tensor, op: _Layer) -> torch.Tensor:
        if norm.training:
            return _BatchNorm.apply(z, norm.weight, norm.bias, norm, op)
        shape = (1, 1, -1, *([1] * (z.dim() - 3)))
        scale = norm.weight.double() * torch.rsqrt(norm.running_var.double() + norm.eps)
        shift = norm.bias.double() - norm.running_mean.double() * scale
        return quantize(z.double() * scale.view(shape) + shift.view(shape), self.fmt).to(z.dtype)


def _unweighted(layer: LayerSpec, inp: torch.Tensor) -> torch.Tensor:
    """Pooling and flatten on ``[T, B, ...]`` carriers (max pooling only moves values)."""
    if layer.kind == "flatten":
        return inp.flatten(2)
    flat = inp.flatten(0, 1)
    if layer.kind == "maxpool":
        out = F.max_pool2d(flat, layer.kernel, layer.stride, layer.padding)
    else:
        raise FormatError(
            f"layer {layer.name}: {layer.kind} is not modelled in engine-format training; "
            "use a model with max pooling or strided convolutions"
        )
    return out.unflatten(0, inp.shape[:2])


def _route_mask(layer: LayerSpec, mask: torch.Tensor | None) -> torch.Tensor | None:
    """The surrogate mask seen through a pooling or flatten layer (set where any source is)."""
    if mask is None:
        return None
    if layer.kind == "flatten":
        return mask.flatten(2)
    flat = mask.flatten(0, 1).float()
    pooled = F.max_pool2d(flat, layer.kernel, layer.stride, layer.padding)
    return pooled.unflatten(0, mask.shape[:2]) > 0
