"""Element-wise, pooling, loss and optimizer tasks: data-independent counts.

Each task adds up the data-free count functions of the units it uses
(:mod:`h2learn.arch.engines.elementwise` and :mod:`h2learn.arch.engines.lif`);
this module only decides which units a layer's phase uses and how much of the
per-channel work a micro-batch carries.  Batch norm's per-channel work
(statistics, scale and shift) is shared evenly among the micro-batches
(``share = samples / batch``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from h2learn.arch.activity.tasks import ElementwiseWork
from h2learn.arch.engines.elementwise import (
    batchnorm_backward_counts,
    batchnorm_forward_counts,
    bias_add_counts,
    bias_gradient_counts,
    lif_backward_counts,
    lif_forward_counts,
    loss_counts,
    optimizer_counts,
    pool_backward_counts,
    pool_forward_counts,
    residual_add_counts,
)
from h2learn.spec import LayerSpec, Workload

Counts = dict[str, float]


def _add(counts: Counts, values: Mapping[str, float]) -> None:
    for name, value in values.items():
        counts[name] = counts.get(name, 0.0) + float(value)


def elementwise_forward_task(
    layer: LayerSpec, spec: Workload, steps: int, share: float
) -> tuple[Counts, ElementwiseWork]:
    """Bias or batch norm, residual add and LIF forward of one task of a weighted layer."""
    n = steps * layer.neurons
    c = layer.out_channels
    counts: Counts = {}
    passes = 1.0
    if layer.batch_norm:
        _add(counts, batchnorm_forward_counts(n, c, share))
        passes = 2.0
    else:
        _add(counts, bias_add_counts(n, c, share))
    if layer.residual is not None:
        _add(counts, residual_add_counts(n))
    if layer.fires:
        _add(counts, lif_forward_counts(n, spec.lif.reset_grad))
    return counts, ElementwiseWork(passes * n)


def elementwise_backward_task(
    layer: LayerSpec, spec: Workload, steps: int, samples: int, share: float
) -> tuple[Counts, ElementwiseWork]:
    """LIF backward, then batch-norm backward or the bias gradient, of one task."""
    n = steps * layer.neurons
    c = layer.out_channels
    counts: Counts = {}
    passes = 1.0
    if layer.fires:
        elements = samples * layer.neurons
        _add(
            counts,
            lif_backward_counts(spec.time_steps, elements, spec.lif.height, spec.lif.reset_grad),
        )
    if layer.batch_norm:
        _add(counts, batchnorm_backward_counts(n, c, share))
        passes = 2.0
    else:
        _add(counts, bias_gradient_counts(n))
    return counts, ElementwiseWork(passes * n)


def pool_task(layer: LayerSpec, steps: int, backward: bool) -> tuple[Counts, ElementwiseWork]:
    """Pooling forward or backward of one task.

    Backward adds for overlapping windows come from the geometry for average
    pooling; for max pooling each input gets at most one gradient when
    windows do not overlap, and overlap is ignored [ours] (the unit counts
    them from the data).
    """
    outputs = steps * layer.neurons
    inputs = steps * math.prod(layer.in_shape)
    counts: Counts = {}
    if not backward:
        _add(counts, pool_forward_counts(layer.kind, layer.kernel, outputs))
        return counts, ElementwiseWork(float(layer.kernel * layer.kernel * outputs))
    window = layer.kernel * layer.kernel
    overlap = max(0.0, window * outputs - inputs) if layer.kind == "avgpool" else 0.0
    _add(counts, pool_backward_counts(layer.kind, outputs, inputs, overlap))
    return counts, ElementwiseWork(float(inputs))


def loss_task(classes: int, samples: int, time_steps: int) -> tuple[Counts, ElementwiseWork]:
    """Cross-entropy on the time-mean read-out of one micro-batch."""
    counts: Counts = {}
    _add(counts, loss_counts(time_steps, samples, classes))
    return counts, ElementwiseWork(float(time_steps * samples * classes))


def parameter_count(spec: Workload) -> int:
    """Trainable parameters: weights, biases (layers without BN), BN scale and shift."""
    total = 0
    for layer in spec.weighted_layers:
        total += layer.num_weights
        total += 2 * layer.out_channels if layer.batch_norm else layer.out_channels
    return total


def optimizer_task(spec: Workload, optimizer: str) -> tuple[Counts, ElementwiseWork]:
    """The update step over every trainable parameter, after the mini-batch."""
    params = float(parameter_count(spec))
    counts: Counts = {}
    _add(counts, optimizer_counts(params, optimizer))
    return counts, ElementwiseWork(params)
