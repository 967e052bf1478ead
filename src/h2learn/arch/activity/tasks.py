"""The task records every stage of the simulator reads: one engine task and one iteration.

A *task* is one engine working on one layer (or the loss, or the optimizer)
for one micro-batch.  It carries its event counts (``counts``, the engines'
count names, floats in statistical mode) and the mapping statistics that set
its cycles (``work``), a typed record per kind of task:

* :class:`LutWork` -- Forward and Weight Update Engine tasks (lookups per lane);
* :class:`MacWork` -- MAC-array tasks (Backward Engine, dense fallbacks, the
  dense baseline);
* :class:`ElementwiseWork` -- element-wise, pooling, loss and optimizer tasks.

Work records are frozen dataclasses, so they can be shared between identical
micro-batches and used in cache keys.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from h2learn.arch.config import HardwareConfig
from h2learn.arch.mapping import replicas, update_block_groups, update_merge_words
from h2learn.arch.names import TaskKey, TaskKind
from h2learn.spec import LayerSpec, Workload
from h2learn.workload.densities import DensityError

ActivityError = DensityError
"""Densities or a trace do not fit the model (the message names the layer and field)."""


@dataclass(frozen=True)
class LutWork:
    """Mapping statistics of a LUT-engine task (per pass of ``pe_count`` output channels).

    ``lane_work_max``/``lane_work_mean``: lookups of the busiest / an average
    lane; ``tables_per_lane`` tables of ``table_entries`` entries are built in
    each pass; ``merge_words``: partial ``dW`` words merged per output channel
    (Weight Update Engine).  ``engine_table_entries_written``: the engine
    formula's table writes before replication and persistence (the task's
    ``counts`` hold the writes after them).
    """

    passes: float
    lanes: float
    groups: float
    replicas: float
    lane_work_max: float
    lane_work_mean: float
    tables_per_lane: float
    table_entries: float
    merge_words: float = 0.0
    engine_table_entries_written: float | None = None

    @classmethod
    def of(
        cls,
        out_channels: int,
        pes: int,
        lanes: int,
        groups: int,
        lane_loads_max: float,
        lane_loads_mean: float,
        k: int,
        merge_words: float = 0.0,
    ) -> LutWork:
        """The statistics of ``groups`` tables over ``lanes`` lanes and ``pes`` PEs."""
        return cls(
            passes=float(math.ceil(out_channels / pes)),
            lanes=float(lanes),
            groups=float(groups),
            replicas=float(replicas(groups, lanes)),
            lane_work_max=float(lane_loads_max),
            lane_work_mean=float(lane_loads_mean),
            tables_per_lane=float(math.ceil(groups / lanes)),
            table_entries=float(2**k),
            merge_words=float(merge_words),
        )


def update_lut_work(
    layer: LayerSpec,
    config: HardwareConfig,
    point_groups: int,
    lane_loads_max: float,
    lane_loads_mean: float,
) -> LutWork:
    """A Weight Update Engine task's statistics: ``point_groups`` tables over the engine's
    lanes, and the partial-dW merges of its point-group blocks (both modes use this)."""
    ue = config.update_engine
    merge = update_merge_words(layer, point_groups, update_block_groups(config))
    return LutWork.of(
        layer.out_channels,
        ue.pe_count,
        ue.lanes_per_pe,
        point_groups,
        lane_loads_max,
        lane_loads_mean,
        config.update_group_size,
        merge,
    )


@dataclass(frozen=True)
class MacWork:
    """Loads of a MAC-array task: ``units`` MAC units, the busiest one's and the mean MACs.

    ``binary_input``: the operands are spikes stored as bits (the dense
    baseline's forward and update read them as bits, not words).
    """

    units: float
    unit_work_max: float
    unit_work_mean: float
    binary_input: bool = False


@dataclass(frozen=True)
class ElementwiseWork:
    """Element passes of an element-wise task (one per lane and cycle)."""

    element_passes: float


Work = LutWork | MacWork | ElementwiseWork


@dataclass
class TaskActivity:
    """The events of one engine task: one layer, phase and micro-batch.

    ``counts`` uses the engines' count names (``FORWARD_COUNT_KEYS`` ...) plus
    ``psum_spill_words`` (Forward Engine partial sums that leave the PEs when a
    channel's tables do not fit its LUT banks); floats in statistical mode.
    ``work`` holds the mapping statistics :mod:`h2learn.arch.cycles` turns into
    cycles.
    """

    layer: str
    layer_index: int
    phase: str
    engine: str
    micro_batch: int
    samples: int
    kind: TaskKind
    counts: dict[str, float] = field(default_factory=dict)
    work: Work = field(default_factory=lambda: ElementwiseWork(0.0))

    @property
    def key(self) -> TaskKey:
        return TaskKey(self.layer_index, self.phase, self.micro_batch)

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer": self.layer,
            "phase": str(self.phase),
            "engine": str(self.engine),
            "micro_batch": self.micro_batch,
            "samples": self.samples,
            "kind": str(self.kind),
            "counts": dict(self.counts),
            "work": asdict(self.work),
        }


@dataclass
class Activity:
    """All tasks of one training iteration and how they were obtained."""

    spec: Workload
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
                {"layer": layer, "phase": str(phase), "counts": counts}
                for (layer, phase), counts in self.by_layer_phase().items()
            ],
        }
