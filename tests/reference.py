"""Independent references: plain autograd through the forward equations, float64 NumPy."""

from __future__ import annotations

import numpy as np
import torch

from h2learn.spec import LIFParams


class _HeavisideRect(torch.autograd.Function):
    """Heaviside step whose gradient is the rectangular surrogate window."""

    @staticmethod
    def forward(ctx, u, v_th, window, height):
        ctx.save_for_backward(u)
        ctx.consts = (v_th, window, height)
        return (u > v_th).to(u.dtype)

    @staticmethod
    def backward(ctx, grad):
        (u,) = ctx.saved_tensors
        v_th, window, height = ctx.consts
        return grad * height * ((u - v_th).abs() < window).to(u.dtype), None, None, None


def lif_autograd(x: torch.Tensor, p: LIFParams) -> torch.Tensor:
    """The LIF forward written naively; autograd derives the BPTT backward."""
    u = torch.zeros_like(x[0])
    o = torch.zeros_like(x[0])
    out = []
    for t in range(x.shape[0]):
        keep = 1 - (o if p.reset_grad else o.detach())
        u = p.alpha * u * keep + x[t]
        o = _HeavisideRect.apply(u, p.v_th, p.window, p.height)
        out.append(o)
    return torch.stack(out)


def lif_numpy(x: np.ndarray, p: LIFParams):
    """Float64 brute-force forward: returns u, spikes, mask."""
    u = np.zeros_like(x, dtype=np.float64)
    o = np.zeros_like(x, dtype=np.float64)
    prev_u = np.zeros(x.shape[1:])
    prev_o = np.zeros(x.shape[1:])
    for t in range(x.shape[0]):
        prev_u = p.alpha * prev_u * (1 - prev_o) + x[t]
        prev_o = (prev_u > p.v_th).astype(np.float64)
        u[t], o[t] = prev_u, prev_o
    mask = np.abs(u - p.v_th) < p.window
    return u, o, mask


def network_autograd(model, x: torch.Tensor) -> torch.Tensor:
    """A SpikingNetwork's forward written with plain torch ops and :func:`lif_autograd`.

    Uses the model's parameters but none of its layer code, so autograd
    through it is an independent reference for the hand-written BPTT.
    """
    import torch.nn.functional as F

    spec = model.spec
    signal = model.encode(x)
    steps = signal.shape[0]
    outputs = []
    for layer, module in zip(spec.layers, model.layers, strict=True):
        inp = signal if layer.source < 0 else outputs[layer.source]
        flat = inp.flatten(0, 1)
        if layer.weighted:
            op = module.op
            if layer.kind == "conv":
                z = F.conv2d(flat, op.weight, op.bias, layer.stride, layer.padding)
            else:
                z = F.linear(flat, op.weight, op.bias)
            if module.norm is not None:
                norm = module.norm
                z = F.batch_norm(z, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
            z = z.unflatten(0, (steps, -1))
            if layer.residual is not None:
                z = z + outputs[layer.residual]
            out = lif_autograd(z, spec.lif) if layer.fires else z
        else:
            if layer.kind == "avgpool":
                y = F.avg_pool2d(flat, layer.kernel, layer.stride, layer.padding)
            elif layer.kind == "maxpool":
                y = F.max_pool2d(flat, layer.kernel, layer.stride, layer.padding)
            else:
                y = flat.flatten(1)
            out = y.unflatten(0, (steps, -1))
        outputs.append(out)
    return outputs[-1].mean(0)
