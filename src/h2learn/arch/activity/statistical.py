"""Statistical mode: expected counts and loads of one task from per-layer densities.

Every input spike is present independently with probability ``density``; a
k-bit pattern over ``v`` real (non-padding) inputs is all-zero with
probability ``(1 - d)**v``.  The expected zero-pattern counts, non-zero links
and active elements are fed to the engines' own count formulas
(:func:`~h2learn.arch.engines.lut.lut_counts`,
:func:`~h2learn.arch.engines.backward.backward_counts_from_links`), so this
module restates no formula; the busiest lane's or MAC unit's load is the
expected maximum (:mod:`h2learn.arch.activity.loadstats`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from h2learn.arch.activity.dense import dense_task
from h2learn.arch.activity.geometry import (
    all_links,
    fe_group_taps,
    lower_shape,
    wue_group_taps,
)
from h2learn.arch.activity.loadstats import expected_busiest_mac_unit, expected_max
from h2learn.arch.activity.tasks import LutWork, MacWork, Work, update_lut_work
from h2learn.arch.config import HardwareConfig
from h2learn.arch.engines.backward import backward_counts_from_links
from h2learn.arch.engines.common import BACKWARD_COUNT_KEYS
from h2learn.arch.engines.lut import lut_counts
from h2learn.arch.mapping import (
    group_lane_loads,
    psum_spill_words,
    update_block_groups,
)
from h2learn.arch.names import Engine, Phase
from h2learn.spec import LayerSpec
from h2learn.workload.densities import Densities, DensityError


def expected_skips(counts: dict[str, int], zero_patterns: float, out: int, skip: bool):
    """A LUT pass's counts (as floats) once the expected ``zero_patterns`` are known.

    :func:`lut_counts` takes integer pattern counts; the expectation is a
    float, so the pass is counted with none and the zero-pattern lookups are
    moved over here, by the formula's own convention (each zero pattern is
    looked up by every output channel, or skipped).
    """
    counts = {name: float(value) for name, value in counts.items()}
    zero_lookups = zero_patterns * out
    skipped = zero_lookups if skip else 0.0
    performed = counts["lookups"] - skipped
    counts.update(
        zero_pattern_lookups=zero_lookups,
        lookups_skipped=skipped,
        lookups=performed,
        accumulations=performed,
        table_reads=performed,
    )
    return counts


def expected_forward(
    layer: LayerSpec, config: HardwareConfig, steps: int, density: float
) -> tuple[dict[str, float], LutWork]:
    """Expected Forward Engine counts and lane loads of one task on binary inputs.

    ``steps`` is the number of time steps x samples the task covers.  Returns
    ``(counts, work)``: the engine's event counts (``FORWARD_COUNT_KEYS``, as
    floats, plus ``psum_spill_words``) and the lane loads that
    :mod:`h2learn.arch.cycles` turns into cycles.  Public so that tests and
    analyses can evaluate one layer's LUT forward pass on its own.
    """
    fe, k = config.forward_engine, config.forward_group_size
    skip = config.optimizations.skip_zero_patterns
    types, group_type = fe_group_taps(layer, k)  # [types, L], [G]
    nonzero = 1.0 - (1.0 - density) ** types
    groups, positions = group_type.numel(), types.shape[1]
    multiplicity = torch.bincount(group_type, minlength=types.shape[0]).to(torch.float64)
    points = steps * positions
    zero_patterns = steps * float(((1.0 - nonzero).sum(1) * multiplicity).sum())
    base = lut_counts(Engine.FORWARD, layer, k, points, 0, False)
    counts = expected_skips(base, zero_patterns, layer.out_channels, skip)
    counts["psum_spill_words"] = psum_spill_words(layer, config, k, points)
    if skip:
        per_group = nonzero.sum(1)[group_type]
        per_group_var = (nonzero * (1 - nonzero)).sum(1)[group_type]
        means = steps * group_lane_loads(per_group, fe.lanes_per_pe)
        variances = steps * group_lane_loads(per_group_var, fe.lanes_per_pe)
        upper = group_lane_loads(np.full(groups, float(points)), fe.lanes_per_pe)
        load_max = expected_max(means, variances, upper)
    else:
        means = group_lane_loads(np.full(groups, float(points)), fe.lanes_per_pe)
        load_max = float(means.max())
    work = LutWork.of(
        layer.out_channels, fe.pe_count, fe.lanes_per_pe, groups, load_max, means.mean(), k
    )
    return counts, work


def expected_update(
    layer: LayerSpec, config: HardwareConfig, steps: int, density: float
) -> tuple[dict[str, float], LutWork]:
    """Expected Weight Update Engine counts and lane loads of one task (binary inputs)."""
    ue, k = config.update_engine, config.update_group_size
    skip = config.optimizations.skip_zero_patterns
    block = update_block_groups(config)
    positions = layer.out_positions
    periodic = positions % k == 0
    taps = wue_group_taps(layer, k, 1 if periodic else steps)  # [kh*kw, Q]
    channels = layer.fan_in // taps.shape[0]
    nonzero = 1.0 - (1.0 - density) ** taps
    repeat = steps if periodic else 1
    per_group = channels * nonzero.sum(0).repeat(repeat)
    per_group_var = channels * (nonzero * (1 - nonzero)).sum(0).repeat(repeat)
    point_groups = per_group.numel()
    points = steps * positions
    zero_patterns = repeat * channels * float((1.0 - nonzero).sum())
    base = lut_counts(Engine.UPDATE, layer, k, points, 0, False, block)
    counts = expected_skips(base, zero_patterns, layer.out_channels, skip)
    full = np.full(point_groups, float(layer.fan_in))
    if skip:
        means = group_lane_loads(per_group, ue.lanes_per_pe)
        upper = group_lane_loads(full, ue.lanes_per_pe)
        variances = group_lane_loads(per_group_var, ue.lanes_per_pe)
        load_max = expected_max(means, variances, upper)
    else:
        means = group_lane_loads(full, ue.lanes_per_pe)
        load_max = float(means.max())
    return counts, update_lut_work(layer, config, point_groups, load_max, means.mean())


def expected_backward(
    layer: LayerSpec,
    config: HardwareConfig,
    steps: int,
    du_density: float,
    mask_density: float | None,
    units: int | None = None,
) -> tuple[dict[str, float], MacWork]:
    """Expected Backward Engine counts and MAC-unit loads of one task.

    A lower element receives one MAC per (output channel, tap) link to a
    non-zero ``du`` (input sparsity) and only if its mask is set (output
    sparsity); the expected link totals go through the engine's
    :func:`~h2learn.arch.engines.backward.backward_counts_from_links`.
    """
    opt = config.optimizations
    links = all_links(layer).flatten()  # per lower position
    channels, positions = lower_shape(layer)
    masked = opt.output_sparsity and mask_density is not None
    active = mask_density if masked else 1.0
    d = du_density if opt.input_sparsity else 1.0
    elements = channels * positions
    dense = steps * channels * float(links.sum())
    upper = steps * layer.out_channels * layer.out_positions
    counts = dict.fromkeys(BACKWARD_COUNT_KEYS, 0.0)
    counts.update(
        backward_counts_from_links(
            macs_dense=dense,
            macs_active=dense * active,
            macs_done=dense * active * d,
            grads=float(upper),
            nonzero_grads=upper * d,
            lower_elements=float(steps * elements),
            active_elements=steps * elements * active,
            input_sparsity=opt.input_sparsity,
            masked=masked,
        )
    )
    per_element_links = links.repeat(channels).numpy()  # channel-major flat order
    units = units or config.backward_mac_units
    load_max, load_mean = expected_busiest_mac_unit(per_element_links, units, steps, active, d)
    return counts, MacWork(float(units), float(load_max), load_mean)


class StatisticalProvider:
    """A :class:`~h2learn.arch.activity.builder.CountProvider` of expected counts from densities.

    Identical micro-batches (same layer, phase and steps) are computed once.
    """

    def __init__(self, config: HardwareConfig, steps: int, densities: Densities):
        self.config, self.steps, self.densities = config, steps, densities
        self.cache: dict[tuple, tuple[dict[str, float], Work]] = {}

    def _cached(self, key: tuple, compute: Callable[[], tuple[dict[str, float], Work]]):
        if key not in self.cache:
            self.cache[key] = compute()
        counts, work = self.cache[key]
        return dict(counts), work

    def forward(self, index: int, layer: LayerSpec, start: int, stop: int):
        return self._lut_task(Phase.FORWARD, expected_forward, index, layer, start, stop)

    def update(self, index: int, layer: LayerSpec, start: int, stop: int):
        return self._lut_task(Phase.UPDATE, expected_update, index, layer, start, stop)

    def _lut_task(self, phase: Phase, expected, index: int, layer: LayerSpec, start, stop):
        """A Forward or Weight Update Engine task (dense MACs when the input is analog)."""
        steps = self.steps * (stop - start)
        if not layer.binary_input:
            return dense_task(phase, layer, steps, self.config.backward_mac_units)
        d = self._density(layer, "input")
        return self._cached((phase, index, steps), lambda: expected(layer, self.config, steps, d))

    def backward(self, index: int, layer: LayerSpec, start: int, stop: int):
        steps = self.steps * (stop - start)
        du = self._density(layer, "du_psum")
        mask = self.densities[layer.name].get("lower_mask")
        return self._cached(
            (Phase.BACKWARD, index, steps),
            lambda: expected_backward(layer, self.config, steps, du, mask),
        )

    def _density(self, layer: LayerSpec, key: str) -> float:
        value = self.densities[layer.name].get(key)
        if value is None:
            raise DensityError(f"densities[{layer.name!r}] needs {key!r} (a number in [0, 1])")
        return float(value)
