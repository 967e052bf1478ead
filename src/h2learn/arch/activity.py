"""Event counts of one training iteration per layer, phase and engine task.

Two modes answer the same question (Sparseloop style):

* **trace mode** (:func:`activity_from_trace`): exact counts from the real
  data of a recorded iteration, computed *without* the LUT arithmetic: the
  engines' count formulas (``forward.lut_counts`` for both LUT engines,
  ``backward.connections``) are fed with zero-pattern counts and non-zero
  link counts taken from the tensors by cheap boolean reductions;
* **statistical mode** (:func:`activity_from_densities`): expected counts from
  per-layer densities (a k-bit pattern over ``v`` real inputs of density ``d``
  is all-zero with probability ``(1 - d)**v``; padding taps are never set).

Work is cut into *tasks*: one engine working on one layer for one
micro-batch of ``schedule.micro_batch`` samples.  Besides its event counts a
task carries the mapping statistics that set its cycles (``work``): the
busiest lane's or MAC unit's load under the engines' round-robin mappings
(see :mod:`h2learn.arch.config`), so load imbalance from real sparsity is
counted as the maximum over lanes, not the average.  In statistical mode the
maximum is the expected maximum of independent normal lane loads.

The hardware mappings (all [ours], documented in docs/cost-model.md):

* Forward Engine: PE <- output channel (``ceil(O / pe_count)`` passes); lane
  <- fan-in groups ``g = l (mod lanes)``; every point's pattern is broadcast.
* Weight Update Engine: PE <- output channel; lane <- point groups
  ``q = l (mod lanes)`` of the task's points in (t, b, position) order;
  presynaptic inputs stream through.
* Backward Engine: lower-layer element ``(c, y, x)`` of every step <- MAC unit
  by skewed round-robin over the flat index (:func:`mac_unit_of`).
* Layers whose input is analog (the encoding layer) run forward and weight
  update as dense MACs on the Backward Engine's multipliers.

:func:`task_actions` turns a task's counts into ``(component, action)``
counts for :func:`h2learn.arch.cost.price` (the mapping of every count is in
its docstring).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import special

from h2learn.arch.config import HardwareConfig
from h2learn.arch.engines.backward import connections
from h2learn.arch.engines.counts import BACKWARD_COUNT_KEYS, FORWARD_COUNT_KEYS, UPDATE_COUNT_KEYS
from h2learn.arch.engines.elementwise import lif_backward_counts
from h2learn.arch.engines.forward import lut_counts
from h2learn.arch.engines.update import spikes_by_point
from h2learn.errors import H2LearnError
from h2learn.spec import LayerSpec, NetworkSpec

PHASES: tuple[str, ...] = (
    "forward",
    "forward_elementwise",
    "loss",
    "backward_elementwise",
    "backward",
    "update",
    "optimizer",
)
ENGINES: tuple[str, ...] = ("forward_engine", "backward_engine", "update_engine", "elementwise")

DEFAULT_SPIKE_DENSITY = 0.2
"""[ours] fraction of binary inputs that are spikes, when no density is given."""
DEFAULT_MASK_DENSITY = 0.35
"""[ours] fraction of surrogate masks set (|u - V_th| < a); cifar-vgg traces give 0.35."""


class ActivityError(H2LearnError, ValueError):
    """Densities or a trace do not fit the model (the message names the layer and field)."""


# --------------------------------------------------------------------------
# Data types
# --------------------------------------------------------------------------


@dataclass
class TaskActivity:
    """The events of one engine task: one layer, phase and micro-batch.

    ``counts`` uses the engines' count names (``FORWARD_COUNT_KEYS`` ...) plus
    ``psum_spill_words`` (Forward Engine partial sums that leave the PEs when a
    channel's tables do not fit its LUT banks); floats in statistical mode.
    ``work`` holds the mapping statistics :mod:`h2learn.arch.cycles` turns into
    cycles.  ``kind`` is ``lut``, ``mac`` or ``elementwise``.
    """

    layer: str
    layer_index: int
    phase: str
    engine: str
    micro_batch: int
    samples: int
    kind: str
    counts: dict[str, float] = field(default_factory=dict)
    work: dict[str, float] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, str, int]:
        return (self.layer_index, self.phase, self.micro_batch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "phase": self.phase,
            "engine": self.engine,
            "micro_batch": self.micro_batch,
            "samples": self.samples,
            "kind": self.kind,
            "counts": dict(self.counts),
            "work": dict(self.work),
        }


@dataclass
class Activity:
    """All tasks of one training iteration and how they were obtained."""

    spec: NetworkSpec
    batch_size: int
    time_steps: int
    micro_batch: int
    mode: str
    tasks: list[TaskActivity]
    densities: dict[str, dict[str, float | None]] = field(default_factory=dict)

    def by_layer_phase(self) -> dict[tuple[str, str], dict[str, float]]:
        """Counts summed over micro-batches, per ``(layer, phase)``."""
        totals: dict[tuple[str, str], dict[str, float]] = {}
        for task in self.tasks:
            entry = totals.setdefault((task.layer, task.phase), {})
            for name, value in task.counts.items():
                entry[name] = entry.get(name, 0.0) + value
        return totals

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.spec.name,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "time_steps": self.time_steps,
            "micro_batch": self.micro_batch,
            "densities": self.densities,
            "events": [
                {"layer": layer, "phase": phase, "counts": counts}
                for (layer, phase), counts in self.by_layer_phase().items()
            ],
        }


def layer_major(spec: NetworkSpec, config: HardwareConfig) -> bool:
    """Whether tasks run layer by layer over the mini-batch (batch-norm batch statistics)."""
    uses_bn = any(layer.batch_norm for layer in spec.weighted_layers)
    return bool(config.schedule.bn_batch_statistics and uses_bn)


def micro_batches(batch: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges of the micro-batches of a mini-batch."""
    return [(start, min(batch, start + size)) for start in range(0, batch, size)]


# --------------------------------------------------------------------------
# Statistics helpers
# --------------------------------------------------------------------------


def expected_max(
    means: np.ndarray, variances: np.ndarray, upper: np.ndarray | float | None = None
) -> float:
    """``E[max_i X_i]`` for independent ``X_i ~ N(mean_i, var_i)`` (numerical integration).

    Represents the busiest lane of an engine whose lanes carry random loads
    (statistical mode's load imbalance).  Identical (mean, var) pairs are
    merged; zero variances make a lane deterministic.  ``upper`` bounds each
    load (every element active): the normal tail would overshoot it when many
    lanes are close to full, so the result never exceeds ``max(upper)``.
    """
    if upper is not None:
        return min(expected_max(means, variances), float(np.max(upper)))
    means = np.asarray(means, dtype=np.float64).ravel()
    variances = np.maximum(np.asarray(variances, dtype=np.float64).ravel(), 0.0)
    if means.size == 0:
        return 0.0
    sigmas = np.sqrt(variances)
    top = float(means.max())
    spread = float(sigmas.max())
    if spread <= 1e-9 * max(1.0, abs(top)):
        return top
    keep = means > top - 9 * spread  # lanes further below never hold the maximum
    means, sigmas = means[keep], sigmas[keep]
    step = spread / 200  # merge lanes whose loads differ by < 0.5% of a standard deviation
    rounded = np.round(means / step) * step + 1j * np.round(sigmas / step) * step
    pairs, counts = np.unique(rounded, return_counts=True)
    grid = np.linspace(top - 8 * spread, top + 8 * spread, 401)
    sigma = np.maximum(pairs.imag, 1e-12 * spread)
    z = (grid[:, None] - pairs.real[None, :]) / sigma[None, :]
    log_cdf = (special.log_ndtr(z) * counts[None, :]).sum(1)
    return float(grid[0] + np.trapezoid(1.0 - np.exp(log_cdf), grid))


def _lane_sums(values: torch.Tensor | np.ndarray, lanes: int) -> np.ndarray:
    """Sum ``values[i]`` into lane ``i mod lanes`` (the round-robin mapping)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return np.bincount(np.arange(array.size) % lanes, weights=array, minlength=lanes)


def mac_unit_of(elements: int, units: int) -> np.ndarray:
    """The MAC unit of each lower-layer element (flat ``(c, y, x)`` index) [ours].

    Skewed round-robin: element ``e`` goes to ``(e + e // units) mod units``.
    Plain round-robin would give a unit the same position in every channel
    whenever ``units`` is a multiple of ``H*W``; in strided layers positions
    differ in how many taps reach them, and that unit would be overloaded.
    """
    index = np.arange(elements)
    return (index + index // units) % units


def _unit_sums(values: np.ndarray, units: int) -> np.ndarray:
    """Sum per-element values into their MAC units (:func:`mac_unit_of`)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return np.bincount(mac_unit_of(values.size, units), weights=values, minlength=units)


def _group_lane_loads(per_group: torch.Tensor | np.ndarray, lanes: int) -> np.ndarray:
    """Lane loads when lanes own groups round-robin; with fewer groups than lanes each
    group's table is replicated in ``lanes // groups`` lanes that split its work evenly."""
    values = np.asarray(per_group, dtype=np.float64).ravel()
    copies = replicas(values.size, lanes)
    if copies > 1:
        values = np.repeat(values[None, :], copies, axis=0).ravel() / copies
    return _lane_sums(values, lanes)


def replicas(groups: int, lanes: int) -> int:
    """Copies of each table when a task has fewer groups than the engine has lanes."""
    return max(1, lanes // max(1, groups))


# --------------------------------------------------------------------------
# Geometry (data-independent)
# --------------------------------------------------------------------------


def _axis_validity(size: int, out: int, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """``[kernel, out]``: 1 where tap offset ``d`` of output index ``o`` falls inside ``size``."""
    position = torch.arange(out).view(1, -1) * stride + torch.arange(kernel).view(-1, 1) - padding
    return ((position >= 0) & (position < size)).to(torch.float64)


def _tap_validity(layer: LayerSpec) -> torch.Tensor:
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


def _taps_per_kernel(layer: LayerSpec) -> int:
    return layer.kernel * layer.kernel if layer.kind == "conv" else 1


def _fe_group_taps(layer: LayerSpec, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Real (non-padding) inputs of the fan-in groups: ``(types [n, L], type of each group [G])``.

    A group's valid-input count at each output position depends only on the
    kernel taps of its members (``j mod kh*kw``), so groups are reduced to
    their distinct tap sequences ("types"): the first member's tap and the
    group's length.
    """
    validity = _tap_validity(layer)
    taps = _taps_per_kernel(layer)
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


def _wue_group_taps(layer: LayerSpec, k: int, steps: int) -> torch.Tensor:
    """``[kh*kw, Q]``: real inputs of each kernel tap in each group of ``k`` consecutive points.

    Points run over ``steps`` (t, b) steps and the output positions; groups
    may span steps when ``L`` is not a multiple of ``k``.  Every input channel
    has the same counts (multiply by ``C`` for the whole fan-in).
    """
    validity = _tap_validity(layer)
    full = validity.repeat(1, steps)
    points = full.shape[1]
    groups = math.ceil(points / k)
    full = F.pad(full, (0, groups * k - points))
    return full.view(validity.shape[0], groups, k).sum(2)


def _all_links(layer: LayerSpec) -> torch.Tensor:
    """``[H, W]`` (fc: ``[1, 1]``): (output channel, tap) pairs reaching each lower position."""
    positions = tuple(layer.out_shape[1:]) if layer.kind == "conv" else (1, 1)
    upper = torch.full((1, 1, *positions), float(layer.out_channels), dtype=torch.float64)
    return connections(upper, layer)[0, 0]


def _lower_shape(layer: LayerSpec) -> tuple[int, int]:
    """``(channels, positions)`` of the layer input (the Backward Engine's outputs)."""
    if layer.kind == "conv":
        return layer.in_channels, layer.in_shape[1] * layer.in_shape[2]
    return layer.in_shape[0], 1


# --------------------------------------------------------------------------
# Mapping statistics
# --------------------------------------------------------------------------


def _lut_work(
    out_channels: int,
    pes: int,
    lanes: int,
    groups: int,
    lane_loads_max: float,
    lane_loads_mean: float,
    k: int,
    merge_words: float = 0.0,
) -> dict[str, float]:
    """Mapping statistics of a LUT engine task (per pass of ``pes`` output channels)."""
    return {
        "passes": float(math.ceil(out_channels / pes)),
        "lanes": float(lanes),
        "groups": float(groups),
        "replicas": float(replicas(groups, lanes)),
        "lane_work_max": float(lane_loads_max),
        "lane_work_mean": float(lane_loads_mean),
        "tables_per_lane": float(math.ceil(groups / lanes)),
        "table_entries": float(2**k),
        "merge_words": float(merge_words),
    }


def _mac_work(unit_max: float, unit_mean: float, units: int) -> dict[str, float]:
    return {"units": float(units), "unit_work_max": float(unit_max), "unit_work_mean": unit_mean}


def _psum_spill_words(layer: LayerSpec, config: HardwareConfig, k: int, points: int) -> float:
    """Forward Engine partial sums written out and read back when tables exceed a lane's bank.

    A lane holds ``ceil(G / lanes)`` tables of ``2**k`` entries; if they exceed
    ``lut_entries_per_lane`` they are processed in blocks and every output's
    partial sum is written to the membrane buffer and read back once per
    extra block [ours].
    """
    fe = config.forward_engine
    groups = math.ceil(layer.fan_in / k)
    entries = math.ceil(groups / fe.lanes_per_pe) * 2**k
    blocks = math.ceil(entries / fe.lut_entries_per_lane)
    return float(layer.out_channels * points * (blocks - 1))


def update_block_groups(config: HardwareConfig) -> int:
    """Point groups per partial-sum block: the configured block, capped by the lanes' LUT banks."""
    ue = config.update_engine
    k = config.update_group_size
    per_lane = max(1, ue.lut_entries_per_lane // 2**k)
    return min(ue.partial_sum_groups, per_lane * ue.lanes_per_pe)


def _update_merge_words(layer: LayerSpec, point_groups: int, block: int) -> float:
    """Partial dW merges per output channel: one per presynaptic input and block."""
    return float(layer.fan_in * math.ceil(point_groups / block))


# --------------------------------------------------------------------------
# Dense MAC tasks (analog inputs) on the Backward Engine
# --------------------------------------------------------------------------


def dense_forward_counts(layer: LayerSpec, steps: int) -> dict[str, float]:
    """Counts of ``W (*) x`` on a dense MAC array (as ``forward._dense_forward`` counts them)."""
    points = steps * layer.out_positions
    macs = layer.fan_in * layer.out_channels * points
    counts = dict.fromkeys(FORWARD_COUNT_KEYS, 0.0)
    counts.update(
        multiplies=macs,
        accumulations=macs,
        weight_reads=layer.fan_in * layer.out_channels,
        input_reads=layer.fan_in * points,
        output_writes=layer.out_channels * points,
        dense_macs=macs,
    )
    return {key: float(value) for key, value in counts.items()}


def dense_update_counts(layer: LayerSpec, steps: int) -> dict[str, float]:
    """Counts of ``dW = du (x) x`` on a dense MAC array (as ``update._dense_update``)."""
    points = steps * layer.out_positions
    macs = points * layer.fan_in * layer.out_channels
    counts = dict.fromkeys(UPDATE_COUNT_KEYS, 0.0)
    counts.update(
        multiplies=macs,
        accumulations=macs,
        grad_reads=layer.out_channels * points,
        input_reads=layer.fan_in * points,
        output_writes=layer.out_channels * layer.fan_in,
        dense_macs=macs,
    )
    return {key: float(value) for key, value in counts.items()}


def dense_forward_work(layer: LayerSpec, steps: int, units: int) -> dict[str, float]:
    """MAC-unit loads of a forward task on analog (non-binary) inputs, without sparsity.

    The outputs ``(o, position)`` of every step are dealt round-robin to
    ``units`` MAC units, each output costing ``fan_in`` MACs.  Returns the
    ``units``, ``unit_work_max`` and ``unit_work_mean`` entries that
    :mod:`h2learn.arch.cycles` turns into cycles.  Public because the dense
    equal-area baseline (:mod:`h2learn.baselines.dense`) prices every forward
    task this way.
    """
    outputs = layer.out_channels * layer.out_positions
    per_unit = math.ceil(outputs / units) * steps * layer.fan_in
    mean = outputs * steps * layer.fan_in / units
    return _mac_work(per_unit, mean, units)


def dense_update_work(layer: LayerSpec, steps: int, units: int) -> dict[str, float]:
    """MAC-unit loads of a weight-update task ``dW = du (x) x`` without sparsity.

    The ``out_channels * fan_in`` weight-gradient elements are dealt
    round-robin to ``units`` MAC units, each summing over all ``steps *
    out_positions`` points.  Same entries as :func:`dense_forward_work`;
    public for the same reason (the dense baseline's weight update).
    """
    outputs = layer.out_channels * layer.fan_in
    points = steps * layer.out_positions
    return _mac_work(math.ceil(outputs / units) * points, outputs * points / units, units)


def _dense_task(
    phase: str, layer: LayerSpec, steps: int, units: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Counts and MAC-unit loads of a ``forward`` or ``update`` task on analog inputs.

    Data-independent, so trace and statistical mode share it.
    """
    if phase == "forward":
        return dense_forward_counts(layer, steps), dense_forward_work(layer, steps, units)
    return dense_update_counts(layer, steps), dense_update_work(layer, steps, units)


# --------------------------------------------------------------------------
# Statistical mode
# --------------------------------------------------------------------------


def _adjust_skips(counts: dict[str, float], zero_patterns: float, out: int, skip: bool):
    """Expected lookups once ``zero_patterns`` (a float) is known (the engines' conventions)."""
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
) -> tuple[dict[str, float], dict[str, float]]:
    """Expected Forward Engine counts and lane loads of one task on binary inputs.

    Statistical mode: every input spike is present independently with
    probability ``density``; ``steps`` is the number of time steps the task
    covers.  Returns ``(counts, work)``: the engine's event counts
    (``FORWARD_COUNT_KEYS``, as floats) and the lane loads that
    :mod:`h2learn.arch.cycles` turns into cycles.  Public so that tests and
    analyses can evaluate one layer's LUT forward pass on its own (for
    example, whether a layer's tables are reused by enough points to pay off).
    """
    fe, k = config.forward_engine, config.forward_group_size
    skip = config.optimizations.skip_zero_patterns
    types, group_type = _fe_group_taps(layer, k)  # [types, L], [G]
    nonzero = 1.0 - (1.0 - density) ** types
    groups, positions = group_type.numel(), types.shape[1]
    multiplicity = torch.bincount(group_type, minlength=types.shape[0]).to(torch.float64)
    points = steps * positions
    zero_patterns = steps * float(((1.0 - nonzero).sum(1) * multiplicity).sum())
    base = lut_counts("forward_engine", layer, k, points, 0, False)
    counts = _adjust_skips(
        {n: float(v) for n, v in base.items()}, zero_patterns, layer.out_channels, skip
    )
    counts["psum_spill_words"] = _psum_spill_words(layer, config, k, points)
    if skip:
        per_group = nonzero.sum(1)[group_type]
        per_group_var = (nonzero * (1 - nonzero)).sum(1)[group_type]
        means = steps * _group_lane_loads(per_group, fe.lanes_per_pe)
        variances = steps * _group_lane_loads(per_group_var, fe.lanes_per_pe)
        upper = _group_lane_loads(np.full(groups, float(points)), fe.lanes_per_pe)
        load_max = expected_max(means, variances, upper)
    else:
        means = _group_lane_loads(np.full(groups, float(points)), fe.lanes_per_pe)
        load_max = float(means.max())
    work = _lut_work(
        layer.out_channels, fe.pe_count, fe.lanes_per_pe, groups, load_max, means.mean(), k
    )
    return counts, work


def expected_update(
    layer: LayerSpec, config: HardwareConfig, steps: int, density: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Expected Weight Update Engine counts and lane loads of one task (binary inputs)."""
    ue, k = config.update_engine, config.update_group_size
    skip = config.optimizations.skip_zero_patterns
    block = update_block_groups(config)
    positions = layer.out_positions
    periodic = positions % k == 0
    taps = _wue_group_taps(layer, k, 1 if periodic else steps)  # [kh*kw, Q]
    channels = layer.fan_in // taps.shape[0]
    nonzero = 1.0 - (1.0 - density) ** taps
    repeat = steps if periodic else 1
    per_group = channels * nonzero.sum(0).repeat(repeat)
    per_group_var = channels * (nonzero * (1 - nonzero)).sum(0).repeat(repeat)
    point_groups = per_group.numel()
    points = steps * positions
    zero_patterns = repeat * channels * float((1.0 - nonzero).sum())
    base = lut_counts("update_engine", layer, k, points, 0, False, block)
    counts = _adjust_skips(
        {n: float(v) for n, v in base.items()}, zero_patterns, layer.out_channels, skip
    )
    if skip:
        means = _group_lane_loads(per_group, ue.lanes_per_pe)
        upper = _group_lane_loads(np.full(point_groups, float(layer.fan_in)), ue.lanes_per_pe)
        variances = _group_lane_loads(per_group_var, ue.lanes_per_pe)
        load_max = expected_max(means, variances, upper)
    else:
        means = _group_lane_loads(np.full(point_groups, float(layer.fan_in)), ue.lanes_per_pe)
        load_max = float(means.max())
    merge = _update_merge_words(layer, point_groups, block)
    work = _lut_work(
        layer.out_channels,
        ue.pe_count,
        ue.lanes_per_pe,
        point_groups,
        load_max,
        means.mean(),
        k,
        merge,
    )
    return counts, work


def expected_backward(
    layer: LayerSpec,
    config: HardwareConfig,
    steps: int,
    du_density: float,
    mask_density: float | None,
    units: int | None = None,
) -> tuple[dict[str, float], dict[str, float]]:
    """Expected Backward Engine counts and MAC-unit loads of one task.

    Mirrors ``backward.backward_counts``: a lower element receives one MAC per
    (output channel, tap) link to a non-zero ``du`` (input sparsity) and only
    if its mask is set (output sparsity).
    """
    opt = config.optimizations
    links = _all_links(layer).flatten()  # per lower position
    channels, positions = _lower_shape(layer)
    masked = opt.output_sparsity and mask_density is not None
    active = mask_density if masked else 1.0
    d = du_density if opt.input_sparsity else 1.0
    total_links = float(links.sum())
    elements = channels * positions
    dense = steps * channels * total_links
    upper = layer.out_channels * layer.out_positions
    counts = dict.fromkeys(BACKWARD_COUNT_KEYS, 0.0)
    counts.update(
        macs_done=dense * active * d,
        macs_dense=dense,
        macs_skipped_input=dense * active * (1 - d) if opt.input_sparsity else 0.0,
        macs_skipped_output=dense * (1 - active) if masked else 0.0,
        weight_reads=dense * active * d,
        grad_reads=steps * upper * d,
        mask_reads=float(steps * elements) if masked else 0.0,
        output_writes=steps * elements * (active if masked else 1.0),
    )
    per_element_links = links.repeat(channels).numpy()  # channel-major flat order
    units = units or config.backward_mac_units
    load_max, load_mean = _expected_busiest_mac_unit(per_element_links, units, steps, active, d)
    return counts, _mac_work(load_max, load_mean, units)


def _expected_busiest_mac_unit(
    links: np.ndarray, units: int, steps: int, active: float, density: float
) -> tuple[float, float]:
    """Expected load of the busiest MAC unit under output and input sparsity.

    A unit serves ``n`` element-steps; ``K ~ Binomial(n, active)`` of them are
    unmasked, and each performs ``Binomial(links, density)`` MACs.  Given
    ``K`` the load is close to normal (mean ``K*Lbar*d``, variance
    ``K*Lbar*d*(1-d) + K*var(L)*d^2*(1 - K/n)``, the last term sampling which
    elements are unmasked), so a unit's load is a binomial mixture
    of normals, which keeps the skew a plain normal approximation misses when
    units serve few elements.  Units with identical statistics are merged.
    """
    count = np.bincount(mac_unit_of(links.size, units), minlength=units)
    s1 = _unit_sums(links, units)
    s2 = _unit_sums(links * links, units)
    used = count > 0
    mean_load = float((steps * s1 * active * density).mean())
    if not used.any():
        return 0.0, mean_load
    n = steps * count[used]
    lbar = s1[used] / count[used]
    lvar = np.maximum(s2[used] / count[used] - lbar**2, 0.0)
    keys = np.stack([n, lbar, lvar], axis=1)
    types, multiplicity = np.unique(np.round(keys, 9), axis=0, return_counts=True)
    upper = float((types[:, 0] * types[:, 1]).max())
    if upper <= 0:
        return 0.0, mean_load
    if active >= 1.0 and density in (0.0, 1.0):  # deterministic loads
        return upper * density, mean_load
    tn, tl, tv = types[:, 0], types[:, 1], types[:, 2]
    type_mean = tn * active * tl * density
    type_sd = np.sqrt(
        tn * active * (tl * density * (1 - density) + tv * density**2 * (1 - active))
        + tn * active * (1 - active) * (tl * density) ** 2
    )
    low = max(0.0, float((type_mean - 10 * type_sd).max()))
    high = min(upper, float((type_mean + 10 * type_sd).max()))
    if high <= low:
        return min(upper, float(type_mean.max())), mean_load
    grid = np.linspace(low, high, 257)
    log_cdf = np.zeros_like(grid)
    for (n_t, l_t, v_t), m_t, mu_t, sd_t in zip(
        types, multiplicity, type_mean, type_sd, strict=True
    ):
        if active >= 1.0 or n_t * active * (1 - active) >= 50:  # the mixture is close to normal
            z = (grid - mu_t) / max(sd_t, 1e-12)
            log_cdf += float(m_t) * special.log_ndtr(z)
        else:
            log_cdf += float(m_t) * _log_cdf_mixture(grid, int(n_t), l_t, v_t, active, density)
    return low + float(np.trapezoid(1.0 - np.exp(log_cdf), grid)), mean_load


def _log_cdf_mixture(
    grid: np.ndarray, n: int, lbar: float, lvar: float, active: float, density: float
) -> np.ndarray:
    """``log P(load <= x)`` on ``grid`` for one type of MAC unit (a binomial mixture of normals)."""
    centre, spread = n * active, math.sqrt(n * active * (1 - active))
    low, high = max(0, int(centre - 7 * spread) - 1), min(n, int(centre + 7 * spread) + 1)
    ks = np.arange(low, high + 1, dtype=np.float64)
    log_pmf = (
        math.lgamma(n + 1)
        - special.gammaln(ks + 1)
        - special.gammaln(n - ks + 1)
        + ks * math.log(max(active, 1e-300))
        + (n - ks) * math.log(max(1 - active, 1e-300))
    )
    mean = ks * lbar * density
    sampling = lvar * density**2 * (1 - ks / n) if n else 0.0
    sd = np.sqrt(ks * (lbar * density * (1 - density) + sampling))
    z = (grid[:, None] - mean[None, :]) / np.maximum(sd, 1e-9)[None, :]
    cdf = np.where(sd[None, :] > 1e-9, special.ndtr(z), grid[:, None] >= mean[None, :])
    total = (cdf * np.exp(log_pmf)[None, :]).sum(1)
    return np.log(np.maximum(total, 1e-300))


# --------------------------------------------------------------------------
# Trace mode: exact counts from boolean reductions
# --------------------------------------------------------------------------


def _windows(steps: torch.Tensor, layer: LayerSpec) -> Iterator[tuple[int, torch.Tensor]]:
    """``(tap, [n, C, Ho, Wo] view)`` of a padded uint8 map for every kernel offset."""
    _, out_h, out_w = layer.out_shape
    stride = layer.stride
    padded = F.pad(steps.to(torch.uint8), (layer.padding,) * 4)
    for dy in range(layer.kernel):
        for dx in range(layer.kernel):
            window = padded[
                :,
                :,
                dy : dy + stride * (out_h - 1) + 1 : stride,
                dx : dx + stride * (out_w - 1) + 1 : stride,
            ]
            yield dy * layer.kernel + dx, window


_GROUP_VIEWS = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def _any_in_groups(bits: torch.Tensor, k: int) -> torch.Tensor:
    """``[..., m * k]`` uint8 0/1 -> bool ``[..., m]``: whether each group of ``k`` has a one.

    Groups of 1, 2, 4 or 8 bytes are reinterpreted as one integer (non-zero
    iff some byte is); other sizes take a maximum.
    """
    bits = bits.contiguous()
    if k in _GROUP_VIEWS:
        return bits.view(_GROUP_VIEWS[k]) != 0
    return bits.view(*bits.shape[:-1], -1, k).amax(-1) > 0


def _fe_nonzero_per_group(inputs: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """``[T, B, G]``: non-zero k-bit fan-in patterns per step, summed over output positions."""
    steps_, batch = inputs.shape[:2]
    groups = math.ceil(layer.fan_in / k)
    flat = inputs.reshape(steps_ * batch, *inputs.shape[2:])
    if layer.kind == "fc":
        padded = F.pad(flat.to(torch.uint8), (0, groups * k - layer.fan_in))
        nonzero = _any_in_groups(padded, k)
        return nonzero.view(steps_, batch, groups).to(torch.float64)
    channels = layer.in_channels
    taps = layer.kernel * layer.kernel
    channel = torch.arange(channels)
    out = torch.zeros(steps_ * batch, groups, dtype=torch.float64)
    chunk = max(1, 2**25 // (groups * layer.out_positions))
    for start in range(0, flat.shape[0], chunk):
        part = flat[start : start + chunk]
        counts = torch.zeros(part.shape[0], groups, *layer.out_shape[1:], dtype=torch.uint8)
        for tap, window in _windows(part, layer):
            counts.index_add_(1, (channel * taps + tap) // k, window)
        out[start : start + chunk] = (counts > 0).sum((2, 3), dtype=torch.int32).to(torch.float64)
    return out.view(steps_, batch, groups)


def _wue_nonzero_per_step_group(inputs: torch.Tensor, layer: LayerSpec, k: int) -> torch.Tensor:
    """``[T, B, L/k]``: non-zero k-point patterns of the taps, summed over the fan-in.

    For conv layers with ``L`` a multiple of ``k``: groups of ``k`` consecutive
    output positions of one step, per presynaptic tap ``(c, dy, dx)``.
    """
    steps_, batch = inputs.shape[:2]
    positions = layer.out_positions
    flat = inputs.reshape(steps_ * batch, *inputs.shape[2:])
    out = torch.zeros(steps_ * batch, positions // k, dtype=torch.int32)
    for _, window in _windows(flat, layer):
        grouped = window.reshape(window.shape[0], window.shape[1], positions)
        out += _any_in_groups(grouped, k).sum(1, dtype=torch.int32)
    return out.view(steps_, batch, positions // k).to(torch.float64)


class _TraceCounter:
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
            self.fe_nonzero = _fe_nonzero_per_group(bits, layer, config.forward_group_size)
            k = config.update_group_size
            self.wue_periodic = layer.kind == "conv" and layer.out_positions % k == 0
            if self.wue_periodic:
                self.wue_nonzero = _wue_nonzero_per_step_group(bits, layer, k)
        if not layer.encoding:
            self._prepare_backward()

    # -- Forward Engine ------------------------------------------------------------------------

    def forward(self, start: int, stop: int) -> tuple[dict[str, float], dict[str, float]]:
        layer, config = self.layer, self.config
        steps = self.steps * (stop - start)
        if not self.binary:
            return _dense_task("forward", layer, steps, config.backward_mac_units)
        fe, k = config.forward_engine, config.forward_group_size
        per_group = self.fe_nonzero[:, start:stop].sum((0, 1))
        groups = per_group.numel()
        points = steps * layer.out_positions
        zero = groups * points - int(round(float(per_group.sum())))
        skip = config.optimizations.skip_zero_patterns
        base = lut_counts("forward_engine", layer, k, points, zero, skip)
        counts = {name: float(value) for name, value in base.items()}
        counts["psum_spill_words"] = _psum_spill_words(layer, config, k, points)
        if skip:
            loads = _group_lane_loads(per_group, fe.lanes_per_pe)
        else:
            loads = _group_lane_loads(np.full(groups, float(points)), fe.lanes_per_pe)
        work = _lut_work(
            layer.out_channels,
            fe.pe_count,
            fe.lanes_per_pe,
            groups,
            loads.max(),
            loads.mean(),
            k,
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
        return _any_in_groups(padded, k).sum(0, dtype=torch.int64).to(torch.float64)

    def update(self, start: int, stop: int) -> tuple[dict[str, float], dict[str, float]]:
        layer, config = self.layer, self.config
        steps = self.steps * (stop - start)
        if not self.binary:
            return _dense_task("update", layer, steps, config.backward_mac_units)
        ue, k = config.update_engine, config.update_group_size
        block = update_block_groups(config)
        per_group = self._wue_groups(start, stop)
        point_groups = per_group.numel()
        points = steps * layer.out_positions
        zero = point_groups * layer.fan_in - int(round(float(per_group.sum())))
        skip = config.optimizations.skip_zero_patterns
        base = lut_counts("update_engine", layer, k, points, zero, skip, block)
        counts = {name: float(value) for name, value in base.items()}
        if skip:
            loads = _group_lane_loads(per_group, ue.lanes_per_pe)
        else:
            loads = _group_lane_loads(np.full(point_groups, float(layer.fan_in)), ue.lanes_per_pe)
        merge = _update_merge_words(layer, point_groups, block)
        work = _lut_work(
            layer.out_channels,
            ue.pe_count,
            ue.lanes_per_pe,
            point_groups,
            loads.max(),
            loads.mean(),
            k,
            merge,
        )
        return counts, work

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
        self.all_links = _all_links(layer).flatten()
        links = connections(per_position, layer) if opt.input_sparsity else None
        channels, lower_positions = _lower_shape(layer)
        if links is None:
            links = self.all_links.view(1, 1, -1).expand(steps_ * batch, 1, -1)
        self.links = links.reshape(steps_, batch, 1, lower_positions)
        mask = self.tensors.get("lower_mask")
        self.masked = opt.output_sparsity and mask is not None
        if self.masked:
            self.active = mask.reshape(steps_, batch, channels, lower_positions)
        else:
            self.active = None

    def backward(self, start: int, stop: int) -> tuple[dict[str, float], dict[str, float]]:
        layer, config = self.layer, self.config
        channels, lower_positions = _lower_shape(layer)
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
        done = float(per_element.sum())
        dense = float(steps * channels * self.all_links.sum())
        elements = steps * channels * lower_positions
        upper = steps * layer.out_channels * layer.out_positions
        nonzero_du = float(self.nonzero_du[:, start:stop].sum())
        opt = config.optimizations
        counts = dict.fromkeys(BACKWARD_COUNT_KEYS, 0.0)
        counts.update(
            macs_done=done,
            macs_dense=dense,
            macs_skipped_input=float(dense_active) - done if opt.input_sparsity else 0.0,
            macs_skipped_output=dense - float(dense_active),
            weight_reads=done,
            grad_reads=nonzero_du if opt.input_sparsity else float(upper),
            mask_reads=float(elements) if self.masked else 0.0,
            output_writes=active_count if self.masked else float(elements),
        )
        units = config.backward_mac_units
        loads = _unit_sums(per_element.reshape(-1).numpy(), units)
        return counts, _mac_work(loads.max(), float(loads.mean()), units)


# --------------------------------------------------------------------------
# Element-wise units (data-independent counts)
# --------------------------------------------------------------------------


def _add(counts: dict[str, float], **values: float) -> None:
    for name, value in values.items():
        counts[name] = counts.get(name, 0.0) + float(value)


def _elementwise_forward(layer: LayerSpec, spec: NetworkSpec, steps: int, share: float):
    """Bias / batch norm / residual add / LIF forward of one task (elementwise.py formulas).

    Batch norm's per-channel work (statistics, scale and shift) is shared
    evenly among the micro-batches (``share`` = samples / batch).
    """
    n = steps * layer.neurons
    c = layer.out_channels
    counts: dict[str, float] = {}
    passes = 1.0
    if layer.batch_norm:  # batchnorm_forward
        _add(counts, multiplies=2 * n + 4 * c * share, adds=3 * n, sqrts=c * share)
        _add(counts, divides=c * share, input_reads=2 * n, param_reads=2 * c * share)
        _add(counts, output_writes=n)
        passes = 2.0
    else:  # bias add
        _add(counts, adds=n, param_reads=c * share)
    if layer.residual is not None:
        _add(counts, adds=n, input_reads=n)
    if layer.fires:  # lif_forward_unit
        _add(counts, multiplies=n, adds=n, selects=n, compares=3 * n, input_reads=n)
        _add(counts, state_reads=2 * n, state_writes=2 * n, spike_writes=n, mask_writes=n)
        _add(counts, potential_writes=n if spec.lif.reset_grad else 0)
    return counts, {"element_passes": passes * n}


def _elementwise_backward(
    layer: LayerSpec, spec: NetworkSpec, steps: int, samples: int, share: float
):
    """LIF backward / batch-norm backward / bias gradient of one task."""
    n = steps * layer.neurons
    c = layer.out_channels
    counts: dict[str, float] = {}
    passes = 1.0
    if layer.fires:
        lif = lif_backward_counts(
            spec.time_steps, samples * layer.neurons, spec.lif.height, spec.lif.reset_grad
        )
        _add(counts, **lif)
    if layer.batch_norm:  # batchnorm_backward
        _add(counts, multiplies=5 * n + 2 * c * share, adds=5 * n - 2 * c * share)
        _add(counts, divides=c * share, input_reads=4 * n, param_reads=3 * c * share)
        _add(counts, output_writes=n + 2 * c * share)
        passes = 2.0
    else:  # bias gradient
        _add(counts, adds=n)
    return counts, {"element_passes": passes * n}


def _pool_counts(layer: LayerSpec, steps: int, backward: bool):
    """Pooling forward or backward (``pool_forward`` / ``pool_backward`` formulas).

    Backward adds for overlapping windows are counted from the geometry for
    average pooling; for max pooling each input gets at most one gradient
    when windows do not overlap, and overlap is ignored [ours].
    """
    outputs = steps * layer.neurons
    window = layer.kernel * layer.kernel
    inputs = steps * math.prod(layer.in_shape)
    avg = layer.kind == "avgpool"
    counts: dict[str, float] = {}
    if not backward:
        _add(counts, adds=(window - 1) * outputs if avg else 0, multiplies=outputs if avg else 0)
        _add(counts, compares=0 if avg else (window - 1) * outputs)
        _add(counts, input_reads=window * outputs, output_writes=outputs)
        return counts, {"element_passes": float(window * outputs)}
    overlap = max(0.0, window * outputs - inputs) if avg else 0.0
    _add(counts, multiplies=outputs if avg else 0, adds=overlap)
    _add(counts, input_reads=outputs * (1 if avg else 2), output_writes=inputs)
    return counts, {"element_passes": float(inputs)}


def _loss_counts(classes: int, samples: int, time_steps: int):
    """Cross-entropy on the time-mean read-out (``loss_unit`` formulas)."""
    n = samples * classes
    counts = {
        "adds": float((time_steps - 1) * n + n + samples * (classes - 1) + samples + samples - 1),
        "multiplies": float(2 * n + 1),
        "exps": float(n),
        "logs": float(samples),
        "divides": float(n),
        "compares": float(samples * (classes - 1)),
        "input_reads": float(time_steps * n),
        "output_writes": float(n + 1),
    }
    return counts, {"element_passes": float(time_steps * n)}


def parameter_count(spec: NetworkSpec) -> int:
    """Trainable parameters: weights, biases (layers without BN), BN scale and shift."""
    total = 0
    for layer in spec.weighted_layers:
        total += layer.num_weights
        total += 2 * layer.out_channels if layer.batch_norm else layer.out_channels
    return total


def _optimizer_counts(spec: NetworkSpec, optimizer: str):
    """The update step per parameter [ours]: SGD ``w -= lr*g``; Adam as torch.optim.Adam.

    Adam per parameter: 6 multiplies, 4 adds, 1 sqrt, 1 divide; reads w, g, m,
    v and writes w, m, v.
    """
    params = float(parameter_count(spec))
    if optimizer == "sgd":
        counts = {
            "multiplies": params,
            "adds": params,
            "param_reads": params,
            "input_reads": params,
            "output_writes": params,
        }
    else:
        counts = {
            "multiplies": 6 * params,
            "adds": 4 * params,
            "sqrts": params,
            "divides": params,
            "param_reads": params,
            "input_reads": 3 * params,
            "output_writes": 3 * params,
        }
    return counts, {"element_passes": params}


# --------------------------------------------------------------------------
# Densities
# --------------------------------------------------------------------------


def _producer(spec: NetworkSpec, index: int) -> tuple[int, list[LayerSpec]]:
    """The weighted layer whose output feeds layer ``index`` and the pooling layers between."""
    pools: list[LayerSpec] = []
    source = spec.layers[index].source
    while source >= 0 and not spec.layers[source].weighted:
        if spec.layers[source].kind in ("avgpool", "maxpool"):
            pools.append(spec.layers[source])
        source = spec.layers[source].source
    return source, pools


def default_densities(spec: NetworkSpec) -> dict[str, dict[str, float | None]]:
    """Per weighted layer: ``input``, ``mask``, ``du_psum`` and ``lower_mask`` densities [ours].

    ``input``: :data:`DEFAULT_SPIKE_DENSITY` for binary inputs, 1 for analog;
    ``mask``: :data:`DEFAULT_MASK_DENSITY` for firing layers; ``du_psum``: 1
    after batch norm (its backward makes the gradient dense), else the mask
    density (``du`` is zero where the mask and the carry are); ``lower_mask``:
    the producer's mask, OR-ed over max-pooling windows (``1 - (1-m)**(k*k)``).
    """
    out: dict[str, dict[str, float | None]] = {}
    for layer in spec.weighted_layers:
        mask = DEFAULT_MASK_DENSITY if layer.fires else None
        du = 1.0 if layer.batch_norm or mask is None else mask
        out[layer.name] = {
            "input": DEFAULT_SPIKE_DENSITY if layer.binary_input else 1.0,
            "mask": mask,
            "du_psum": du,
        }
    for index, layer in enumerate(spec.layers):
        if layer.weighted:
            out[layer.name]["lower_mask"] = _routed_mask(spec, index, out)
    return out


def _routed_mask(spec: NetworkSpec, index: int, densities) -> float | None:
    layer = spec.layers[index]
    if layer.encoding:
        return None
    source, pools = _producer(spec, index)
    if source < 0:
        return None
    mask = densities[spec.layers[source].name].get("mask")
    if mask is None:
        return None
    for pool in pools:
        mask = 1.0 - (1.0 - mask) ** (pool.kernel * pool.kernel)
    return mask


def resolve_densities(
    spec: NetworkSpec, densities: Mapping[str, Mapping[str, float | None]] | None
) -> dict[str, dict[str, float | None]]:
    """Defaults overridden by ``densities`` (per layer name; ``"*"`` applies to every layer).

    ``lower_mask`` is re-derived from the producers' masks unless given.
    """
    resolved = default_densities(spec)
    given = dict(densities or {})
    names = {layer.name for layer in spec.weighted_layers}
    unknown = set(given) - names - {"*"}
    if unknown:
        raise ActivityError(
            f"densities name unknown layers {', '.join(sorted(unknown))}; "
            f"weighted layers: {', '.join(sorted(names))}"
        )
    for name in names:
        for key, value in {**given.get("*", {}), **given.get(name, {})}.items():
            if key not in ("input", "mask", "du_psum", "lower_mask", "spikes", "du"):
                raise ActivityError(f"densities[{name!r}]: unknown field {key!r}")
            if value is not None and not 0.0 <= float(value) <= 1.0:
                raise ActivityError(f"densities[{name!r}].{key}={value} must be in [0, 1]")
            resolved[name][key] = None if value is None else float(value)
    explicit_lower = {
        n for n in names if "lower_mask" in {**given.get("*", {}), **given.get(n, {})}
    }
    for index, layer in enumerate(spec.layers):
        if layer.weighted and layer.name not in explicit_lower:
            resolved[layer.name]["lower_mask"] = _routed_mask(spec, index, resolved)
    return resolved


def densities_from_trace(trace) -> dict[str, dict[str, float | None]]:
    """The measured densities of a trace, in the form :func:`activity_from_densities` takes."""
    from h2learn.workload.stats import trace_stats

    out: dict[str, dict[str, float | None]] = {}
    for entry in trace_stats(trace)["layers"]:
        out[entry["layer"]] = {
            "input": entry.get("input"),
            "mask": entry.get("mask"),
            "du_psum": entry.get("du_psum"),
            "lower_mask": entry.get("lower_mask"),
        }
    return out


# --------------------------------------------------------------------------
# Assembly
# --------------------------------------------------------------------------


def _needs_gradient(spec: NetworkSpec, index: int) -> bool:
    """Whether a weighted layer lies upstream of layer ``index`` (its gradient is needed)."""
    source = spec.layers[index].source
    while source >= 0:
        if spec.layers[source].weighted:
            return True
        source = spec.layers[source].source
    return False


def _engine_for(layer: LayerSpec, phase: str) -> str:
    if phase == "forward":
        return "forward_engine" if layer.binary_input else "backward_engine"
    if phase == "update":
        return "update_engine" if layer.binary_input else "backward_engine"
    if phase == "backward":
        return "backward_engine"
    return "elementwise"


def _kind(layer: LayerSpec, phase: str) -> str:
    if phase in ("forward", "update"):
        return "lut" if layer.binary_input else "mac"
    if phase == "backward":
        return "mac"
    return "elementwise"


class ActivityBuilder:
    """Collects tasks in a fixed order: per layer and micro-batch, forward then backward phases."""

    def __init__(
        self,
        spec: NetworkSpec,
        config: HardwareConfig,
        batch: int,
        steps: int,
        mac_array: str | None = None,
    ):
        self.spec, self.config = spec, config
        self.batch, self.steps = batch, steps
        self.mac_array = mac_array  # a dense design: every weighted phase on one MAC array
        self.ranges = micro_batches(batch, config.schedule.micro_batch)
        self.tasks: list[TaskActivity] = []

    def add(
        self,
        index: int,
        name: str,
        phase: str,
        engine: str,
        kind: str,
        mb: int,
        samples: int,
        counts_work,
    ) -> None:
        counts, work = counts_work
        self.tasks.append(TaskActivity(name, index, phase, engine, mb, samples, kind, counts, work))

    def weighted(self, index: int, layer: LayerSpec, provider) -> None:
        for mb, (start, stop) in enumerate(self.ranges):
            samples = stop - start
            steps = self.steps * samples
            share = samples / self.batch
            for phase in ("forward", "update") + (("backward",) if not layer.encoding else ()):
                counts, work = getattr(provider, phase)(index, layer, start, stop)
                engine, kind = _engine_for(layer, phase), _kind(layer, phase)
                if self.mac_array:
                    engine, kind = self.mac_array, "mac"
                if kind == "lut":
                    self._table_policy(layer, phase, mb, counts, work)
                self.add(index, layer.name, phase, engine, kind, mb, samples, (counts, work))
            self.add(
                index,
                layer.name,
                "forward_elementwise",
                "elementwise",
                "elementwise",
                mb,
                samples,
                _elementwise_forward(layer, self.spec, steps, share),
            )
            self.add(
                index,
                layer.name,
                "backward_elementwise",
                "elementwise",
                "elementwise",
                mb,
                samples,
                _elementwise_backward(layer, self.spec, steps, samples, share),
            )

    def _tables_persist(self, layer: LayerSpec) -> bool:
        """Whether the Forward Engine keeps a layer's weight tables across its micro-batches.

        True in layer-by-layer order when every lane's tables of all passes fit
        in its LUT bank: the tables are then built once per weight version
        (the engines' convention); otherwise every task rebuilds them.
        """
        if not layer_major(self.spec, self.config):
            return False
        fe, k = self.config.forward_engine, self.config.forward_group_size
        groups = math.ceil(layer.fan_in / k)
        passes = math.ceil(layer.out_channels / fe.pe_count)
        per_lane = passes * math.ceil(groups / fe.lanes_per_pe) * 2**k
        return per_lane <= fe.lut_entries_per_lane

    def _table_policy(self, layer, phase: str, mb: int, counts, work) -> None:
        """Table replication (broadcast writes) and Forward Engine table persistence."""
        counts["table_entries_written"] *= work["replicas"]
        if phase == "forward" and mb > 0 and self._tables_persist(layer):
            for name in ("table_build_adds", "table_entries_written", "weight_reads"):
                counts[name] = 0.0
            work["tables_per_lane"] = 0.0

    def pool(self, index: int, layer: LayerSpec) -> None:
        phases = [("forward_elementwise", False)]
        if _needs_gradient(self.spec, index):
            phases.append(("backward_elementwise", True))
        for mb, (start, stop) in enumerate(self.ranges):
            steps = self.steps * (stop - start)
            for phase, backward in phases:
                self.add(
                    index,
                    layer.name,
                    phase,
                    "elementwise",
                    "elementwise",
                    mb,
                    stop - start,
                    _pool_counts(layer, steps, backward),
                )

    def finish(self) -> list[TaskActivity]:
        for mb, (start, stop) in enumerate(self.ranges):
            self.add(
                -1,
                "loss",
                "loss",
                "elementwise",
                "elementwise",
                mb,
                stop - start,
                _loss_counts(self.spec.num_classes, stop - start, self.steps),
            )
        self.add(
            -1,
            "optimizer",
            "optimizer",
            "elementwise",
            "elementwise",
            0,
            self.batch,
            _optimizer_counts(self.spec, self.config.schedule.optimizer),
        )
        order = {phase: i for i, phase in enumerate(PHASES)}
        self.tasks.sort(key=lambda t: (order[t.phase], t.layer_index, t.micro_batch))
        return self.tasks

    def build(self, provider) -> list[TaskActivity]:
        for index, layer in enumerate(self.spec.layers):
            if layer.weighted:
                self.weighted(index, layer, provider)
            elif layer.kind in ("avgpool", "maxpool"):
                self.pool(index, layer)
        return self.finish()


class _StatisticalProvider:
    """Expected counts from densities; identical micro-batches are computed once."""

    def __init__(self, config: HardwareConfig, steps: int, densities):
        self.config, self.steps, self.densities = config, steps, densities
        self.cache: dict[tuple, tuple[dict, dict]] = {}

    def _cached(self, key, compute):
        if key not in self.cache:
            self.cache[key] = compute()
        counts, work = self.cache[key]
        return dict(counts), dict(work)

    def forward(self, index, layer, start, stop):
        return self._lut_task("forward", expected_forward, index, layer, start, stop)

    def update(self, index, layer, start, stop):
        return self._lut_task("update", expected_update, index, layer, start, stop)

    def _lut_task(self, phase: str, expected, index, layer, start, stop):
        """A Forward or Weight Update Engine task (dense MACs when the input is analog)."""
        steps = self.steps * (stop - start)
        if not layer.binary_input:
            return _dense_task(phase, layer, steps, self.config.backward_mac_units)
        d = self._density(layer, "input")
        return self._cached((phase, index, steps), lambda: expected(layer, self.config, steps, d))

    def backward(self, index, layer, start, stop):
        steps = self.steps * (stop - start)
        du = self._density(layer, "du_psum")
        mask = self.densities[layer.name].get("lower_mask")
        return self._cached(
            ("backward", index, steps),
            lambda: expected_backward(layer, self.config, steps, du, mask),
        )

    def _density(self, layer: LayerSpec, key: str) -> float:
        value = self.densities[layer.name].get(key)
        if value is None:
            raise ActivityError(f"densities[{layer.name!r}] needs {key!r} (a number in [0, 1])")
        return float(value)


class _TraceProvider:
    """Exact counts from a trace's tensors, one :class:`_TraceCounter` per layer."""

    def __init__(self, trace, config: HardwareConfig):
        self.trace, self.config = trace, config
        self.counters: dict[str, _TraceCounter] = {}

    def _counter(self, layer: LayerSpec) -> _TraceCounter:
        if layer.name not in self.counters:
            self.counters.clear()  # one layer's boolean maps at a time (bounds memory)
            self.counters[layer.name] = _TraceCounter(
                layer, self.trace[layer.name].tensors, self.config
            )
        return self.counters[layer.name]

    def forward(self, index, layer, start, stop):
        return self._counter(layer).forward(start, stop)

    def update(self, index, layer, start, stop):
        return self._counter(layer).update(start, stop)

    def backward(self, index, layer, start, stop):
        return self._counter(layer).backward(start, stop)


def activity_from_densities(
    spec: NetworkSpec,
    densities: Mapping[str, Mapping[str, float | None]] | None,
    config: HardwareConfig,
) -> Activity:
    """Expected events of one iteration of ``spec`` (its ``batch_size`` and ``time_steps``).

    ``densities``: per weighted layer, any of ``input``, ``mask``, ``du_psum``,
    ``lower_mask`` (see :func:`default_densities` for the defaults; ``"*"``
    sets a field for every layer).
    """
    resolved = resolve_densities(spec, densities)
    builder = ActivityBuilder(spec, config, spec.batch_size, spec.time_steps)
    provider = _StatisticalProvider(config, spec.time_steps, resolved)
    tasks = builder.build(provider)
    return Activity(
        spec,
        spec.batch_size,
        spec.time_steps,
        config.schedule.micro_batch,
        "statistical",
        tasks,
        resolved,
    )


def activity_from_trace(trace, config: HardwareConfig) -> Activity:
    """Exact events of the recorded iteration, without evaluating the LUT arithmetic.

    The network's batch and time steps are the trace's; every count is an
    exact integer (stored as float).
    """
    spec = trace.spec
    if trace.batch_size != spec.batch_size or trace.time_steps != spec.time_steps:
        import dataclasses

        spec = dataclasses.replace(spec, batch_size=trace.batch_size, time_steps=trace.time_steps)
    builder = ActivityBuilder(spec, config, trace.batch_size, trace.time_steps)
    tasks = builder.build(_TraceProvider(trace, config))
    return Activity(
        spec, trace.batch_size, trace.time_steps, config.schedule.micro_batch, "trace", tasks
    )


# --------------------------------------------------------------------------
# Counts -> (component, action)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionContext:
    """What the count-to-action mapping needs from a config, read once (plain attributes)."""

    word_bits: int
    widths: dict[str, int]
    forward_k: int
    update_k: int

    @classmethod
    def of(cls, config: HardwareConfig) -> ActionContext:
        widths = {}
        for name in ("weight", "activation", "gradient", "membrane"):
            widths[f"{name}_buffer"] = getattr(config.buffers, name).width_bits
        return cls(config.word_bits, widths, config.forward_group_size, config.update_group_size)


def _words(ctx: ActionContext, buffer: str, bits: float) -> float:
    """Bits moved to or from a buffer as accesses of its port width."""
    return bits / ctx.widths[buffer]


def _acc(actions: dict[tuple[str, str], float], component: str, action: str, count: float):
    if count:
        actions[(component, action)] = actions.get((component, action), 0.0) + float(count)


def _lut_actions(task: TaskActivity, ctx: ActionContext, engine: str, k: int):
    """LUT engine: build adds + accumulations on the adders, table writes and reads on the LUT."""
    c, word = task.counts, ctx.word_bits
    actions: dict[tuple[str, str], float] = {}
    adds = c["table_build_adds"] + c["accumulations"] + c.get("partial_sum_adds", 0.0)
    _acc(actions, f"{engine}.adder", "add", adds)
    _acc(actions, f"{engine}.lut", "write", c["table_entries_written"])
    _acc(actions, f"{engine}.lut", "read", c["table_reads"])
    _acc(
        actions, "activation_buffer", "read", _words(ctx, "activation_buffer", c["spike_reads"] * k)
    )
    if engine == "forward_engine":
        _acc(
            actions, "weight_buffer", "read", _words(ctx, "weight_buffer", c["weight_reads"] * word)
        )
        spill = c.get("psum_spill_words", 0.0) * word
        _acc(actions, "membrane_buffer", "read", _words(ctx, "membrane_buffer", spill))
        writes = c["output_writes"] * word + spill
        _acc(actions, "membrane_buffer", "write", _words(ctx, "membrane_buffer", writes))
    else:
        reads = (c["grad_reads"] + c["partial_sum_adds"]) * word
        writes = max(c["partial_sum_adds"], c["output_writes"]) * word
        _acc(actions, "gradient_buffer", "read", _words(ctx, "gradient_buffer", reads))
        _acc(actions, "gradient_buffer", "write", _words(ctx, "gradient_buffer", writes))
    return actions


def _mac_actions(task: TaskActivity, ctx: ActionContext, weights: int, unit: str):
    """MAC array: multiply + add + register-file operand read per MAC, plus buffer traffic.

    Backward: weights are broadcast from the weight buffer once per task into
    the PEs' register files [ours]; ``du`` non-zeros are read from the
    gradient buffer, mask bits from the membrane buffer, ``do`` written to the
    gradient buffer.  Dense forward/update: analog inputs are read as words
    from the activation buffer.
    """
    c, word = task.counts, ctx.word_bits
    actions: dict[tuple[str, str], float] = {}
    if task.phase == "backward":
        macs = c["macs_done"]
        _acc(actions, "weight_buffer", "read", _words(ctx, "weight_buffer", weights * word))
        _acc(
            actions,
            "gradient_buffer",
            "read",
            _words(ctx, "gradient_buffer", c["grad_reads"] * word),
        )
        _acc(actions, "membrane_buffer", "read", _words(ctx, "membrane_buffer", c["mask_reads"]))
        _acc(
            actions,
            "gradient_buffer",
            "write",
            _words(ctx, "gradient_buffer", c["output_writes"] * word),
        )
    else:
        macs = c["multiplies"]
        input_bits = 1 if task.work.get("binary_input") else word
        _acc(
            actions,
            "activation_buffer",
            "read",
            _words(ctx, "activation_buffer", c["input_reads"] * input_bits),
        )
        if task.phase == "forward":
            _acc(
                actions,
                "weight_buffer",
                "read",
                _words(ctx, "weight_buffer", c["weight_reads"] * word),
            )
            _acc(
                actions,
                "membrane_buffer",
                "write",
                _words(ctx, "membrane_buffer", c["output_writes"] * word),
            )
        else:
            _acc(
                actions,
                "gradient_buffer",
                "read",
                _words(ctx, "gradient_buffer", c["grad_reads"] * word),
            )
            _acc(
                actions,
                "gradient_buffer",
                "write",
                _words(ctx, "gradient_buffer", c["output_writes"] * word),
            )
    _acc(actions, f"{unit}.multiplier", "multiply", macs)
    _acc(actions, f"{unit}.adder", "add", macs)
    _acc(actions, f"{unit}.register_file", "read", macs)
    return actions


_EW_BUFFERS: dict[str, dict[str, tuple[str, str, bool]]] = {
    # phase -> count name -> (buffer, read/write, is a datapath word (else one bit))
    "forward_elementwise": {
        "input_reads": ("membrane_buffer", "read", True),
        "param_reads": ("weight_buffer", "read", True),
        "output_writes": ("membrane_buffer", "write", True),
        "potential_writes": ("membrane_buffer", "write", True),
        "spike_writes": ("activation_buffer", "write", False),
        "mask_writes": ("membrane_buffer", "write", False),
    },
    "backward_elementwise": {
        "input_reads": ("gradient_buffer", "read", True),
        "grad_reads": ("gradient_buffer", "read", True),
        "potential_reads": ("membrane_buffer", "read", True),
        "param_reads": ("weight_buffer", "read", True),
        "output_writes": ("gradient_buffer", "write", True),
    },
    "loss": {
        "input_reads": ("membrane_buffer", "read", True),
        "output_writes": ("gradient_buffer", "write", True),
    },
    "optimizer": {
        "param_reads": ("weight_buffer", "read", True),
        "input_reads": ("gradient_buffer", "read", True),
        "output_writes": ("weight_buffer", "write", True),
    },
}


def _pool_buffers(layer: LayerSpec, phase: str) -> dict[str, tuple[str, str, bool]]:
    """Pooling reads and writes activations (bits for max-pooled spikes) or gradients (words)."""
    if phase == "forward_elementwise":
        words = not layer.binary_output
        return {
            "input_reads": ("activation_buffer", "read", words),
            "output_writes": ("activation_buffer", "write", words),
        }
    return {
        "input_reads": ("gradient_buffer", "read", True),
        "output_writes": ("gradient_buffer", "write", True),
    }


def _elementwise_actions(task: TaskActivity, ctx: ActionContext, layer: LayerSpec | None):
    """Element-wise units: arithmetic on the lanes, operands from the buffers.

    LIF state (``u[t-1]`` as a word, ``o[t-1]`` as a bit) lives in the
    membrane and activation buffers; the backward state reads fetch a spike
    bit and a mask bit.  Selects are priced as compares (a multiplexer is no
    dearer than a compare).
    """
    c, word = task.counts, ctx.word_bits
    actions: dict[tuple[str, str], float] = {}
    _acc(actions, "elementwise.multiplier", "multiply", c.get("multiplies", 0.0))
    _acc(actions, "elementwise.adder", "add", c.get("adds", 0.0))
    _acc(
        actions, "elementwise.comparator", "compare", c.get("compares", 0.0) + c.get("selects", 0.0)
    )
    special = sum(c.get(name, 0.0) for name in ("divides", "sqrts", "exps", "logs"))
    _acc(actions, "elementwise.special", "op", special)
    table = dict(_EW_BUFFERS.get(task.phase, {}))
    if layer is not None and layer.kind in ("avgpool", "maxpool"):
        table = _pool_buffers(layer, task.phase)
    for name, (buffer, action, is_word) in table.items():
        bits = c.get(name, 0.0) * (word if is_word else 1)
        _acc(actions, buffer, action, _words(ctx, buffer, bits))
    state_reads, state_writes = c.get("state_reads", 0.0), c.get("state_writes", 0.0)
    if task.phase == "forward_elementwise":
        for count, action in ((state_reads, "read"), (state_writes, "write")):
            _acc(
                actions, "membrane_buffer", action, _words(ctx, "membrane_buffer", count / 2 * word)
            )
            _acc(actions, "activation_buffer", action, _words(ctx, "activation_buffer", count / 2))
    elif task.phase == "backward_elementwise":
        _acc(actions, "activation_buffer", "read", _words(ctx, "activation_buffer", state_reads))
        _acc(actions, "membrane_buffer", "read", _words(ctx, "membrane_buffer", state_reads))
    return actions


def task_actions(
    task: TaskActivity,
    config: HardwareConfig | ActionContext,
    spec: NetworkSpec,
    mac_unit: str = "backward_engine",
) -> dict:
    """``(component, action) -> count`` of one task (the mapping is documented per engine).

    LUT engines: one LUT read per lookup, one LUT write per table entry, one
    adder op per table-build add, accumulation and partial-sum merge; k-bit
    spike patterns read from the activation buffer.  MAC work (Backward
    Engine, dense fallbacks): multiply + add + register-file read per MAC.
    Element-wise: see :func:`_elementwise_actions`.
    """
    ctx = config if isinstance(config, ActionContext) else ActionContext.of(config)
    if task.kind == "lut":
        if task.engine == "forward_engine":
            return _lut_actions(task, ctx, "forward_engine", ctx.forward_k)
        return _lut_actions(task, ctx, "update_engine", ctx.update_k)
    if task.kind == "mac":
        weights = spec.layers[task.layer_index].num_weights if task.layer_index >= 0 else 0
        return _mac_actions(task, ctx, weights, mac_unit)
    layer = spec.layers[task.layer_index] if task.layer_index >= 0 else None
    return _elementwise_actions(task, ctx, layer)
