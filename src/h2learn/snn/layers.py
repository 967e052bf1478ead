"""Spiking layers over time-major tensors ``[T, B, ...]``.

Weighted operations (conv, linear) and batch norm are time-invariant, so
they run once on the ``T * B`` merged batch — one large kernel call instead of
``T`` small ones.  Layers whose input is binary spikes keep that input for
the weight gradient as ``bool`` (1 byte) instead of float (4 or 8 bytes).

Speed and memory, without changing what is computed:

* A time-invariant input (an image repeated over ``T`` by the encoder, an
  expanded tensor with stride 0 along time) is convolved once per sample, its
  batch norm takes the statistics of the ``T`` identical copies (the same mean
  and variance; the running variance uses the ``T * B`` count) and the LIF
  neuron reads that one current at every step (``lif(z, p, steps=T)``).
* Convolutions run channels-last (NHWC), which oneDNN and PyTorch's CPU
  pooling kernels handle several times faster than NCHW; the activations
  between layers stay channels-last.
* Max pooling over non-overlapping windows keeps its argmax as one byte per
  output (a position in the window; the fused C++ kernel) or as 16/32-bit
  integers (PyTorch's kernel) instead of saving its float input and 64-bit
  indices.
* In training mode, batch norm (or, without it, the bias) and the LIF neuron
  firing on it run as one fused kernel (:mod:`h2learn.snn.norm_fire`), which
  keeps only the block's conv/fc output for backward; a max or average
  pooling that alone reads a conv block's spikes runs inside that kernel
  (:meth:`WeightedBlock.forward_pooled`).  See ``docs/kernels.md``.
* Spikes carry a tag (:func:`~h2learn.snn.neuron.mark_spikes`): a weighted
  layer fed tagged spikes keeps them as ``bool`` like a binary-input layer.

The public blocks built on these classes are in :mod:`h2learn.snn.blocks`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from h2learn.snn.kernels import use_cpp_kernels
from h2learn.snn.layout import CHANNELS_LAST, channels_last, nhwc_empty, nhwc_strides
from h2learn.snn.neuron import LIF, carries_spikes, mark_spikes
from h2learn.snn.norm_fire import fusable, norm_fire, poolable
from h2learn.snn.running_stats import update_running_stats
from h2learn.snn.sync_norm import sync_batch_norm
from h2learn.spec import LayerSpec, LIFParams

COMPACT_INDEX_PLANE = 2**15
"""Max pooling's saved argmax is int16 up to this many ``H * W`` positions, int32 above.

Used by PyTorch's kernel path of :class:`_MaxPool2d` (the fused C++ kernel
keeps one byte per output instead); the GPU cost model reads it from here.
"""


def runs_once(layer: LayerSpec, batch_size: int, time_invariant: bool = True) -> bool:
    """Whether ``layer`` computes a time-invariant input once per sample instead of ``T`` times.

    ``time_invariant``: whether the layer's input is one ``[B, ...]`` tensor
    repeated over the ``T`` steps (an expanded, stride-0 tensor).  Pooling and
    flatten then always run once; a weighted layer runs once unless its batch
    norm would see a single value per channel (``batch_size * out_positions
    == 1``), which PyTorch refuses in training while the ``T`` repeated copies
    are fine.  The rule :class:`WeightedBlock` and :class:`TimeDistributed`
    apply, for cost models that mirror them.
    """
    if not layer.weighted:
        return time_invariant
    return _once(time_invariant, layer.batch_norm, batch_size * layer.out_positions)


def _once(time_invariant: bool, batch_norm: bool, per_step: int) -> bool:
    """:func:`runs_once` for a weighted layer with ``per_step`` values per channel and step."""
    return time_invariant and (not batch_norm or per_step > 1)


def merge_time(x: torch.Tensor) -> torch.Tensor:
    """``[T, B, ...] -> [T*B, ...]``."""
    return x.flatten(0, 1)


def split_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[T*B, ...] -> [T, B, ...]``."""
    return x.unflatten(0, (steps, x.shape[0] // steps))


def is_time_invariant(x: torch.Tensor) -> bool:
    """Whether ``x [T, B, ...]`` is one tensor repeated over time (expanded, stride 0)."""
    return x.dim() >= 2 and x.shape[0] > 1 and x.stride(0) == 0


def repeat_time(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, ...] -> [T, B, ...]`` as a view (the inverse of taking ``x[0]``)."""
    return x.unsqueeze(0).expand(steps, *x.shape)


def autocast_operands(
    spikes: torch.Tensor, weight: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Under autocast, both operands in its dtype, as ``F.linear``/``F.conv2d`` would take them.

    A custom autograd function is not autocast by itself: without this, a
    float16 or bfloat16 gradient would meet a float32 weight in the backward
    pass.  The weight's gradient comes back in the autocast dtype and autograd
    casts it to the parameter's, as for PyTorch's own layers.
    """
    device = spikes.device.type
    if not torch.is_autocast_enabled(device):
        return spikes, weight
    dtype = torch.get_autocast_dtype(device)
    return spikes.to(dtype), weight.to(dtype)


class _SpikeLinear(torch.autograd.Function):
    """``spikes @ W^T`` keeping the binary spikes as bool for the weight gradient."""

    @staticmethod
    def forward(ctx, spikes: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        spikes, weight = autocast_operands(spikes, weight)
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
        spikes, weight = autocast_operands(spikes, weight)
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


class _MaxPool2d(torch.autograd.Function):
    """Max pooling over non-overlapping windows (``stride >= kernel``) with compact indices.

    Two implementations with the same results (PyTorch's argmax: the first
    maximum of a window in row-major order, or a NaN):

    * the fused C++ kernel (:mod:`h2learn.snn.kernels`, ``pool.cpp``) for dense
      channels-last float input without padding: one byte per output holds the
      argmax's position in its window, and the backward pass writes every
      input-gradient element once;
    * PyTorch's kernel otherwise, keeping its argmax as the narrowest integer
      type that holds a position in the ``H x W`` plane; the backward pass
      zero-fills the input gradient and scatters into it.

    Both keep far less than PyTorch's autograd (the float input and 64-bit
    indices).  Windows do not overlap, so every input position receives at
    most one gradient: both backward passes are exactly PyTorch's.
    """

    @staticmethod
    def forward(ctx, x, kernel: int, stride: int, padding: int):  # type: ignore[override]
        ctx.shape = x.shape
        ctx.fused = _fused_pool_applies(x, kernel, padding) and use_cpp_kernels(x)
        if ctx.fused:
            out, index = _fused_pool_forward(x, kernel, stride)
            ctx.save_for_backward(index)
            ctx.conf = (kernel, stride)
            return out
        out, index = torch.ops.aten.max_pool2d_with_indices(
            x, [kernel, kernel], [stride, stride], [padding, padding]
        )
        plane = x.shape[-2] * x.shape[-1]
        compact = torch.int16 if plane <= COMPACT_INDEX_PLANE else torch.int32
        ctx.save_for_backward(index.to(compact))
        ctx.channels_last = x.dim() == 4 and (
            not x.is_contiguous() and x.is_contiguous(memory_format=CHANNELS_LAST)
        )
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (index,) = ctx.saved_tensors
        if ctx.fused:
            grad_in = nhwc_empty(ctx.shape, grad.dtype, grad.device)
            kernel, stride = ctx.conf
            torch.ops.h2learn_pool.max_pool_backward(
                channels_last(grad), index, grad_in, kernel, stride
            )
            return grad_in, None, None, None
        index = index.long()
        n, c, h, w = ctx.shape
        if ctx.channels_last:  # scatter along the H*W positions of an NHWC buffer
            grad_in = grad.new_zeros((n, h, w, c))
            grad_in.view(n, h * w, c).scatter_(
                1,
                index.permute(0, 2, 3, 1).reshape(n, -1, c),
                grad.permute(0, 2, 3, 1).reshape(n, -1, c),
            )
            return grad_in.permute(0, 3, 1, 2), None, None, None
        grad_in = grad.new_zeros((n, c, h, w))
        grad_in.view(n * c, h * w).scatter_(1, index.reshape(n * c, -1), grad.reshape(n * c, -1))
        return grad_in, None, None, None


def _fused_pool_applies(x: torch.Tensor, kernel: int, padding: int) -> bool:
    """Whether the C++ pooling kernel handles ``x``: dense NHWC, no padding, <= 256 positions."""
    return (
        padding == 0
        and kernel * kernel <= 256
        and x.device.type == "cpu"
        and x.dtype in (torch.float32, torch.float64)
        and x.stride() == nhwc_strides(x.shape)
    )


def _fused_pool_forward(x: torch.Tensor, kernel: int, stride: int):
    """``(out, index)`` of the C++ kernel: pooled NHWC output and the argmax's window position."""
    n, c, h, w = x.shape
    shape = (n, c, (h - kernel) // stride + 1, (w - kernel) // stride + 1)
    out = nhwc_empty(shape, x.dtype, x.device)
    index = nhwc_empty(shape, torch.uint8, x.device)
    torch.ops.h2learn_pool.max_pool_forward(x, out, index, kernel, stride)
    return out, index


class MaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` whose autograd keeps compact indices when windows do not overlap."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        sizes = (self.kernel_size, self.stride, self.padding, self.dilation)
        if (
            torch.is_grad_enabled()
            and x.requires_grad
            and x.dim() == 4
            and all(isinstance(v, int) for v in sizes)
            and self.stride >= self.kernel_size
            and self.dilation == 1
            and not self.ceil_mode
        ):
            return _MaxPool2d.apply(x, self.kernel_size, self.stride, self.padding)
        return super().forward(x)


class WeightedBlock(nn.Module):
    """Conv or linear, optional batch norm (tdBN-style, over ``T*B``), optional LIF firing.

    ``input [T, B, ...] -> current -> (+ residual) -> spikes or current [T, B, ...]``.
    A bias is used only when there is no batch norm (which has its own shift).
    Only the spec's kind, channels, kernel, stride, padding, batch norm, firing
    and ``binary_input`` are read: map sizes come from the input at run time,
    so the public blocks (:mod:`h2learn.snn.blocks`) need no input shape.

    ``pool``: ``("max" | "avg", k)`` pools the block's spikes over ``k x k``
    windows (inside the fused kernel where it applies); the zoo leaves it
    ``None`` and pools with separate layers (fusing them by itself).
    ``planar_pool``: the fused kernel writes the pooled spikes NCHW-contiguous
    (same values), for a flatten that follows.
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
        self.pool: tuple[str, int] | None = None
        self.planar_pool = False  # pooled spikes NCHW-contiguous (a flatten reads them)
        # Set by h2learn.snn.distributed for data-parallel training: batch-norm
        # statistics then span every process's shard of the global batch.
        self.sync_batch_norm = False

    def current(self, x: torch.Tensor) -> torch.Tensor:
        """The layer's input current ``W (*) x (+ b)`` (after batch norm), ``[T, B, ...]``.

        A time-invariant input gives a time-invariant (expanded) current.
        """
        steps = x.shape[0]
        if self._runs_once(x):
            return repeat_time(self._current_once(x[0], steps), steps)
        return split_time(self._current_merged(merge_time(x), carries_spikes(x)), steps)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.pool is None:
            return self._unpooled(x, residual)
        mode, kernel = self.pool
        if residual is None:
            pooled = self.forward_pooled(x, kernel, self.planar_pool, mode == "avg")
            if pooled is not None:
                return pooled if mode == "avg" else mark_spikes(pooled)
        return pool_time_major(self._unpooled(x, residual), mode, kernel)

    def _unpooled(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        steps = x.shape[0]
        if residual is None and self._fuses(x):
            return mark_spikes(self._fire_fused(x))
        if residual is None and self.neuron is not None and self._runs_once(x):
            return self.neuron(self._current_once(x[0], steps), steps=steps)
        z = self.current(x)
        if residual is not None:
            z = z + residual
        return self.neuron(z) if self.neuron is not None else z

    def _positions(self, x: torch.Tensor) -> int:
        """Output positions per channel (``H_out * W_out``, 1 for fc) for ``x [T, B, ...]``."""
        if self.spec.kind != "conv":
            return 1
        k, s, p = self.spec.kernel, self.spec.stride, self.spec.padding
        h, w = ((size + 2 * p - k) // s + 1 for size in x.shape[-2:])
        return h * w

    def _runs_once(self, x: torch.Tensor) -> bool:
        """Whether to compute a time-invariant input once per sample (see :func:`runs_once`)."""
        per_step = x.shape[1] * self._positions(x)
        return _once(is_time_invariant(x), self.norm is not None, per_step)

    def _weight(self) -> torch.Tensor:
        weight = self.op.weight
        if self.spec.kind == "conv":  # a channels-last copy (the parameter keeps its layout)
            weight = channels_last(weight)
        return weight

    def forward_pooled(
        self, x: torch.Tensor, kernel: int, planar: bool = False, average: bool = False
    ) -> torch.Tensor | None:
        """Spikes max- (or ``average``-) pooled over ``kernel x kernel`` windows, fused.

        For a conv block whose spikes only the pooling reads (the network
        decides that): returns ``[T, B, C, H/k, W/k]``, the same as the block
        followed by the pooling layer, or ``None`` where the fused path does
        not apply (the caller then runs the two layers).  ``planar``: the pooled
        spikes NCHW-contiguous, for a flatten that follows (else channels-last).
        """
        if self.spec.kind != "conv" or x.dim() != 5 or not self._fuses(x):
            return None
        k, s, p = self.spec.kernel, self.spec.stride, self.spec.padding
        h, w = ((size + 2 * p - k) // s + 1 for size in x.shape[-2:])
        if not poolable((1, self.spec.out_channels, h, w), kernel, kernel, 0):
            return None
        return self._fire_fused(x, kernel, planar, average)

    def _fire_fused(
        self, x: torch.Tensor, pool: int = 0, planar: bool = False, average: bool = False
    ) -> torch.Tensor:
        """Conv/fc, then (batch norm and) firing (and pooling) in the fused kernel: ``[T, B, ...]``.

        A time-invariant input is convolved once and the kernel uses that one
        step's current at every step.  Without batch norm the bias is added in
        the kernel.
        """
        steps, once = x.shape[0], self._runs_once(x)
        # Without batch norm the kernel adds the bias (with it, there is none).
        in_op = self.norm is not None
        binary = carries_spikes(x)
        y = self._op(x[0], in_op) if once else self._weighted(merge_time(x), in_op, binary)
        params = self.neuron.params
        spikes = norm_fire(
            y,
            self.norm,
            params,
            steps,
            once,
            pool=pool,
            planar=planar,
            average=average,
            bias=None if self.norm is not None else self.op.bias,
        )
        return split_time(spikes, steps)

    def _fuses(self, x: torch.Tensor) -> bool:
        """Whether (batch norm and) firing run fused (:mod:`h2learn.snn.norm_fire`)."""
        if self.neuron is None or not torch.is_grad_enabled():
            return False
        if torch.is_autocast_enabled(x.device.type):  # the kernels take float32/float64 only
            return False
        dim = 4 if self.spec.kind == "conv" else 2
        if x.dim() != dim + 1:
            return False
        if self.norm is None:
            return use_cpp_kernels(x)
        if self._syncs_batch_norm():
            return False
        per_step = x.shape[1] * self._positions(x)  # values per channel and step
        count = per_step if self._runs_once(x) else x.shape[0] * per_step
        return fusable(dim, self.norm, count) and use_cpp_kernels(x)

    def _current_merged(self, flat: torch.Tensor, spikes: bool = False) -> torch.Tensor:
        """Conv/linear (+ bias) and batch norm of the merged batch ``[T*B, ...]``."""
        z = self._weighted(flat, spikes=spikes)
        if self.norm is None:
            return z
        if self._syncs_batch_norm():
            return sync_batch_norm(z, self.norm)
        return self.norm(z)

    def _weighted(
        self, flat: torch.Tensor, bias: bool = True, spikes: bool = False
    ) -> torch.Tensor:
        """Conv/linear (+ bias) of the merged batch ``[T*B, ...]``, before batch norm.

        Binary input (the spec says so, or ``spikes``: the time-major input
        was tagged as spikes) is kept as ``bool`` for the weight gradient.
        """
        binary = self.spec.binary_input or spikes
        if self.spec.kind == "conv":
            flat = channels_last(flat)
        if binary and torch.is_grad_enabled():
            weight = self._weight()
            if self.spec.kind == "conv":
                z = _SpikeConv2d.apply(flat, weight, self.spec.stride, self.spec.padding)
            else:
                z = _SpikeLinear.apply(flat, weight)
            if bias and self.op.bias is not None:
                z = z + (self.op.bias.view(1, -1, 1, 1) if z.dim() == 4 else self.op.bias)
            return z
        return self._op(flat, bias)

    def _syncs_batch_norm(self) -> bool:
        return self.sync_batch_norm and self.norm is not None and self.norm.training

    def _op(self, x: torch.Tensor, bias: bool = True) -> torch.Tensor:
        b = self.op.bias if bias else None
        if self.spec.kind == "conv":
            x = channels_last(x)
            return F.conv2d(x, self._weight(), b, self.spec.stride, self.spec.padding)
        return F.linear(x, self.op.weight, b)

    def _current_once(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        """The current ``[B, ...]`` of a time-invariant input ``x [B, ...]`` (each of T steps).

        Batch norm over the ``T * B`` merged batch sees ``T`` identical copies
        of every sample: the same mean and (biased) variance as over ``B``.  Only
        the running variance's unbiased correction counts ``T * B`` samples.
        """
        z = self._op(x)
        norm = self.norm
        if norm is None:
            return z
        if not norm.training and norm.running_mean is not None:
            return norm(z)  # running statistics: a per-sample map
        if self._syncs_batch_norm():
            return sync_batch_norm(z, norm, time_copies=steps)
        if not norm.track_running_stats:
            return F.batch_norm(z, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
        # momentum 1 into zeroed buffers: the kernel hands back this batch's mean and
        # its variance with the B-sample correction, made biased again here.
        mean, var = torch.zeros_like(norm.running_mean), torch.zeros_like(norm.running_var)
        out = F.batch_norm(z, mean, var, norm.weight, norm.bias, True, 1.0, norm.eps)
        per_step = z.numel() // z.shape[1]
        biased = var * ((per_step - 1) / per_step)
        update_running_stats(norm, mean, biased, steps * per_step)
        return out


def pool_time_major(x: torch.Tensor, mode: str, kernel: int) -> torch.Tensor:
    """``x [T, B, C, H, W]`` max- or average-pooled over ``kernel x kernel`` windows."""
    module = MaxPool2d(kernel) if mode == "max" else nn.AvgPool2d(kernel)
    return TimeDistributed(module)(x)


class TimeDistributed(nn.Module):
    """Applies a stateless per-sample module (pooling, flatten, conv, ...) to every time step.

    ``[T, B, ...] -> [T, B, ...]``: the module runs once on the merged
    ``T * B`` batch.  A time-invariant input (stride 0 along time) is
    processed once and stays time-invariant.  4-D inputs of a convolution or
    pooling run channels-last (oneDNN's and PyTorch's fast CPU layout; the
    values are the same); ``nn.MaxPool2d`` keeps compact indices
    (:class:`MaxPool2d`).  Spikes stay tagged as spikes through max pooling,
    flatten and other shape-only modules.
    """

    _KEEPS_SPIKES = (nn.MaxPool2d, nn.Flatten, nn.Unflatten, nn.Identity, nn.Dropout)

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        if type(module) is nn.MaxPool2d:
            pool = MaxPool2d(module.kernel_size, module.stride, module.padding, module.dilation)
            pool.ceil_mode, pool.return_indices = module.ceil_mode, module.return_indices
            module = pool
        self.module = module
        self._nhwc = isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d))

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if residual is not None:
            raise ValueError("only weighted layers accept a residual input")
        spikes = carries_spikes(x) and isinstance(self.module, self._KEEPS_SPIKES)
        if is_time_invariant(x):
            out = repeat_time(self.module(self._layout(x[0])), x.shape[0])
        else:
            out = split_time(self.module(self._layout(merge_time(x))), x.shape[0])
        return mark_spikes(out) if spikes else out

    def _layout(self, x: torch.Tensor) -> torch.Tensor:
        return channels_last(x) if self._nhwc and x.dim() == 4 else x
