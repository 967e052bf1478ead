"""LIF neuron units: the forward step and BPTT backward, op by op in the datapath format.

Each function is the functional model of one hardware unit and returns an
:class:`EngineResult` with exact operation and access counts; the data-free
count functions next to them (:func:`lif_forward_counts`,
:func:`lif_backward_counts`) are what the activity model calls.  The paper
says nothing about these units; everything here is [ours], chosen to match
the equations of SYSTEM.md section 1 and :mod:`h2learn.snn.neuron`.

LIF units run in the datapath format op by op (:class:`Datapath`): floating
formats round every product and add to the dtype; fixed point keeps stored
integers, rounds each product back to ``F`` fraction bits and saturates (or
wraps) after each add, as a narrow neuron datapath would.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from h2learn.arch.engines.common import EngineError, EngineResult, make_counts
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
    counts = make_counts(
        unit, LIF_FORWARD_COUNT_KEYS, **lif_forward_counts(current.numel(), keep_potential)
    )
    return EngineResult(unit, spikes, counts, {"u": path.real(potentials), "mask": mask})


def lif_forward_counts(element_steps: int, keep_potential: bool) -> dict[str, float]:
    """Event counts of :func:`lif_forward_unit` over ``element_steps`` neuron-steps (data-free).

    Per neuron-step: the decay multiply, the input add, the reset select, the
    threshold compare and the two surrogate-window compares; ``x[t]`` read;
    ``u`` and ``o`` of the previous step read and written back; the spike and
    mask bits written; ``u`` written once more when kept for the reset-path
    gradient.  Uniform: the first step computes too.
    """
    n = element_steps
    return {
        "multiplies": n,
        "adds": n,
        "selects": n,
        "compares": 3 * n,
        "input_reads": n,
        "state_reads": 2 * n,
        "state_writes": 2 * n,
        "spike_writes": n,
        "mask_writes": n,
        "potential_writes": n if keep_potential else 0,
    }


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
    with it without running the unit (like every ``*_counts`` function here).
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
