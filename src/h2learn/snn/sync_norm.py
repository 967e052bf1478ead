"""Batch norm whose statistics span every process of a data-parallel run.

With data parallelism each process sees only its shard of the global batch.
Plain batch norm would normalise each shard by its own mean and variance, so
a two-process run would train a different network than one process with the
same global batch.  Here the per-channel sums are added across processes with
a differentiable all-reduce (:class:`_AllSum`, whose backward is an all-reduce
of the gradients), so the forward pass and BPTT see exactly the global
statistics.  Two all-reduces per layer and step: the sums with the sample
count, then the centred squares (two passes keep the variance accurate).

PyTorch's ``nn.SyncBatchNorm`` does the same but runs only on accelerators;
this version works on CPU with the gloo backend.  It is written with plain
tensor operations, so autograd derives its backward, which the distributed
tests check against a single process.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn

from h2learn.snn.running_stats import update_running_stats


def sync_batch_norm(z: torch.Tensor, norm: nn.modules.batchnorm._BatchNorm, time_copies: int = 1):
    """Training-mode batch norm of ``z`` (``[N, C, ...]``) over all processes' samples.

    ``time_copies``: how many identical time steps each sample of ``z`` stands
    for (the encoding layer computes a repeated image once); it changes only
    the sample count of the running variance's unbiased correction, exactly as
    in the single-process path.  Updates ``norm``'s running statistics.
    """
    channels = z.shape[1]
    dims = [0, *range(2, z.dim())]
    shape = [1, channels] + [1] * (z.dim() - 2)
    # One all-reduce carries the channel sums and the sample count (in float32
    # the count is exact up to 2^24 values per channel over all processes; past
    # that it rounds by under 1e-7 relative, less than the sums themselves).
    local_count = z.new_full((1,), float(z.numel() // channels))
    sums_and_count = _AllSum.apply(torch.cat([z.sum(dims), local_count]))
    total = float(sums_and_count[channels].item())
    mean = sums_and_count[:channels] / total
    centered = z - mean.view(shape)
    var = _AllSum.apply((centered * centered).sum(dims)) / total
    out = centered * torch.rsqrt(var + norm.eps).view(shape)
    if norm.affine:
        out = out * norm.weight.view(shape) + norm.bias.view(shape)
    update_running_stats(norm, mean.detach(), var.detach(), total * time_copies)
    return out


class _AllSum(torch.autograd.Function):
    """``y = sum over processes of x``; the gradient of each ``x`` is the sum of the ``dy``.

    (Every process's ``y`` depends on every ``x`` with weight 1.)
    """

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = tensor.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        total = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(total)
        return total
