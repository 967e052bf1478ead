"""Multi-step LIF neuron with a hand-written BPTT backward.

Forward, per element, for ``t = 1..T`` with ``u[0] = 0`` and ``o[0] = 0``::

    u[t] = alpha * u[t-1] * (1 - o[t-1]) + x[t]
    o[t] = 1 if u[t] > v_th else 0

Backward, from ``t = T`` down to ``1`` with ``du[T+1] = 0``::

    do[t] = dL/do[t] (from the layer above)  -  alpha * u[t] * du[t+1]   (reset path)
    du[t] = h(u[t]) * do[t]  +  alpha * (1 - o[t]) * du[t+1]
    dL/dx[t] = du[t]

with the rectangular surrogate ``h(u) = height * 1[|u - v_th| < window]``.
The reset-path term is what autograd through the forward equations yields;
``reset_grad=False`` drops it (as many frameworks do by detaching the reset).

Memory: with ``reset_grad`` on, the backward pass needs ``u`` itself (the
reset path multiplies by it), so the forward pass keeps ``u`` and nothing else:
spikes and masks are recomputed from it exactly (``u > v_th``,
``|u - v_th| < window``) rather than stored a second time.  With
``reset_grad`` off it keeps one byte per element and step instead (bit 0 =
spike, bit 1 = surrogate mask).  Spikes and masks are never stored as floats.

The design follows the functional-core pattern: :func:`lif` is a pure
function of its input and :class:`~h2learn.spec.LIFParams`; :class:`LIF` is
a thin ``nn.Module`` around it holding no state between calls.
"""

from __future__ import annotations

import torch
from torch import nn

from h2learn.spec import LIFParams

SPIKE_BIT = 1
MASK_BIT = 2


def _check_input(x: torch.Tensor) -> None:
    if x.dim() < 2:
        raise ValueError(
            f"LIF expects time-major input [T, B, ...], got a tensor of shape {tuple(x.shape)}"
        )
    if not x.is_floating_point():
        raise TypeError(f"LIF expects a floating-point input current, got {x.dtype}")


def _step(u_prev: torch.Tensor, fired_prev: torch.Tensor, x_t: torch.Tensor, alpha: float):
    """One charge-and-reset step: ``alpha * u * (1 - o) + x`` (exactly, in that order)."""
    return u_prev.mul(alpha).masked_fill_(fired_prev, 0.0).add_(x_t)


@torch.no_grad()
def lif_states(
    x: torch.Tensor, params: LIFParams = LIFParams()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the forward equations and return ``(u, spikes, surrogate_mask)``.

    ``u`` has the input's dtype; spikes and mask are bool.  Used to record
    traces and by the hardware model; carries no gradient.
    """
    _check_input(x)
    u_all = torch.empty_like(x)
    u = torch.zeros_like(x[0])
    fired = torch.zeros_like(x[0], dtype=torch.bool)
    for t in range(x.shape[0]):
        u = _step(u, fired, x[t], params.alpha)
        u_all[t] = u
        fired = u > params.v_th
    spikes = u_all > params.v_th
    mask = (u_all - params.v_th).abs_() < params.window
    return u_all, spikes, mask


class _LIFFunction(torch.autograd.Function):
    """The multi-step LIF with its BPTT backward written out over time.

    The forward loop costs four tensor operations per step, written straight
    into the saved buffer.  The backward pass folds the recurrence into one
    fused multiply-add per step: with ``h = h(u[t])``,
    ``du[t] = h * g[t] + du[t+1] * (alpha * (1 - o[t]) - alpha * u[t] * h)``,
    where both factors are computed for all steps at once.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, params: LIFParams) -> torch.Tensor:  # type: ignore[override]
        u_all = torch.empty_like(x)
        fired = torch.zeros_like(x[0], dtype=torch.bool)
        for t in range(x.shape[0]):
            if t == 0:
                u_all[0].copy_(x[0])
            else:
                torch.mul(u_all[t - 1], params.alpha, out=u_all[t])
                u_all[t].masked_fill_(fired, 0.0).add_(x[t])
            torch.gt(u_all[t], params.v_th, out=fired)
        spikes = u_all > params.v_th
        ctx.params = params
        if params.reset_grad:
            # The reset path needs u itself; spikes and mask are recomputed from it exactly.
            ctx.save_for_backward(u_all, None)
        else:
            state = (u_all - params.v_th).abs_().lt_(params.window).to(torch.uint8)
            state.mul_(MASK_BIT).add_(spikes)
            ctx.save_for_backward(None, state)
        return spikes.to(x.dtype)

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):  # type: ignore[override]
        u_all, state = ctx.saved_tensors
        params: LIFParams = ctx.params
        alpha, dtype = params.alpha, grad_spikes.dtype
        if u_all is not None:
            fired = u_all > params.v_th
            surrogate = (u_all - params.v_th).abs_().lt_(params.window).to(dtype)
        else:
            fired = (state & SPIKE_BIT).bool()
            surrogate = (state >= MASK_BIT).to(dtype)
        if params.height != 1.0:
            surrogate.mul_(params.height)
        # carry = alpha * (1 - o) - alpha * u * h: how du[t+1] flows into du[t].
        carry = (~fired).to(dtype).mul_(alpha)
        if u_all is not None and alpha != 0.0:
            carry.addcmul_(u_all, surrogate, value=-alpha)
        grad_x = grad_spikes * surrogate
        for t in range(grad_x.shape[0] - 2, -1, -1):
            grad_x[t].addcmul_(grad_x[t + 1], carry[t])
        return grad_x, None


def lif(x: torch.Tensor, params: LIFParams = LIFParams()) -> torch.Tensor:
    """Spikes ``[T, B, ...]`` (0/1 in ``x``'s dtype) of LIF neurons driven by currents ``x``.

    Example::

        >>> x = torch.tensor([[0.2], [0.2], [0.0]])
        >>> lif(x).flatten().tolist()   # u = 0.2, 0.25 (not > 0.25), 0.0625
        [0.0, 0.0, 0.0]
    """
    _check_input(x)
    return _LIFFunction.apply(x, params)


class LIF(nn.Module):
    """Multi-step leaky integrate-and-fire neurons with BPTT (see module docstring).

    Args:
        alpha: membrane decay per step.
        v_th: firing threshold.
        window: half-width ``a`` of the rectangular surrogate window.
        height: height ``beta`` of the surrogate.
        reset_grad: keep the reset-path gradient ``-alpha * u[t] * du[t+1]``.

    Example::

        >>> neuron = LIF(alpha=0.25, v_th=0.25)
        >>> spikes = neuron(torch.rand(6, 32, 100))   # [T, B, N] -> [T, B, N]
    """

    def __init__(
        self,
        alpha: float = 0.25,
        v_th: float = 0.25,
        window: float = 0.5,
        height: float = 1.0,
        reset_grad: bool = True,
    ) -> None:
        super().__init__()
        self.params = LIFParams(alpha, v_th, window, height, reset_grad)

    @classmethod
    def from_params(cls, params: LIFParams) -> LIF:
        return cls(params.alpha, params.v_th, params.window, params.height, params.reset_grad)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return lif(x, self.params)

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"alpha={p.alpha}, v_th={p.v_th}, window={p.window}, height={p.height}, "
            f"reset_grad={p.reset_grad}"
        )
