"""Trace mode: exact counts of one task from a recorded iteration, by boolean reductions.

The LUT arithmetic is never evaluated.  Zero-pattern counts and non-zero
link counts are taken from the trace's tensors by cheap reductions and fed
to the engines' own count formulas
(:func:`~h2learn.arch.engines.lut.lut_counts`,
:func:`~h2learn.arch.engines.backward.backward_counts_from_links`), so every
count equals what the functional engines report on the same data
(``tests/arch/test_formula_parity.py``).  Lane and MAC-unit loads are the
exact per-unit sums under the engines' mappings (:mod:`h2learn.arch.mapping`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from h2learn.arch.activity.dense import as_floats, dense_task
from h2learn.arch.activity.geometry import all_links, lower_shape
from h2learn.arch.activity.tasks import LutWork, MacWork, update_lut_work
from h2learn.arch.config import HardwareConfig
from h2learn.arch.engines.backward import backward_counts_from_links, connections
from h2learn.arch.engines.common import BACKWARD_COUNT_KEYS, tap_windows
from h2learn.arch.engines.lut import lut_counts
from h2learn.arch.engines.update import spikes_by_point
from h2learn.arch.mapping import (
    group_lane_loads,
    psum_spill_words,
    unit_sums,
    update_block_groups,
)
from h2learn.arch.names import Engine, Phase
from h2learn.spec import LayerSpec

CHUNK_COUNTERS = 2**25
"""uint8 pattern counters per chunk of steps in :func:`fe_nonzero_per_group` (32 MiB)."""

_GROUP_VIEWS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def any_in_groups(bits: torch.Tensor, k: int) -> torch.Tensor:
    """``[..., m * k]`` uint8 0/1 -> bool ``[..., m]``: whether each group of ``k`` has a one.

    Groups of 1, 2, 4 or 8 bytes are reinterpreted as one integer (non-zero
    iff some byte is); other sizes take a maximum.
    """
    bits = bits.contiguous()
    if k in _GROUP_VIEWS:
        return bits.view(_GROUP_VIEWS[k]) != 0
    return bits.view(*bits.shape[:-1], -1, k).amax(-1) > 0


def _padded(steps: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    return F.pad(steps.to(torch.uint8), (layer.padding,) * 4)


def fe_nonzero_per_group(inputs: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """``[T, B, G]``: non-zero k-bit fan-in patterns per step, summed over output positions."""
    steps_, batch = inputs.shape[:2]
    groups = math.ceil(layer.fan_in / k)
    flat = inputs.reshape(steps_ * batch, *inputs.shape[2:])
    if layer.kind == "fc":
        padded = F.pad(flat.to(torch.uint8), (0, groups * k - layer.fan_in))
        nonzero = any_in_groups(padded, k)
        return nonzero.view(steps_, batch, groups).to(torch.float64)
    taps = layer.kernel * layer.kernel
    channel = torch.arange(layer.in_channels)
    out = torch.zeros(steps_ * batch, groups, dtype=torch.float64)
    chunk = max(1, CHUNK_COUNTERS // (groups * layer.out_positions))
    for start in range(0, flat.shape[0], chunk):
        part = flat[start : start + chunk]
        counts = torch.zeros(part.shape[0], groups, *layer.out_shape[1:], dtype=torch.uint8)
        for dy, dx, window in tap_windows(_padded(part, layer), layer):
            counts.index_add_(1, (channel * taps + dy * layer.kernel + dx) // k, window)
        out[start : start + chunk] = (counts > 0).sum((2, 3), dtype=torch.int32).to(torch.float64)
    return out.view(steps_, batch, groups)


def wue_nonzero_per_step_group(inputs: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """``[T, B, L/k]``: non-zero k-point patterns of the taps, summed over the fan-in.

    For conv layers with ``L`` a multiple of ``k``: groups of ``k`` consecutive
    output positions of one step, per presynaptic tap ``(c, dy, dx)``.
    """
    steps_, batch = inputs.shape[:2]
    positions = layer.out_positions
    flat = inputs.reshape(steps_ * batch, *inputs.shape[2:])
    out = torch.zeros(steps_ * batch, positions // k, dtype=torch.int32)
    for _, _, window in tap_windows(_padded(flat, layer), layer):
        grouped = window.reshape(window.shape[0], window.shape[1], positions)
        out += any_in_groups(grouped, k).sum(1, dtype=torch.int32)
    return out.view(steps_, batch, positions // k).to(torch.float64)


class TraceCounter:
    """Exact per-task counts of one weighted layer from its trace tensors."""

    def __init__(
        self, layer: LayerSpec, tensors: Mapping[str, torch.Tensor], config: HardwareConfig
    ):
        self.layer = layer
        self.tensors = tensors
        self.config = config
        self.binary = layer.binary_input
        inputs = tensors["input"]
        self.steps = inputs.shape[0]
        if self.binary:
            bits = inputs if inputs.dtype == torch.bool else inputs != 0
            self.bits = bits
            self.fe_nonzero = fe_nonzero_per_group(bits, layer, config.forward_group_size)
            k = config.update_group_size
            self.wue_periodic = layer.kind == "conv" and layer.out_positions % k == 0
            if self.wue_periodic:
                self.wue_nonzero = wue_nonzero_per_step_group(bits, layer, k)
        if not layer.encoding:
            self._prepare_backward()

    # -- Forward Engine ------------------------------------------------------------------------

    def forward(self, start: int, stop: int) -> tuple[dict[str, float], LutWork | MacWork]:
        layer, config = self.layer, self.config
        steps = self.steps * (stop - start)
        if not self.binary:
            return dense_task(Phase.FORWARD, layer, steps, config.backward_mac_units)
        fe, k = config.forward_engine, config.forward_group_size
        per_group = self.fe_nonzero[:, start:stop].sum((0, 1))
        groups = per_group.numel()
        points = steps * layer.out_positions
        zero = groups * points - int(round(float(per_group.sum())))
        skip = config.optimizations.skip_zero_patterns
        counts = as_floats(lut_counts(Engine.FORWARD, layer, k, points, zero, skip))
        counts["psum_spill_words"] = psum_spill_words(layer, config, k, points)
        if not skip:
            per_group = np.full(groups, float(points))
        loads = group_lane_loads(per_group, fe.lanes_per_pe)
        work = LutWork.of(
            layer.out_channels, fe.pe_count, fe.lanes_per_pe, groups, loads.max(), loads.mean(), k
        )
        return counts, work

    # -- Weight Update Engine ----------------------------------------------------------------

    def _wue_groups(self, start: int, stop: int) -> torch.Tensor:
        """Non-zero patterns per point group (summed over the fan-in), in task point order."""
        layer, k = self.layer, self.config.update_group_size
        if self.wue_periodic:
            return self.wue_nonzero[:, start:stop].reshape(-1)
        bits = spikes_by_point(self.bits[:, start:stop], layer)  # [fan_in, P], (t, b, l) order
        points = bits.shape[1]
        groups = math.ceil(points / k)
        padded = F.pad(bits.to(torch.uint8), (0, groups * k - points))
        return any_in_groups(padded, k).sum(0, dtype=torch.int64).to(torch.float64)

    def update(self, start: int, stop: int) -> tuple[dict[str, float], LutWork | MacWork]:
        layer, config = self.layer, self.config
        steps = self.steps * (stop - start)
        if not self.binary:
            return dense_task(Phase.UPDATE, layer, steps, config.backward_mac_units)
        ue, k = config.update_engine, config.update_group_size
        block = update_block_groups(config)
        per_group = self._wue_groups(start, stop)
        point_groups = per_group.numel()
        points = steps * layer.out_positions
        zero = point_groups * layer.fan_in - int(round(float(per_group.sum())))
        skip = config.optimizations.skip_zero_patterns
        counts = as_floats(lut_counts(Engine.UPDATE, layer, k, points, zero, skip, block))
        if not skip:
            per_group = np.full(point_groups, float(layer.fan_in))
        loads = group_lane_loads(per_group, ue.lanes_per_pe)
        return counts, update_lut_work(layer, config, point_groups, loads.max(), loads.mean())

    # -- Backward Engine -----------------------------------------------------------------------

    def _prepare_backward(self) -> None:
        """Per-step non-zero links and active masks (``backward_counts``'s quantities)."""
        layer, opt = self.layer, self.config.optimizations
        grad = self.tensors["grad_psum"]
        steps_, batch = grad.shape[:2]
        nonzero = (grad != 0).reshape(steps_ * batch, layer.out_channels, -1)
        positions = tuple(layer.out_shape[1:]) if layer.kind == "conv" else (1, 1)
        per_position = nonzero.sum(1, dtype=torch.float64).view(-1, 1, *positions)
        self.nonzero_du = nonzero.sum((1, 2), dtype=torch.float64).view(steps_, batch)
        self.all_links = all_links(layer).flatten()
        links = connections(per_position, layer) if opt.input_sparsity else None
        channels, lower_positions = lower_shape(layer)
        if links is None:
            links = self.all_links.view(1, 1, -1).expand(steps_ * batch, 1, -1)
        self.links = links.reshape(steps_, batch, 1, lower_positions)
        mask = self.tensors.get("lower_mask")
        self.masked = opt.output_sparsity and mask is not None
        if self.masked:
            self.active = mask.reshape(steps_, batch, channels, lower_positions)
        else:
            self.active = None

    def backward(self, start: int, stop: int) -> tuple[dict[str, float], MacWork]:
        layer, config = self.layer, self.config
        channels, lower_positions = lower_shape(layer)
        links = self.links[:, start:stop]  # [T, m, 1, P]
        steps = links.shape[0] * links.shape[1]
        if self.active is not None:
            active = self.active[:, start:stop].to(torch.float64)
            per_element = (active * links).sum((0, 1))  # [C, P]
            dense_active = (active * self.all_links).sum()
            active_count = float(active.sum())
        else:
            per_element = links.sum((0, 1)).expand(channels, lower_positions)
            dense_active = steps * channels * self.all_links.sum()
            active_count = float(steps * channels * lower_positions)
        counts = dict.fromkeys(BACKWARD_COUNT_KEYS, 0.0)
        counts.update(
            backward_counts_from_links(
                macs_dense=float(steps * channels * self.all_links.sum()),
                macs_active=float(dense_active),
                macs_done=float(per_element.sum()),
                grads=float(steps * layer.out_channels * layer.out_positions),
                nonzero_grads=float(self.nonzero_du[:, start:stop].sum()),
                lower_elements=float(steps * channels * lower_positions),
                active_elements=active_count,
                input_sparsity=config.optimizations.input_sparsity,
                masked=self.masked,
            )
        )
        units = config.backward_mac_units
        loads = unit_sums(per_element.reshape(-1).numpy(), units)
        return counts, MacWork(float(units), float(loads.max()), float(loads.mean()))


class TraceProvider:
    """A :class:`~h2learn.arch.activity.builder.CountProvider` of exact counts from a trace.

    One :class:`TraceCounter` per layer, one layer's boolean maps at a time
    (bounds memory).
    """

    def __init__(self, trace, config: HardwareConfig):
        self.trace, self.config = trace, config
        self.counters: dict[str, TraceCounter] = {}

    def _counter(self, layer: LayerSpec) -> TraceCounter:
        if layer.name not in self.counters:
            self.counters.clear()
            self.counters[layer.name] = TraceCounter(
                layer, self.trace[layer.name].tensors, self.config
            )
        return self.counters[layer.name]

    def forward(self, index: int, layer: LayerSpec, start: int, stop: int):
        return self._counter(layer).forward(start, stop)

    def update(self, index: int, layer: LayerSpec, start: int, stop: int):
        return self._counter(layer).update(start, stop)

    def backward(self, index: int, layer: LayerSpec, start: int, stop: int):
        return self._counter(layer).backward(start, stop)
