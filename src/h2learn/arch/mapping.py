"""The mapping: how H2Learn's engines divide a layer's work among PEs, lanes and MAC units.

Timeloop keeps the mapping apart from the architecture and the workload; so
does this module.  :mod:`h2learn.arch.config` documents each engine's mapping
in its section's docstring (``ForwardEngineConfig``, ``UpdateEngineConfig``,
``BackwardEngineConfig``, ``ScheduleConfig``); the functions here implement
them, all [ours] (docs/cost-model.md):

* micro-batches and the task order (:func:`micro_batches`, :func:`layer_major`);
* lanes own groups round-robin, with table replication when a task has fewer
  groups than lanes (:func:`lane_sums`, :func:`replicas`, :func:`group_lane_loads`);
* the Backward Engine's skewed round-robin of lower-layer elements to MAC
  units (:func:`mac_unit_of`, :func:`unit_sums`);
* LUT-bank capacity: partial-sum blocks of the Weight Update Engine
  (:func:`update_block_groups`, :func:`update_merge_words`), partial-sum
  spills of the Forward Engine (:func:`psum_spill_words`) and whether its
  tables persist across micro-batches (:func:`tables_persist`).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from h2learn.arch.config import HardwareConfig
from h2learn.spec import AnyNetwork, LayerSpec


def micro_batches(batch: int, size: int) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges of the micro-batches of a mini-batch."""
    return [(start, min(batch, start + size)) for start in range(0, batch, size)]


def layer_major(spec: AnyNetwork, config: HardwareConfig) -> bool:
    """Whether tasks run layer by layer over the mini-batch (batch-norm batch statistics)."""
    uses_bn = any(layer.batch_norm for layer in spec.weighted_layers)
    return bool(config.schedule.bn_batch_statistics and uses_bn)


def lane_sums(values: torch.Tensor | np.ndarray, lanes: int) -> np.ndarray:
    """Sum ``values[i]`` into lane ``i mod lanes`` (the round-robin mapping)."""
    array = np.asarray(values, dtype=np.float64).ravel()
    return np.bincount(np.arange(array.size) % lanes, weights=array, minlength=lanes)


def replicas(groups: int, lanes: int) -> int:
    """Copies of each table when a task has fewer groups than the engine has lanes."""
    return max(1, lanes // max(1, groups))


def group_lane_loads(per_group: torch.Tensor | np.ndarray, lanes: int) -> np.ndarray:
    """Lane loads when lanes own groups round-robin.

    With fewer groups than lanes each group's table is replicated in
    ``lanes // groups`` lanes that split its work evenly.
    """
    values = np.asarray(per_group, dtype=np.float64).ravel()
    copies = replicas(values.size, lanes)
    if copies > 1:
        values = np.repeat(values[None, :], copies, axis=0).ravel() / copies
    return lane_sums(values, lanes)


def mac_unit_of(elements: int, units: int) -> np.ndarray:
    """The MAC unit of each lower-layer element (flat ``(c, y, x)`` index) [ours].

    Skewed round-robin: element ``e`` goes to ``(e + e // units) mod units``.
    Plain round-robin would give a unit the same position in every channel
    whenever ``units`` is a multiple of ``H*W``; in strided layers positions
    differ in how many taps reach them, and that unit would be overloaded.
    """
    index = np.arange(elements)
    return (index + index // units) % units


def unit_sums(values: np.ndarray, units: int) -> np.ndarray:
    """Sum per-element values into their MAC units (:func:`mac_unit_of`)."""
    values = np.asarray(values, dtype=np.float64).ravel()
    return np.bincount(mac_unit_of(values.size, units), weights=values, minlength=units)


def update_block_groups(config: HardwareConfig) -> int:
    """Point groups per partial-sum block: the configured block, capped by the lanes' LUT banks."""
    ue = config.update_engine
    k = config.update_group_size
    per_lane = max(1, ue.lut_entries_per_lane // 2**k)
    return min(ue.partial_sum_groups, per_lane * ue.lanes_per_pe)


def update_merge_words(layer: LayerSpec, point_groups: int, block: int) -> float:
    """Partial dW merges per output channel: one per presynaptic input and block."""
    return float(layer.fan_in * math.ceil(point_groups / block))


def psum_spill_words(layer: LayerSpec, config: HardwareConfig, k: int, points: int) -> float:
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


def tables_persist(spec: AnyNetwork, config: HardwareConfig, layer: LayerSpec) -> bool:
    """Whether the Forward Engine keeps a layer's weight tables across its micro-batches.

    True in layer-by-layer order when every lane's tables of all passes fit
    in its LUT bank: the tables are then built once per weight version
    (the engines' convention); otherwise every task rebuilds them.
    """
    if not layer_major(spec, config):
        return False
    fe, k = config.forward_engine, config.forward_group_size
    groups = math.ceil(layer.fan_in / k)
    passes = math.ceil(layer.out_channels / fe.pe_count)
    per_lane = passes * math.ceil(groups / fe.lanes_per_pe) * 2**k
    return per_lane <= fe.lut_entries_per_lane
