"""Counting the kernels of one BPTT training step as h2learn's PyTorch implementation runs it.

:func:`training_step_kernels` lists every GPU kernel that h2learn's PyTorch
implementation (:mod:`h2learn.snn`) launches for one training iteration --
forward pass, BPTT backward pass, weight gradients and the Adam update --
each as a :class:`~h2learn.baselines.gpu.device.Kernel` with its FLOPs and
minimum DRAM bytes.  Which element-wise kernels the software launches comes
from a :class:`~h2learn.baselines.gpu.software.StepImplementation`; which
dtype each tensor is in from a :class:`~h2learn.baselines.gpu.numerics.Numerics`.
Pricing is a separate step (:func:`~h2learn.baselines.gpu.device.kernel_cost`).

What is counted is h2learn's own training step, not a generic GPU SNN
framework: the kernel list follows :mod:`h2learn.snn`, including its
time-invariant first layer (:func:`h2learn.snn.layers.runs_once`) and its
compact max-pooling indices (:data:`h2learn.snn.layers.COMPACT_INDEX_PLANE`).

Conventions: tensors are time-major, ``N = T * B`` is the merged batch that
conv, linear and batch norm run on, ``M = B * neurons`` is one time step of a
layer.  A layer fed an image repeated over the ``T`` steps (the encoding
layer of an image model) computes its conv/linear and batch norm once per
sample, on ``B`` rows instead of ``N``.  Byte counts are DRAM traffic (each
operand read once, each result written once; L2 reuse between kernels is not
modelled).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from h2learn.baselines.gpu.device import DTYPE_BYTES, Kernel
from h2learn.baselines.gpu.numerics import Numerics, TensorClass, resolve_numerics
from h2learn.baselines.gpu.software import (
    PYTORCH_EAGER,
    ElementwiseOp,
    StepImplementation,
    elementwise_op,
)
from h2learn.graph import carries_gradient, readers
from h2learn.snn.layers import COMPACT_INDEX_PLANE, runs_once
from h2learn.spec import LayerSpec, Workload

Phase = Literal["forward", "backward", "weight_gradient", "optimizer"]
PHASES: tuple[str, ...] = ("forward", "backward", "weight_gradient", "optimizer")
"""The phases every :class:`Kernel` belongs to, in launch order."""
INDEX_BYTES = 8
"""torch.int64: the max-pooling indices PyTorch's kernels write and read."""

_op = elementwise_op


@dataclass(frozen=True)
class _Ctx:
    """What every counting function needs: network, numerics, software, layer sets.

    ``once`` names the layers that compute once per sample
    (:func:`_once_per_sample`); ``raw_input`` the layers that read the
    network's input as the data loader hands it over (directly or through
    pooling and flatten).
    """

    spec: Workload
    numerics: Numerics
    impl: StepImplementation
    once: frozenset[str] = frozenset()
    raw_input: frozenset[str] = frozenset()

    @property
    def merged(self) -> int:  # N = T * B
        """``N = T * B``: the rows of a layer that runs every time step."""
        return self.spec.time_steps * self.spec.batch_size

    def rows(self, layer: LayerSpec) -> int:
        """Samples ``layer`` computes on: ``B`` if it runs once per sample, else ``N = T * B``."""
        return self.spec.batch_size if layer.name in self.once else self.merged

    def tensors_of(self, layer: LayerSpec) -> TensorClass:
        """The tensor class of a pooling/flatten layer's data: the raw input or activations."""
        return "input" if layer.name in self.raw_input else "activations"


def _once_per_sample(spec: Workload) -> tuple[frozenset[str], list[bool]]:
    """``(layers computing once per sample, whether each layer's input is time-invariant)``.

    An image model's input is one image repeated over ``T > 1`` steps (an
    ``expand``, stride 0 along time).  Which layers then run once per sample
    is :func:`h2learn.snn.layers.runs_once`, the rule the layers themselves
    apply.  Pooling and flatten stay time-invariant; a weighted layer's output
    stays time-invariant only if it neither fires nor adds a residual (the
    LIF neuron turns it into ``[T, B]`` spikes).
    """
    network_input = spec.input_kind == "image" and spec.time_steps > 1
    once: set[str] = set()
    invariant_in: list[bool] = []
    invariant_out: list[bool] = []
    for layer in spec.layers:
        invariant = network_input if layer.source < 0 else invariant_out[layer.source]
        invariant_in.append(invariant)
        computes_once = runs_once(layer, spec.batch_size, invariant)
        if computes_once:
            once.add(layer.name)
        keeps = not layer.weighted or (not layer.fires and layer.residual is None)
        invariant_out.append(computes_once and keeps)
    return frozenset(once), invariant_in


def _reads_network_input(spec: Workload) -> frozenset[str]:
    """Layers whose input is the network input itself, directly or through pooling/flatten."""
    raw: list[bool] = []
    for layer in spec.layers:
        source = layer.source
        raw.append(source < 0 or (not spec.layers[source].weighted and raw[source]))
    return frozenset(layer.name for layer, is_raw in zip(spec.layers, raw, strict=True) if is_raw)


def _elementwise(
    ctx: _Ctx,
    layer: str,
    phase: str,
    op: ElementwiseOp,
    elements: float,
    launches: int = 1,
    tensors: TensorClass = "activations",
) -> Kernel:
    """``launches`` runs of element-wise ``op`` over ``elements`` elements of class ``tensors``."""
    return Kernel(
        layer=layer,
        phase=phase,
        kernel=op.name,
        engine="elementwise",
        flops=op.flops * elements * launches,
        bytes=op.bytes_per_element(ctx.numerics.bytes(tensors)) * elements * launches,
        launches=launches,
        dtype=ctx.numerics.dtype(tensors),
    )


def _ops(
    ctx: _Ctx,
    layer: str,
    phase: str,
    ops: Iterable[ElementwiseOp],
    elements: float,
    times: int,
    tensors: TensorClass = "activations",
) -> list[Kernel]:
    if times <= 0:
        return []
    return [_elementwise(ctx, layer, phase, op, elements, times, tensors) for op in ops]


def _cast(
    ctx: _Ctx, layer: str, phase: str, what: str, source: str, target: str, elements: float
) -> list[Kernel]:
    """A dtype conversion of ``elements`` values (none if the dtypes agree).

    Its bytes are counted as one-byte elements: ``source`` bytes read and
    ``target`` bytes written per value.
    """
    if source == target:
        return []
    op = _op(f"{what}_to_{target}", br=DTYPE_BYTES[source], bw=DTYPE_BYTES[target])
    return [_elementwise(ctx, layer, phase, op, elements, tensors="parameters")]


def _layer_elements(ctx: _Ctx, shape: tuple[int, ...], rows: int | None = None) -> int:
    """Elements of a ``[rows, *shape]`` activation (default ``rows``: ``N = T * B``)."""
    return (ctx.merged if rows is None else rows) * math.prod(shape)


def _gemm(ctx: _Ctx, layer: LayerSpec, phase: str, name: str, operands: float) -> Kernel:
    """A conv/linear GEMM on the layer's rows: ``2 * rows * macs_per_step`` FLOPs.

    ``rows`` is the merged batch ``N``, or ``B`` for a layer computing once per
    sample.  Forward ``W (*) x``, input gradient ``W^T (*) dz`` and weight
    gradient ``dz (x) x`` all perform the same multiply-accumulates.
    ``operands`` is the number of elements moved (minimum traffic: each
    operand read once, the result written once), each in the GEMM's dtype.
    """
    return Kernel(
        layer=layer.name,
        phase=phase,
        kernel=name,
        engine="gemm",
        flops=2.0 * ctx.rows(layer) * layer.macs_per_step,
        bytes=operands * ctx.numerics.gemm_bytes,
        launches=ctx.impl.gemm_kernels_per_call,
        dtype=ctx.numerics.gemm,
    )


def _input_copy_kernels(ctx: _Ctx, layer: LayerSpec, invariant_input: bool) -> list[Kernel]:
    """The copy a layer makes of a network input (or of a time-invariant input).

    The copy is in the input's dtype: the data loader's (``Numerics.input``)
    for the network input, the activations' otherwise.

    Event frames arrive batch-major and are transposed, so ``merge_time``
    copies them into a contiguous ``[T*B, ...]`` tensor.  An image repeated
    over T is never copied to ``[T*B, ...]`` by a layer that runs once per
    sample: a conv copies its ``[B, ...]`` input to channels-last (the layout
    its kernels use), a linear layer reads it in place, as do pooling and
    flatten.  A weighted layer that gets a time-invariant input but cannot
    run once (see :func:`_once_per_sample`) materialises the ``T`` copies.
    """
    runs_once = layer.name in ctx.once
    if invariant_input and runs_once:
        if layer.kind != "conv":
            return []
        copy = _op("input_to_channels_last", fr=1, fw=1)
        elements = _layer_elements(ctx, layer.in_shape, ctx.rows(layer))
    elif layer.source >= 0 and not invariant_input:
        return []
    else:
        copy = _op("input_to_time_major", fr=1, fw=1)
        elements = _layer_elements(ctx, layer.in_shape)
    return [_elementwise(ctx, layer.name, "forward", copy, elements, tensors=ctx.tensors_of(layer))]


def _weighted_forward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """Conv/linear (+ bias) (+ batch norm) (+ residual add), on the layer's rows.

    A layer that runs once per sample does all of it on ``B`` rows; its
    batch norm then also keeps the running statistics with a few per-channel
    kernels (``batch_norm_running_stats_once``).
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    kernels = _gemm_casts(ctx, layer, n_in)
    if layer.binary_input:  # _SpikeConv2d / _SpikeLinear keep the spikes as bool
        pack = _op("spikes_to_bool", fr=1, bw=1)
        kernels.append(_elementwise(ctx, layer.name, "forward", pack, n_in))
    kernels.append(
        _gemm(ctx, layer, "forward", f"{layer.kind}_forward", n_in + layer.num_weights + n_out)
    )
    if _has_bias(layer) and (layer.binary_input or layer.kind == "conv"):
        bias = _op("bias_add", fr=1, fw=1, fl=1)
        kernels.append(_elementwise(ctx, layer.name, "forward", bias, n_out))
    if layer.batch_norm:
        kernels += _ops(ctx, layer.name, "forward", ctx.impl.batch_norm_forward, n_out, 1)
        if layer.name in ctx.once:
            stats = ctx.impl.batch_norm_running_stats_once
            channels = layer.out_channels
            kernels += _ops(ctx, layer.name, "forward", stats, channels, 1, "parameters")
    if layer.residual is not None:  # materialises [T*B] even when the current ran once
        add = _op("residual_add", fr=2, fw=1, fl=1)
        kernels.append(
            _elementwise(ctx, layer.name, "forward", add, _layer_elements(ctx, layer.out_shape))
        )
    return kernels


def _has_bias(layer: LayerSpec) -> bool:
    return layer.weighted and not layer.batch_norm


def _gemm_casts(ctx: _Ctx, layer: LayerSpec, n_in: int) -> list[Kernel]:
    """The casts a GEMM in another dtype than its inputs needs (mixed precision only).

    The network input is cast to the GEMM's dtype by the first GEMM that reads
    it; each weight (and bias) by autocast once per step.
    """
    numerics, name = ctx.numerics, layer.name
    kernels: list[Kernel] = []
    if name in ctx.raw_input:
        kernels += _cast(ctx, name, "forward", "input", numerics.input, numerics.gemm, n_in)
    kernels += _cast(
        ctx, name, "forward", "weight", numerics.parameters, numerics.gemm, layer.num_weights
    )
    if _has_bias(layer):
        bias = layer.out_channels
        kernels += _cast(ctx, name, "forward", "bias", numerics.parameters, numerics.gemm, bias)
    return kernels


def _gradient_casts(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """The weight (and bias) gradients back from the GEMM's dtype to the parameters' (AMP)."""
    numerics, name, phase = ctx.numerics, layer.name, "weight_gradient"
    kernels = _cast(
        ctx, name, phase, "weight_grad", numerics.gemm, numerics.parameters, layer.num_weights
    )
    if _has_bias(layer):
        bias = layer.out_channels
        kernels += _cast(ctx, name, phase, "bias_grad", numerics.gemm, numerics.parameters, bias)
    return kernels


def _lif_kernels(
    ctx: _Ctx, layer: LayerSpec, phase: str, groups: list[tuple[str, tuple[ElementwiseOp, ...]]]
) -> list[Kernel]:
    """The kernels of LIF ``groups`` (see :meth:`StepImplementation.lif_forward_groups`)."""
    steps = ctx.spec.time_steps
    per_step = ctx.spec.batch_size * layer.neurons
    whole = ctx.merged * layer.neurons
    times = {"once": 1, "first": 1, "later": steps - 1, "every": steps}
    kernels: list[Kernel] = []
    for schedule, ops in groups:
        if schedule == "whole":
            kernels += _ops(ctx, layer.name, phase, ops, whole, 1)
        else:
            kernels += _ops(ctx, layer.name, phase, ops, per_step, times[schedule])
    return kernels


def _lif_forward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """The multi-step LIF forward loop (h2learn.snn.neuron) as separate kernels per step."""
    groups = ctx.impl.lif_forward_groups(ctx.spec.lif.reset_grad)
    return _lif_kernels(ctx, layer, "forward", groups)


def _lif_backward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """The hand-written BPTT of the LIF, one step at a time.

    A layer computed once per sample (and not adding a residual) passes its
    one-step current with ``steps=T``; the backward loop then also sums
    ``du`` over the steps (``lif_backward_repeated_*``).
    """
    lif = ctx.spec.lif
    repeated = layer.name in ctx.once and layer.residual is None
    groups = ctx.impl.lif_backward_groups(lif.reset_grad, repeated, lif.height)
    return _lif_kernels(ctx, layer, "backward", groups)


def _compact_index_bytes(layer: LayerSpec, input_needs_grad: bool) -> int | None:
    """Bytes per max-pooling index that h2learn keeps for backward, or ``None`` if none.

    ``h2learn.snn.layers.MaxPool2d`` keeps the argmax indices as int16 (int32
    for an ``H x W`` plane above 2**15) instead of int64 when the windows do
    not overlap (``stride >= kernel``) and the input needs a gradient;
    otherwise PyTorch's own max pooling keeps int64 indices (``None``).
    """
    if layer.kind != "maxpool" or not input_needs_grad or layer.stride < layer.kernel:
        return None
    return 2 if math.prod(layer.in_shape[1:]) <= COMPACT_INDEX_PLANE else 4


def _index_conversion(name: str, read_bytes: int, write_bytes: int) -> ElementwiseOp:
    """A dtype conversion of integer indices, its bytes counted as one-byte elements."""
    return _op(name, br=read_bytes, bw=write_bytes)


def _pool_forward(ctx: _Ctx, layer: LayerSpec, input_needs_grad: bool) -> list[Kernel]:
    """Average or max pooling on the layer's rows; max pooling also writes int64 indices.

    PyTorch's CUDA max pooling always writes int64 indices.  Where h2learn
    keeps compact indices (:func:`_compact_index_bytes`), a second kernel
    narrows them to int16/int32.  That cuts the memory *held* until backward
    to a quarter (or half), but it adds DRAM traffic: 8 bytes read and 2 (or 4)
    written per output here, and the reverse in backward.
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    window, tensors = layer.kernel * layer.kernel, ctx.tensors_of(layer)
    if layer.kind == "avgpool":
        op = _op("avgpool_forward", fr=n_in / n_out, fw=1, fl=window)
        return [_elementwise(ctx, layer.name, "forward", op, n_out, tensors=tensors)]
    op = _op("maxpool_forward", fr=n_in / n_out, fw=1, fl=window)
    kernel = _elementwise(ctx, layer.name, "forward", op, n_out, tensors=tensors)
    kernels = [dataclasses.replace(kernel, bytes=kernel.bytes + n_out * INDEX_BYTES)]
    compact = _compact_index_bytes(layer, input_needs_grad)
    if compact is not None:  # index.to(torch.int16 or torch.int32), saved for backward
        narrow = _index_conversion("maxpool_indices_to_compact", INDEX_BYTES, compact)
        kernels.append(_elementwise(ctx, layer.name, "forward", narrow, n_out))
    return kernels


def _pool_backward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """Pooling backward: avg spreads the gradient; max zero-fills then scatters by index.

    Max pooling scatters with int64 indices either way: PyTorch's backward
    kernel reads them, and h2learn's compact indices are widened first
    (``index.long()``) for ``scatter_``.
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    if layer.kind == "avgpool":
        op = _op("avgpool_backward", fr=1, fw=n_in / n_out, fl=1)
        return [_elementwise(ctx, layer.name, "backward", op, n_out)]
    kernels: list[Kernel] = []
    compact = _compact_index_bytes(layer, input_needs_grad=True)  # backward: the input needs it
    if compact is not None:
        widen = _index_conversion("maxpool_indices_to_int64", compact, INDEX_BYTES)
        kernels.append(_elementwise(ctx, layer.name, "backward", widen, n_out))
    zero = _elementwise(ctx, layer.name, "backward", _op("maxpool_grad_zero", fw=1), n_in)
    scatter = _elementwise(ctx, layer.name, "backward", _op("maxpool_backward", fr=1, fw=1), n_out)
    return kernels + [zero, dataclasses.replace(scatter, bytes=scatter.bytes + n_out * INDEX_BYTES)]


def _weighted_backward(ctx: _Ctx, layer: LayerSpec, input_needs_grad: bool) -> list[Kernel]:
    """Batch-norm and bias gradients, the input gradient (dgrad) and weight gradient (wgrad).

    A layer that ran once per sample gets the gradient of its ``[B, ...]``
    current: from the LIF neuron directly (``sum_t du[t]``, computed in its
    BPTT loop), otherwise from autograd summing the ``[T, B, ...]`` gradient of
    the expanded current over T (one reduction kernel).  Everything after
    that runs on ``B`` rows.
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    name = layer.name
    kernels: list[Kernel] = []
    if name in ctx.once and not (layer.fires and layer.residual is None):
        steps = ctx.spec.time_steps
        total = _op("expand_backward_sum_over_t", fr=steps, fw=1, fl=steps - 1)
        kernels.append(_elementwise(ctx, name, "backward", total, n_out))
    if layer.batch_norm:
        kernels += _ops(ctx, name, "backward", ctx.impl.batch_norm_backward, n_out, 1)
    if _has_bias(layer):
        reduce = _op("bias_grad_reduce", fr=1, fl=1)
        kernels.append(_elementwise(ctx, name, "weight_gradient", reduce, n_out))
    if layer.binary_input:  # the saved bool spikes back to the dtype for cuDNN/cuBLAS
        unpack = _op("bool_spikes_to_float", br=1, fw=1)
        kernels.append(_elementwise(ctx, name, "weight_gradient", unpack, n_in))
    if input_needs_grad:
        operands = n_out + layer.num_weights + n_in
        kernels.append(_gemm(ctx, layer, "backward", f"{layer.kind}_dgrad", operands))
    operands = n_out + n_in + layer.num_weights
    kernels.append(_gemm(ctx, layer, "weight_gradient", f"{layer.kind}_wgrad", operands))
    return kernels + _gradient_casts(ctx, layer)


def _readout_and_loss(ctx: _Ctx) -> list[Kernel]:
    """Time-mean read-out, cross-entropy forward and backward (all tiny, launch-bound).

    The mean over time runs on activations; ``log_softmax`` and ``nll_loss``
    in the loss dtype, with a cast on either side where the two differ, and
    the loss scaled (and its gradient seed with it) under loss scaling.
    """
    numerics, steps = ctx.numerics, ctx.spec.time_steps
    per_batch = ctx.spec.batch_size * ctx.spec.num_classes
    whole = ctx.merged * ctx.spec.num_classes

    def loss(phase: str, op: ElementwiseOp, elements: float) -> Kernel:
        return _elementwise(ctx, "loss", phase, op, elements, tensors="loss")

    act, lossd = numerics.activations, numerics.loss
    mean = _op("readout_mean_over_t", fr=steps, fw=1, fl=steps)
    fwd = [_elementwise(ctx, "loss", "forward", mean, per_batch)]
    fwd += _cast(ctx, "loss", "forward", "readout", act, lossd, per_batch)
    fwd += [
        loss("forward", _op("log_softmax", fr=1, fw=1, fl=4), per_batch),
        loss("forward", _op("nll_loss", fr=1, fl=1), per_batch),
    ]
    bwd = [loss("backward", _op("loss_grad_seed", fw=1), 1)]
    if numerics.loss_scaling:  # GradScaler.scale: loss * scale, and its backward
        fwd.append(loss("forward", _op("grad_scaler_scale_loss", fr=1, fw=1, fl=1), 1))
        bwd.append(loss("backward", _op("grad_scaler_scale_grad_seed", fr=1, fw=1, fl=1), 1))
    bwd += [
        loss("backward", _op("nll_loss_grad_zero", fw=1), per_batch),
        loss("backward", _op("nll_loss_backward", fr=1, fw=1), per_batch),
        loss("backward", _op("log_softmax_backward", fr=2, fw=1, fl=3), per_batch),
    ]
    bwd += _cast(ctx, "loss", "backward", "readout_grad", lossd, act, per_batch)
    readout = _op("readout_mean_backward", fr=1, fw=1, fl=1)
    bwd.append(_elementwise(ctx, "loss", "backward", readout, whole))
    return fwd + bwd


def _parameter_tensors(spec: Workload) -> tuple[int, int]:
    """``(tensors, elements)`` of the trainable parameters (weights, biases, BN affine)."""
    tensors = elements = 0
    for layer in spec.weighted_layers:
        tensors += 1
        elements += layer.num_weights
        if _has_bias(layer):
            tensors += 1
            elements += layer.out_channels
        if layer.batch_norm:
            tensors += 2
            elements += 2 * layer.out_channels
    return tensors, elements


def _optimizer(ctx: _Ctx) -> list[Kernel]:
    """Adam's multi-tensor update: each foreach op covers many tensors per launch.

    Under loss scaling ``GradScaler.unscale_`` runs first (``1 / scale`` in
    float64: three one-element kernels, a zero-filled ``found_inf``, and the
    multi-tensor unscale-and-check over every gradient) and
    ``GradScaler.update`` after (``_amp_update_scale_``).
    """
    tensors, elements = _parameter_tensors(ctx.spec)
    if tensors == 0:
        return []
    impl = ctx.impl
    launches = max(
        math.ceil(tensors / impl.foreach_tensors_per_launch),
        math.ceil(elements / impl.foreach_elements_per_launch),
    )

    def foreach(op: ElementwiseOp) -> Kernel:
        one = _elementwise(ctx, "optimizer", "optimizer", op, elements, tensors="parameters")
        return dataclasses.replace(one, launches=launches)

    def scalar(op: ElementwiseOp) -> Kernel:
        return _elementwise(ctx, "optimizer", "optimizer", op, 1, tensors="parameters")

    kernels: list[Kernel] = []
    if ctx.numerics.loss_scaling:
        kernels += [
            scalar(_op(f"grad_scaler_inv_scale_{step}", fr=1, fw=1, fl=1))
            for step in ("to_float64", "reciprocal", "to_float32")
        ]
        kernels.append(scalar(_op("grad_scaler_found_inf_fill", fw=1)))
        kernels.append(foreach(_op("grad_scaler_unscale_and_check", fr=1, fw=1, fl=2)))
    kernels += [foreach(op) for op in impl.adam]
    if ctx.numerics.loss_scaling:
        kernels.append(scalar(_op("grad_scaler_update_scale", fr=3, fw=2, fl=3)))
    return kernels


def _consumers(spec: Workload) -> list[int]:
    """How many layers (or the read-out, for the last layer) read each layer's output."""
    count = [len(users) for users in readers(spec)]
    count[-1] += 1
    return count


def training_step_kernels(
    spec: Workload,
    dtype: str = "float32",
    implementation: StepImplementation = PYTORCH_EAGER,
    numerics: str | Numerics | None = None,
) -> list[Kernel]:
    """Every kernel of one training iteration, in launch order.

    Forward through all layers, read-out and loss, backward in reverse
    layer order (LIF BPTT, batch norm, dgrad, wgrad, gradient accumulation
    where a layer feeds several), then the optimizer.  ``dtype`` (one dtype
    throughout) or ``numerics`` (a preset name such as ``"fp16-tensor-core"``,
    or a :class:`Numerics`) fixes each tensor's dtype; see
    :func:`~h2learn.baselines.gpu.numerics.resolve_numerics`.
    """
    once, invariant_input = _once_per_sample(spec)
    step_numerics = resolve_numerics(numerics, dtype)
    ctx = _Ctx(spec, step_numerics, implementation, once, _reads_network_input(spec))
    needs = carries_gradient(spec)
    forward: list[Kernel] = []
    for index, layer in enumerate(spec.layers):
        if layer.weighted or layer.source < 0:
            forward += _input_copy_kernels(ctx, layer, invariant_input[index])
        if layer.weighted:
            forward += _weighted_forward(ctx, layer)
            if layer.fires:
                forward += _lif_forward(ctx, layer)
        elif layer.kind in ("avgpool", "maxpool"):
            input_needs_grad = layer.source >= 0 and needs[layer.source]
            forward += _pool_forward(ctx, layer, input_needs_grad)
    loss = _readout_and_loss(ctx)
    backward: list[Kernel] = []
    consumers = _consumers(spec)
    for index in range(len(spec.layers) - 1, -1, -1):
        layer = spec.layers[index]
        if not needs[index]:
            continue
        if consumers[index] > 1:
            add = _op("grad_accumulate", fr=2, fw=1, fl=1)
            elements = _layer_elements(ctx, layer.out_shape)
            backward.append(
                _elementwise(ctx, layer.name, "backward", add, elements, consumers[index] - 1)
            )
        input_needs_grad = layer.source >= 0 and needs[layer.source]
        if layer.weighted:
            if layer.fires:
                backward += _lif_backward(ctx, layer)
            backward += _weighted_backward(ctx, layer, input_needs_grad)
        elif layer.kind in ("avgpool", "maxpool") and input_needs_grad:
            backward += _pool_backward(ctx, layer)
    return forward + loss + backward + _optimizer(ctx)
