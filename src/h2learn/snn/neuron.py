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

A time-invariant input (an image repeated over the ``T`` steps) can be passed
once, ``lif(x_one_step, params, steps=T)``: the forward pass reads the same
current every step and the backward pass returns ``sum_t du[t]`` for it
directly, so no ``[T, ...]`` input or input gradient is ever materialised.

The time loops exist twice with the same results: in PyTorch operators
(``_stepwise_forward`` / ``_stepwise_backward``, any device and dtype) and as a
fused C++ kernel (:mod:`h2learn.snn.kernels`, float32/float64 on the CPU,
bit-identical forward pass); ``H2LEARN_KERNELS`` chooses.

The design follows the functional-core pattern: :func:`lif` is a pure
function of its input and :class:`~h2learn.spec.LIFParams`; :class:`LIF` is
a thin ``nn.Module`` around it holding no state between calls.
"""

from __future__ import annotations

import torch
from torch import nn

from h2learn.snn.kernels import use_cpp_kernels
from h2learn.spec import LIFParams

SPIKE_BIT = 1
MASK_BIT = 2
_SPIKES_TAG = "_h2learn_spikes"


def mark_spikes(x: torch.Tensor) -> torch.Tensor:
    """Tag ``x`` as holding only 0/1 values (spikes), and return it.

    A weighted layer fed a tagged tensor keeps it as ``bool`` (1 byte) for its
    weight gradient instead of the float tensor.  The tag records the tensor's
    version counter, so an in-place change of ``x`` afterwards voids it.
    """
    if not x.is_inference():  # inference tensors have no version counter (and no backward)
        setattr(x, _SPIKES_TAG, x._version)
    return x


def carries_spikes(x: torch.Tensor) -> bool:
    """Whether ``x`` was tagged by :func:`mark_spikes` and not modified in place since."""
    tag = getattr(x, _SPIKES_TAG, None)
    return tag is not None and not x.is_inference() and tag == x._version


def _check_input(x: torch.Tensor, steps: int | None = None) -> None:
    if steps is None and x.dim() < 2:
        raise ValueError(
            f"LIF expects time-major input [T, B, ...], got a tensor of shape {tuple(x.shape)}"
        )
    if steps is not None and (steps < 1 or x.dim() < 1):
        raise ValueError(f"steps={steps} must be at least 1 and x at least 1-D")
    if not x.is_floating_point():
        raise TypeError(f"LIF expects a floating-point input current, got {x.dtype}")


def _charge(
    x_t: torch.Tensor, u_prev: torch.Tensor, keep: torch.Tensor, alpha: float, out: torch.Tensor
) -> torch.Tensor:
    """``u[t] = x[t] + (alpha * u[t-1]) * keep`` with ``keep = 1 - o[t-1]`` as 0/1 values.

    One fused ``addcmul``; since ``keep`` is 0 or 1 the product is exact and the
    result rounds exactly as ``alpha * u * (1 - o) + x`` evaluated step by step.
    """
    return torch.addcmul(x_t, u_prev, keep, value=alpha, out=out)


@torch.no_grad()
def lif_states(
    x: torch.Tensor, params: LIFParams = LIFParams()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run the forward equations and return ``(u, spikes, surrogate_mask)``.

    ``u`` has the input's dtype; spikes and mask are bool.  Used to record
    traces and by the hardware model; carries no gradient.  ``u`` is
    bit-identical to what :func:`lif` computes.
    """
    _check_input(x)
    u_all = _time_buffer(x[0], x.shape[0])
    keep = torch.empty_like(u_all[0])
    for t in range(x.shape[0]):
        if t == 0:
            u_all[0].copy_(x[0])
        else:
            _charge(x[t], u_all[t - 1], keep, params.alpha, u_all[t])
        torch.le(u_all[t], params.v_th, out=keep)
    spikes = u_all > params.v_th
    mask = (u_all - params.v_th).abs_() < params.window
    return u_all, spikes, mask


def _time_buffer(step: torch.Tensor, steps: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """An uninitialised ``[steps, *step.shape]`` buffer, every step laid out like ``step``.

    Keeps channels-last activations channels-last, and gives a slice of a
    time-invariant (expanded, stride-0) input a dense buffer.
    """
    proto = torch.empty_like(step, dtype=dtype)  # step's strides when dense, else contiguous
    return torch.empty_strided(
        (steps, *step.shape),
        (proto.numel(), *proto.stride()),
        dtype=proto.dtype,
        device=step.device,
    )


class _LIFFunction(torch.autograd.Function):
    """The multi-step LIF with its BPTT backward written out over time.

    Both directions loop over time on one step's slice at a time, so the only
    full ``[T, ...]`` tensors are the output spikes, what is saved (``u``, or
    one byte per element without the reset path) and the input gradient;
    per-step scratch tensors are allocated once per call and reused.  Every
    per-step operation is plain arithmetic in the input's dtype, with spikes
    and masks as 0/1 values: PyTorch's CPU kernels for ``masked_fill_``,
    ``where`` and mixed bool/float operands are several times slower.

    Forward, per step: :func:`_charge`, then ``o[t] = u[t] > v_th`` written
    straight into the output.  Backward, per step, with ``h = h(u[t])``::

        du[t] = h * (g[t] - alpha * u[t] * du[t+1])  +  alpha * (1 - o[t]) * du[t+1]

    (without the reset path the first bracket is just ``g[t]``).  With
    ``steps`` given, ``x`` is one step's current used at every step and the
    gradient returned is ``sum_t du[t]``.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, params: LIFParams, steps: int | None = None):  # type: ignore[override]
        repeated = steps is not None
        ctx.fused = use_cpp_kernels(x)
        run = _fused_forward if ctx.fused else _stepwise_forward
        spikes, saved = run(x, params, steps if repeated else x.shape[0], repeated)
        ctx.params, ctx.repeated = params, repeated
        ctx.save_for_backward(saved)
        return spikes

    @staticmethod
    def backward(ctx, grad_spikes: torch.Tensor):  # type: ignore[override]
        (saved,) = ctx.saved_tensors
        run = _fused_backward if ctx.fused else _stepwise_backward
        return run(grad_spikes, saved, ctx.params, ctx.repeated), None, None


def _stepwise_forward(
    x: torch.Tensor, params: LIFParams, steps: int, repeated: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """The forward loop in PyTorch operators: ``(spikes, saved)``, saved = ``u`` or state bytes."""
    step_like = x if repeated else x[0]
    alpha, v_th = params.alpha, params.v_th
    spikes = _time_buffer(step_like, steps)
    keep = torch.empty_like(spikes[0])  # 1 - o[t-1]
    if params.reset_grad:
        # The reset path needs u itself; spikes and mask are recomputed from it exactly.
        u_all, state = _time_buffer(step_like, steps), None
    else:
        # Only the latest two potentials are needed; one byte per element is kept.
        u_all = _time_buffer(step_like, min(steps, 2))
        state = _time_buffer(step_like, steps, torch.uint8)
        scratch = torch.empty_like(keep)
    for t in range(steps):
        x_t = x if repeated else x[t]
        u = u_all[t] if state is None else u_all[t % 2]
        if t == 0:
            u.copy_(x_t)
        else:
            prev = u_all[t - 1] if state is None else u_all[(t - 1) % 2]
            _charge(x_t, prev, keep, alpha, u)
        torch.gt(u, v_th, out=spikes[t])
        if t + 1 < steps:
            torch.le(u, v_th, out=keep)
        if state is not None:  # bit 0: spike, bit 1: surrogate mask
            torch.sub(u, v_th, out=scratch).abs_().lt_(params.window)
            state[t].copy_(scratch.mul_(MASK_BIT).add_(spikes[t]))
    return spikes, (u_all if state is None else state)


def _stepwise_backward(
    grad_spikes: torch.Tensor, saved: torch.Tensor, params: LIFParams, repeated: bool
) -> torch.Tensor:
    """The BPTT loop in PyTorch operators: ``dL/dx`` (summed over time when ``repeated``)."""
    alpha, v_th, height = params.alpha, params.v_th, params.height
    steps, dtype = saved.shape[0], grad_spikes.dtype
    # du[t] for every step, or (time-invariant input) two rolling steps and their sum.
    grad_x = _time_buffer(saved[0], 2 if repeated else steps, dtype)
    total = torch.empty_like(grad_x[0]) if repeated else None
    surrogate = torch.empty_like(grad_x[0])  # h(u[t])
    keep = torch.empty_like(surrogate)  # 1 - o[t]
    scratch = torch.empty_like(surrogate)
    if not params.reset_grad:
        spike_bit = torch.empty_like(saved[0])
    for t in range(steps - 1, -1, -1):
        g = grad_spikes[t]
        out = grad_x[t % 2] if repeated else grad_x[t]
        if params.reset_grad:
            u = saved[t]
            torch.sub(u, v_th, out=surrogate).abs_().lt_(params.window)
        else:
            bits = saved[t]
            torch.ge(bits, MASK_BIT, out=surrogate)
        if height != 1.0:
            surrogate.mul_(height)
        if t == steps - 1:  # du[T+1] = 0: du[T] = h * g
            torch.mul(g, surrogate, out=total if repeated else out)
            if repeated:
                out.copy_(total)
            continue
        nxt = grad_x[(t + 1) % 2] if repeated else grad_x[t + 1]
        # scratch = h * (g - alpha * u * du[t+1])  (without the reset path: h * g)
        if params.reset_grad:
            torch.addcmul(g, u, nxt, value=-alpha, out=scratch).mul_(surrogate)
            torch.le(u, v_th, out=keep)
        else:
            torch.mul(g, surrogate, out=scratch)
            # 1 - spike bit (bit 0); uint8 -> float by copy (PyTorch's mixed-dtype
            # remainder or compare kernels are far slower)
            keep.copy_(torch.bitwise_and(bits, SPIKE_BIT, out=spike_bit)).neg_().add_(1)
        # du[t] = scratch + alpha * (1 - o[t]) * du[t+1]
        torch.addcmul(scratch, keep, nxt, value=alpha, out=out)
        if repeated:
            total.add_(out)
    return total if repeated else grad_x


def _fused_forward(
    x: torch.Tensor, params: LIFParams, steps: int, repeated: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_stepwise_forward` in one C++ pass over all steps (same values, bit for bit)."""
    x = _dense_time_major(x, repeated)
    step_like = x if repeated else x[0]
    spikes = _time_buffer(step_like, steps)
    saved = _time_buffer(step_like, steps, None if params.reset_grad else torch.uint8)
    torch.ops.h2learn_lif.forward(
        x, spikes, saved, steps, repeated, params.alpha, params.v_th, params.window
    )
    return spikes, saved


def _fused_backward(
    grad_spikes: torch.Tensor, saved: torch.Tensor, params: LIFParams, repeated: bool
) -> torch.Tensor:
    """:func:`_stepwise_backward` in one C++ pass over all steps."""
    if grad_spikes.stride() != saved.stride():  # the kernel walks one memory order
        grad_spikes = torch.empty_like(saved, dtype=grad_spikes.dtype).copy_(grad_spikes)
    steps = saved.shape[0]
    grad_x = _time_buffer(saved[0], 1 if repeated else steps, grad_spikes.dtype)
    torch.ops.h2learn_lif.backward(
        grad_spikes,
        saved,
        grad_x,
        repeated,
        params.alpha,
        params.v_th,
        params.window,
        params.height,
    )
    return grad_x[0] if repeated else grad_x


def _dense_time_major(x: torch.Tensor, repeated: bool) -> torch.Tensor:
    """``x`` laid out as :func:`_time_buffer` lays out ``[T, ...]`` buffers (a copy if not)."""
    step = x if repeated else x[0]
    dense = torch.empty_like(step)  # step's strides when dense, else contiguous
    if repeated:
        return x if x.stride() == dense.stride() else dense.copy_(x)
    if x.stride() == (dense.numel(), *dense.stride()):
        return x
    return _time_buffer(step, x.shape[0]).copy_(x)


def lif(x: torch.Tensor, params: LIFParams = LIFParams(), *, steps: int | None = None):
    """Spikes ``[T, B, ...]`` (0/1 in ``x``'s dtype) of LIF neurons driven by currents ``x``.

    ``x`` is ``[T, B, ...]``; with ``steps=T`` it is instead one step's current
    ``[B, ...]``, the same at every step (``lif(x, p, steps=T)`` equals
    ``lif(x.expand(T, *x.shape), p)`` without materialising the repetition;
    an expanded ``[T, B, ...]`` input, stride 0 along time, takes that path
    by itself).  The spikes are tagged (:func:`mark_spikes`) so that a
    weighted block reading them keeps them as ``bool``.

    Example::

        >>> x = torch.tensor([[0.2], [0.2], [0.0]])
        >>> lif(x).flatten().tolist()   # u = 0.2, 0.25 (not > 0.25), 0.0625
        [0.0, 0.0, 0.0]
    """
    _check_input(x, steps)
    if steps is None and x.shape[0] > 1 and x.stride(0) == 0:
        # one current repeated over time (an expanded view): read it once per step
        return mark_spikes(_LIFFunction.apply(_membrane_precision(x[0]), params, x.shape[0]))
    return mark_spikes(_LIFFunction.apply(_membrane_precision(x), params, steps))


def _membrane_precision(x: torch.Tensor) -> torch.Tensor:
    """Under autocast, 16-bit currents in float32: the membrane recurrence runs in float32.

    [ours] Autocast leaves element-wise ops in their input's dtype; over ``T``
    steps a float16/bfloat16 membrane potential flips threshold crossings
    (bfloat16 keeps 8 significand bits), so the neuron, like the reductions
    autocast keeps in float32, gets float32 (and the fused kernel).  Outside
    autocast a 16-bit input stays 16-bit, as a ``.half()`` model expects.
    """
    if x.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(x.device.type):
        return x.float()
    return x


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

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        return lif(x, self.params, steps=steps)

    def extra_repr(self) -> str:
        p = self.params
        return (
            f"alpha={p.alpha}, v_th={p.v_th}, window={p.window}, height={p.height}, "
            f"reset_grad={p.reset_grad}"
        )
