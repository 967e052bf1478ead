"""What the training software launches besides the GEMMs: element-wise kernels, as data.

A :class:`StepImplementation` lists, per group (a LIF step, batch norm, the
optimizer), the element-wise kernels the software launches, each an
:class:`ElementwiseOp` that says per element how many values it reads and
writes and how many FLOPs it does.  Two presets:

* :data:`PYTORCH_EAGER` -- h2learn's own PyTorch implementation
  (:mod:`h2learn.snn`), op by op as ``torch.profiler`` lists them;
* :data:`FUSED_LIF` -- the same with the LIF time loop in one custom CUDA
  kernel per layer and direction, as in the first author's GPU library.

To model another framework, ``PYTORCH_EAGER.replace(...)`` the tuples that
differ.  Which dtype each kernel's floats are in is a separate choice, the
step's :class:`~h2learn.baselines.gpu.numerics.Numerics`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from h2learn.baselines.gpu.device import GPUModelError

BOOL_BYTES = 1
"""Bytes of a torch.bool / torch.uint8 element (saved spikes and masks)."""


@dataclass(frozen=True)
class ElementwiseOp:
    """One element-wise kernel: per element, how many values it reads and writes.

    ``float_*`` count elements of the run's dtype, ``byte_*`` one-byte elements
    (bool spikes, uint8 masks); ``flops`` are arithmetic operations per element
    (compares count as one).
    """

    name: str
    float_reads: float = 0.0
    float_writes: float = 0.0
    byte_reads: float = 0.0
    byte_writes: float = 0.0
    flops: float = 0.0

    def bytes_per_element(self, dtype_bytes: int) -> float:
        """DRAM bytes moved per element: float operands at ``dtype_bytes``, byte masks at 1."""
        floats = (self.float_reads + self.float_writes) * dtype_bytes
        return floats + (self.byte_reads + self.byte_writes) * BOOL_BYTES


def elementwise_op(
    name: str, fr: float = 0, fw: float = 0, br: float = 0, bw: float = 0, fl: float = 0
) -> ElementwiseOp:
    """Short form of :class:`ElementwiseOp`: float reads/writes, byte reads/writes, FLOPs."""
    return ElementwiseOp(name, fr, fw, br, bw, fl)


_op = elementwise_op


@dataclass(frozen=True)
class StepImplementation:
    """Which element-wise kernels the training software launches, as data.

    The LIF neuron's kernels are grouped by how often they run in one layer's
    call.  Groups named ``*_whole`` run once on all ``T`` steps (``N *
    neurons`` elements); every other LIF group runs on one time step (``M``
    elements):

    - forward: ``lif_forward_setup`` once per call; ``lif_forward_first_step``
      at ``t = 0``; ``lif_forward_step`` at each ``t >= 1`` (``T - 1`` times);
      ``lif_forward_every_step_no_reset_grad`` at every step (``T`` times)
      when the reset-path gradient is off;
    - backward (``t = T-1`` down to ``0``): ``lif_backward_surrogate_*`` and
      ``lif_backward_height`` (surrogate height other than 1) at every step;
      ``lif_backward_last_step`` at ``t = T-1`` only; ``lif_backward_step``
      and ``lif_backward_step_*`` at each ``t < T-1`` (``T - 1`` times);
      ``lif_backward_repeated_*`` in addition when the layer's input is one
      current repeated over the steps (``lif(x, p, steps=T)``), which sums
      ``du`` over the steps.

    Replace a tuple to model another implementation.
    ``batch_norm_running_stats_once`` runs on the ``C`` channels of a batch
    norm computed once per sample (time-invariant input), next to
    ``batch_norm_forward``.
    """

    name: str
    lif_forward_setup: tuple[ElementwiseOp, ...]
    lif_forward_first_step: tuple[ElementwiseOp, ...]
    lif_forward_step: tuple[ElementwiseOp, ...]
    lif_forward_whole_reset_grad: tuple[ElementwiseOp, ...]
    lif_forward_whole_no_reset_grad: tuple[ElementwiseOp, ...]
    lif_backward_whole_reset_grad: tuple[ElementwiseOp, ...]
    lif_backward_whole_no_reset_grad: tuple[ElementwiseOp, ...]
    lif_backward_height: tuple[ElementwiseOp, ...]
    lif_backward_step: tuple[ElementwiseOp, ...]
    batch_norm_forward: tuple[ElementwiseOp, ...]
    batch_norm_backward: tuple[ElementwiseOp, ...]
    adam: tuple[ElementwiseOp, ...]
    batch_norm_running_stats_once: tuple[ElementwiseOp, ...] = ()
    lif_forward_every_step_no_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_surrogate_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_surrogate_no_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_last_step: tuple[ElementwiseOp, ...] = ()
    lif_backward_step_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_step_no_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_repeated_last_step: tuple[ElementwiseOp, ...] = ()
    lif_backward_repeated_step: tuple[ElementwiseOp, ...] = ()
    gemm_kernels_per_call: int = 1
    foreach_tensors_per_launch: int = 64
    foreach_elements_per_launch: int = 65536 * 320

    def __post_init__(self) -> None:
        for name in ("gemm_kernels_per_call", "foreach_tensors_per_launch"):
            if getattr(self, name) < 1:
                raise GPUModelError(f"StepImplementation.{name} must be at least 1")
        if self.foreach_elements_per_launch < 1:
            raise GPUModelError("StepImplementation.foreach_elements_per_launch must be >= 1")

    def lif_forward_groups(
        self, reset_grad: bool = True
    ) -> list[tuple[str, tuple[ElementwiseOp, ...]]]:
        """The forward LIF groups of one call as ``(schedule, ops)``.

        ``schedule`` is ``"once"`` (one step's elements, once), ``"first"``
        (``t = 0``), ``"later"`` (``t >= 1``), ``"every"`` (all ``T`` steps)
        or ``"whole"`` (all ``T`` steps' elements, once).
        """
        if reset_grad:
            whole, every = self.lif_forward_whole_reset_grad, ()
        else:
            whole = self.lif_forward_whole_no_reset_grad
            every = self.lif_forward_every_step_no_reset_grad
        return [
            ("once", self.lif_forward_setup),
            ("first", self.lif_forward_first_step),
            ("later", self.lif_forward_step),
            ("every", every),
            ("whole", whole),
        ]

    def lif_backward_groups(
        self, reset_grad: bool = True, repeated: bool = False, height: float = 1.0
    ) -> list[tuple[str, tuple[ElementwiseOp, ...]]]:
        """The backward LIF groups of one call as ``(schedule, ops)``.

        Schedules as in :meth:`lif_forward_groups`; in backward ``"first"`` is
        the first step processed (``t = T-1``) and ``"later"`` the other
        ``T - 1`` steps.
        """
        if reset_grad:
            whole = self.lif_backward_whole_reset_grad
            surrogate = self.lif_backward_surrogate_reset_grad
            step = self.lif_backward_step_reset_grad
        else:
            whole = self.lif_backward_whole_no_reset_grad
            surrogate = self.lif_backward_surrogate_no_reset_grad
            step = self.lif_backward_step_no_reset_grad
        groups = [
            ("whole", whole),
            ("every", surrogate),
            ("every", self.lif_backward_height if height != 1.0 else ()),
            ("first", self.lif_backward_last_step),
            ("later", step + self.lif_backward_step),
        ]
        if repeated:
            groups += [
                ("first", self.lif_backward_repeated_last_step),
                ("later", self.lif_backward_repeated_step),
            ]
        return groups

    def replace(self, **changes: Any) -> StepImplementation:
        """A copy with ``changes`` applied (``dataclasses.replace``)."""
        return dataclasses.replace(self, **changes)


_BN_FORWARD = (
    _op("bn_collect_stats", fr=1, fl=3),  # mean and variance per channel
    _op("bn_normalize", fr=1, fw=1, fl=2),
)
# h2learn.snn.layers.WeightedBlock._current_once: batch norm of a time-invariant input
# runs on B rows with zeroed buffers and momentum 1, then rescales the variance to
# T * B samples and updates the running statistics itself: 7 small per-channel kernels.
_BN_RUNNING_STATS_ONCE = (
    _op("bn_once_zeros_mean", fw=1),
    _op("bn_once_zeros_var", fw=1),
    _op("bn_once_rescale_var", fr=1, fw=1, fl=1),
    _op("bn_once_running_mean_mul", fr=1, fw=1, fl=1),
    _op("bn_once_running_mean_add", fr=2, fw=1, fl=2),
    _op("bn_once_running_var_mul", fr=1, fw=1, fl=1),
    _op("bn_once_running_var_add", fr=2, fw=1, fl=2),
)
_BN_BACKWARD = (
    _op("bn_backward_reduce", fr=2, fl=4),  # dgamma, dbeta and the two reductions for dx
    _op("bn_backward_elemt", fr=2, fw=1, fl=4),
)
_ADAM_FOREACH = (  # torch.optim.Adam's multi-tensor path (one foreach op each)
    _op("adam_lerp_exp_avg", fr=2, fw=1, fl=3),
    _op("adam_mul_exp_avg_sq", fr=1, fw=1, fl=1),
    _op("adam_addcmul_exp_avg_sq", fr=3, fw=1, fl=3),
    _op("adam_sqrt", fr=1, fw=1, fl=1),
    _op("adam_div_bias_correction", fr=1, fw=1, fl=1),
    _op("adam_add_eps", fr=1, fw=1, fl=1),
    _op("adam_addcdiv_param", fr=3, fw=1, fl=3),
)

# h2learn.snn.neuron._LIFFunction, kernel by kernel, as torch.profiler lists its ATen ops
# (one lif(...) forward + backward per setting, CPU, T = 4; docs/gpu-baseline.md).  Every
# kernel runs on one step's slice (M elements); the [T, ...] buffers and the per-call
# scratch tensors are allocations (empty_strided, empty_like), not kernels.  Spikes,
# surrogates and keep = 1 - o are floats in the run's dtype; the packed state (no reset
# path) is uint8.  FLOPs: one per arithmetic op or compare; addcmul a + v * b * c is 3.
_LIF_SUB_ABS_LT = (  # torch.sub(u, v_th, out=scratch).abs_().lt_(window): |u - v_th| < a
    _op("lif_sub_vth", fr=1, fw=1, fl=1),
    _op("lif_abs", fr=1, fw=1, fl=1),
    _op("lif_lt_window", fr=1, fw=1, fl=1),
)
_LIF_GT_SPIKE = _op("lif_gt_spike", fr=1, fw=1, fl=1)  # gt(u, v_th, out=spikes[t])
# le(u, v_th, out=keep): runs after step t's spike for t < T-1, making keep for
# step t+1, so it is counted with the step that reads it (T - 1 launches either way).
_LIF_LE_KEEP = _op("lif_le_keep", fr=1, fw=1, fl=1)
_LIF_MUL_GRAD_SURROGATE = _op("lif_mul_grad_surrogate", fr=2, fw=1, fl=1)  # mul(g, h, out=)

PYTORCH_EAGER = StepImplementation(
    name="pytorch-eager (h2learn.snn)",
    # -- _LIFFunction.forward (neuron.py) --
    lif_forward_setup=(),  # buffers only
    lif_forward_first_step=(
        _op("lif_copy_u0", fr=1, fw=1),  # u.copy_(x_t)
        _LIF_GT_SPIKE,
    ),
    lif_forward_step=(
        _LIF_LE_KEEP,  # keep from u[t-1]
        # _charge: addcmul(x_t, u[t-1], keep, value=alpha, out=u)
        _op("lif_addcmul_charge", fr=3, fw=1, fl=3),
        _LIF_GT_SPIKE,
    ),
    # reset_grad off: the one-byte state (bit 0 spike, bit 1 mask) at every step
    lif_forward_every_step_no_reset_grad=(
        *_LIF_SUB_ABS_LT,
        _op("lif_mul_mask_bit", fr=1, fw=1, fl=1),  # scratch.mul_(MASK_BIT)
        _op("lif_add_spike_bit", fr=2, fw=1, fl=1),  # .add_(spikes[t])
        _op("lif_copy_state_to_uint8", fr=1, bw=1),  # state[t].copy_(...)
    ),
    lif_forward_whole_reset_grad=(),
    lif_forward_whole_no_reset_grad=(),
    # -- _LIFFunction.backward (neuron.py), t = T-1 down to 0 --
    lif_backward_whole_reset_grad=(),
    lif_backward_whole_no_reset_grad=(),
    lif_backward_surrogate_reset_grad=_LIF_SUB_ABS_LT,  # h(u[t]) from u
    # ge(bits, MASK_BIT, out=surrogate): uint8 in, float out.  One kernel on CUDA;
    # on CPU TensorIterator adds a bool temporary and a copy_ (not modelled).
    lif_backward_surrogate_no_reset_grad=(_op("lif_ge_mask_bit", br=1, fw=1, fl=1),),
    lif_backward_height=(_op("lif_mul_height", fr=1, fw=1, fl=1),),  # every step
    lif_backward_last_step=(_LIF_MUL_GRAD_SURROGATE,),  # du[T] = h * g
    lif_backward_step_reset_grad=(
        _op("lif_addcmul_reset", fr=3, fw=1, fl=3),  # addcmul(g, u, du[t+1], value=-alpha)
        _op("lif_mul_surrogate", fr=2, fw=1, fl=1),  # .mul_(surrogate)
        _LIF_LE_KEEP,  # le(u, v_th, out=keep)
    ),
    lif_backward_step_no_reset_grad=(
        _LIF_MUL_GRAD_SURROGATE,  # mul(g, surrogate, out=scratch)
        _op("lif_and_spike_bit", br=1, bw=1, fl=1),  # bitwise_and(bits, SPIKE_BIT, out=)
        _op("lif_copy_spike_bit_to_float", br=1, fw=1),  # keep.copy_(spike_bit)
        _op("lif_neg_spike", fr=1, fw=1, fl=1),  # .neg_()
        _op("lif_add_one", fr=1, fw=1, fl=1),  # .add_(1)
    ),
    # du[t] = addcmul(scratch, keep, du[t+1], value=alpha, out=du[t])
    lif_backward_step=(_op("lif_addcmul_carry", fr=3, fw=1, fl=3),),
    # lif(x, p, steps=T): sum_t du[t] kept in `total`
    lif_backward_repeated_last_step=(_op("lif_copy_total", fr=1, fw=1),),  # out.copy_(total)
    lif_backward_repeated_step=(_op("lif_add_total", fr=2, fw=1, fl=1),),  # total.add_(out)
    batch_norm_forward=_BN_FORWARD,
    batch_norm_backward=_BN_BACKWARD,
    batch_norm_running_stats_once=_BN_RUNNING_STATS_ONCE,
    adam=_ADAM_FOREACH,
)
"""h2learn's PyTorch implementation: the kernels of ``h2learn.snn.neuron`` op by op."""

FUSED_LIF = PYTORCH_EAGER.replace(
    name="fused-lif (one kernel per layer and direction)",
    lif_forward_setup=(),
    lif_forward_first_step=(),
    lif_forward_step=(),
    lif_forward_every_step_no_reset_grad=(),
    # reads x, writes u (kept for the backward pass) and the float spikes
    lif_forward_whole_reset_grad=(_op("lif_fused_forward", fr=1, fw=2, fl=4),),
    lif_forward_whole_no_reset_grad=(_op("lif_fused_forward", fr=1, fw=1, bw=1, fl=4),),
    # reads u (or the packed state) and dL/do, writes dL/dx, looping over T inside
    lif_backward_whole_reset_grad=(_op("lif_fused_backward", fr=2, fw=1, fl=8),),
    lif_backward_whole_no_reset_grad=(_op("lif_fused_backward", fr=1, br=1, fw=1, fl=6),),
    lif_backward_surrogate_reset_grad=(),
    lif_backward_surrogate_no_reset_grad=(),
    lif_backward_height=(),
    lif_backward_last_step=(),
    lif_backward_step_reset_grad=(),
    lif_backward_step_no_reset_grad=(),
    lif_backward_step=(),
    lif_backward_repeated_last_step=(),
    lif_backward_repeated_step=(),
)
"""A custom-CUDA LIF (as in the first author's GPU library): the time loop inside one kernel."""
