"""Data-independent geometry of a weighted layer: which kernel taps fall inside the input.

Padding taps never carry a spike, so the number of *real* inputs a k-bit
pattern covers depends on where its taps sit.  Statistical mode needs these
counts per fan-in group (:func:`fe_group_taps`) and per group of points
(:func:`wue_group_taps`); both modes need the Backward Engine's links per
lower-layer position (:func:`all_links`, from the engine's own
:func:`~h2learn.arch.engines.backward.connections`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from h2learn.arch.engines.backward import connections
from h2learn.spec import LayerSpec


def _axis_validity(size: int, out: int, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """``[kernel, out]``: 1 where tap offset ``d`` of output index ``o`` falls inside ``size``."""
    position = torch.arange(out).view(1, -1) * stride + torch.arange(kernel).view(-1, 1) - padding
    return ((position >= 0) & (position < size)).to(torch.float64)


def tap_validity(layer: LayerSpec) -> torch.Tensor:
    """``[kh*kw, L]``: 1 where kernel tap ``(dy, dx)`` of output position ``l`` is inside the input.

    Validity does not depend on the input channel, so fan-in index ``j`` has
    the validity of tap ``j mod kh*kw`` (fc layers: one always-valid tap).
    """
    if layer.kind == "fc":
        return torch.ones(1, 1, dtype=torch.float64)
    (_, height, width), (_, out_h, out_w) = layer.in_shape, layer.out_shape
    rows = _axis_validity(height, out_h, layer.kernel, layer.stride, layer.padding)
    cols = _axis_validity(width, out_w, layer.kernel, layer.stride, layer.padding)
    return torch.einsum("ay,bx->abyx", rows, cols).reshape(layer.kernel**2, out_h * out_w)


def taps_per_kernel(layer: LayerSpec) -> int:
    """Kernel taps per input channel (1 for fc layers)."""
    return layer.kernel * layer.kernel if layer.kind == "conv" else 1


def fe_group_taps(layer: LayerSpec, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real (non-padding) inputs of the fan-in groups: ``(types [n, L], type of each group [G])``.

    A group's valid-input count at each output position depends only on the
    kernel taps of its members (``j mod kh*kw``), so groups are reduced to
    their distinct tap sequences ("types"): the first member's tap and the
    group's length.
    """
    validity = tap_validity(layer)
    taps = taps_per_kernel(layer)
    groups = math.ceil(layer.fan_in / k)
    first = (torch.arange(groups) * k) % taps
    length = torch.full((groups,), k)
    length[-1] = layer.fan_in - (groups - 1) * k
    keys = first * (k + 1) + length
    unique, group_type = torch.unique(keys, return_inverse=True)
    types = torch.zeros(unique.numel(), validity.shape[1], dtype=torch.float64)
    for t, key in enumerate(unique.tolist()):
        start, size = divmod(key, k + 1)
        members = [(start + m) % taps for m in range(size)]
        types[t] = validity.index_select(0, torch.tensor(members)).sum(0)
    return types, group_type


def wue_group_taps(layer: LayerSpec, k: int, steps: int) -> torch.Tensor:
    """``[kh*kw, Q]``: real inputs of each kernel tap in each group of ``k`` consecutive points.

    Points run over ``steps`` (t, b) steps and the output positions; groups
    may span steps when ``L`` is not a multiple of ``k``.  Every input channel
    has the same counts (multiply by ``C`` for the whole fan-in).
    """
    validity = tap_validity(layer)
    full = validity.repeat(1, steps)
    points = full.shape[1]
    groups = math.ceil(points / k)
    full = F.pad(full, (0, groups * k - points))
    return full.view(validity.shape[0], groups, k).sum(2)


def all_links(layer: LayerSpec) -> torch.Tensor:
    """``[H, W]`` (fc: ``[1, 1]``): (output channel, tap) pairs reaching each lower position."""
    positions = tuple(layer.out_shape[1:]) if layer.kind == "conv" else (1, 1)
    upper = torch.full((1, 1, *positions), float(layer.out_channels), dtype=torch.float64)
    return connections(upper, layer)[0, 0]


def lower_shape(layer: LayerSpec) -> tuple[int, int]:
    """``(channels, positions)`` of the layer input (the Backward Engine's outputs)."""
    if layer.kind == "conv":
        return layer.in_channels, layer.in_shape[1] * layer.in_shape[2]
    return layer.in_shape[0], 1
