"""Memory layouts of activations: channels-last (NHWC) helpers.

Convolutions run channels-last, which oneDNN and the fused kernels need; a
4-D activation ``[N, C, H, W]`` is then dense with the channel innermost
(strides ``(H*W*C, 1, W*C, C)``).  These helpers give every 4-D tensor exactly
those strides, also where PyTorch's own ``channels_last`` would not (one
channel, or size-1 dimensions with other strides).
"""

from __future__ import annotations

import torch

CHANNELS_LAST = torch.channels_last


def nhwc_strides(shape: torch.Size | tuple[int, ...]) -> tuple[int, int, int, int]:
    """The strides of a dense NHWC buffer holding an ``[N, C, H, W]`` tensor."""
    n, c, h, w = shape
    return (h * w * c, 1, w * c, c)


def nhwc_empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """An uninitialised ``[N, C, H, W]`` tensor with explicit channels-last strides."""
    return torch.empty_strided(shape, nhwc_strides(shape), dtype=dtype, device=device)


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x [N, C, H, W]`` with exactly the strides :func:`nhwc_strides` (a copy unless it has).

    Stricter than ``x.contiguous(memory_format=torch.channels_last)``: with one
    channel PyTorch regards NCHW as channels-last already (and oneDNN then
    picks its slow NCHW kernels), and size-1 dimensions may keep any stride.
    The fused kernels address every element by its NHWC offset.
    """
    if x.stride() == nhwc_strides(x.shape):
        return x
    return nhwc_empty(x.shape, x.dtype, x.device).copy_(x)


def channel_innermost(x: torch.Tensor) -> torch.Tensor:
    """``x`` dense with the channel (dimension 1) innermost: 2-D contiguous, 4-D NHWC."""
    if x.dim() == 2:
        dense = x.stride() == (x.shape[1], 1)
        return x if dense else torch.empty(x.shape, dtype=x.dtype, device=x.device).copy_(x)
    return channels_last(x)


def empty_channel_innermost(
    shape: tuple[int, ...], like: torch.Tensor, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """An uninitialised tensor of ``shape`` (2-D or 4-D) laid out as :func:`channel_innermost`.

    ``like`` gives the device and, unless ``dtype`` is given, the dtype.
    """
    dtype = like.dtype if dtype is None else dtype
    if len(shape) == 4:
        return nhwc_empty(shape, dtype, like.device)
    return torch.empty(shape, dtype=dtype, device=like.device)
