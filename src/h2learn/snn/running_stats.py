"""Batch norm's running statistics, blended in as ``nn.BatchNorm`` does.

Three paths compute a training batch's mean and variance themselves: the
fused batch norm + LIF kernel (:mod:`h2learn.snn.norm_fire`), batch norm over
all processes (:mod:`h2learn.snn.sync_norm`), and the batch norm of a
time-invariant input over its ``T`` identical copies (:mod:`h2learn.snn.layers`).
All three update the module's running statistics here, so they follow
``nn.BatchNorm``: a momentum average (a cumulative one with ``momentum=None``)
of the mean and of the unbiased variance.
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def update_running_stats(
    norm: nn.modules.batchnorm._BatchNorm, mean: torch.Tensor, var: torch.Tensor, samples: float
) -> None:
    """Blend a batch's ``mean`` and biased ``var`` (over ``samples`` values) into ``norm``.

    Does nothing when ``norm`` keeps no running statistics.
    """
    if not norm.track_running_stats or norm.running_mean is None:
        return
    factor = 0.0 if norm.momentum is None else norm.momentum
    if norm.num_batches_tracked is not None:
        norm.num_batches_tracked.add_(1)
        if norm.momentum is None:
            factor = 1.0 / float(norm.num_batches_tracked)
    unbiased = var * (samples / max(samples - 1, 1))
    norm.running_mean.mul_(1 - factor).add_(mean.to(norm.running_mean.dtype), alpha=factor)
    norm.running_var.mul_(1 - factor).add_(unbiased.to(norm.running_var.dtype), alpha=factor)
