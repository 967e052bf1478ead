"""Cycles of one engine task: compute (with load imbalance), table builds, buffer and DRAM stalls.

Hardware behaviour [ours; the mappings are in :mod:`h2learn.arch.mapping`]:

* **LUT engines** (Forward and Weight Update Engine): a task runs in
  ``passes = ceil(O / pe_count)`` passes over the output channels.  In a pass
  every lane first builds its tables (one entry written per cycle: ``2**k``
  cycles per table, the ``2**k - k - 1`` adds ride along), then performs its
  lookups (one per cycle); lanes are decoupled by FIFOs, so a pass lasts as
  long as its busiest lane.  The Weight Update Engine then merges its partial
  ``dW`` into the gradient buffer, one word per lane and cycle.
* **MAC arrays** (Backward Engine, dense fallbacks, the dense baseline): one
  MAC per unit and cycle; the task lasts as long as its busiest unit.
* **Element-wise units**: one element pass per lane and cycle.
* **Buffers**: every bank serves one access of its port width per cycle; a
  task needs at least ``accesses / banks`` cycles of its busiest buffer.
* **DRAM**: ``bytes / (bandwidth / clock)`` cycles.

A task takes ``max(compute, buffer, DRAM)`` cycles: transfers overlap
computation (double buffering), and whatever cannot be hidden is a stall.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from h2learn.arch.activity.tasks import ElementwiseWork, LutWork, MacWork, TaskActivity
from h2learn.arch.config import HardwareConfig
from h2learn.arch.memory import dram_cycles
from h2learn.arch.names import BUFFERS, Action, buffer_config


@dataclass(frozen=True)
class TaskCycles:
    """The cycle budget of one task and where it goes."""

    compute: float
    table_build: float
    buffer: float
    dram: float

    @property
    def total(self) -> float:
        return max(self.compute, self.buffer, self.dram)

    @property
    def buffer_stall(self) -> float:
        return max(0.0, self.buffer - self.compute)

    @property
    def dram_stall(self) -> float:
        return max(0.0, self.dram - max(self.compute, self.buffer))

    def to_dict(self) -> dict[str, float]:
        return {
            **asdict(self),
            "total": self.total,
            "buffer_stall": self.buffer_stall,
            "dram_stall": self.dram_stall,
        }


def lut_cycles(work: LutWork) -> tuple[float, float]:
    """``(compute, table_build)`` cycles of a LUT-engine task from its mapping statistics."""
    passes = work.passes
    build = passes * work.tables_per_lane * work.table_entries
    lookups = passes * work.lane_work_max
    merges = passes * math.ceil(work.merge_words / work.lanes)
    return build + lookups + merges, build


def mac_cycles(work: MacWork) -> float:
    """Cycles of a MAC-array task: the busiest unit's MACs."""
    return float(work.unit_work_max)


def elementwise_cycles(work: ElementwiseWork, config: HardwareConfig) -> float:
    """Cycles of an element-wise task: element passes over the lanes."""
    return math.ceil(work.element_passes / config.elementwise.lanes)


def compute_cycles(task: TaskActivity, config: HardwareConfig) -> tuple[float, float]:
    """``(compute, table_build)`` cycles of ``task`` on its engine."""
    work = task.work
    if isinstance(work, LutWork):
        return lut_cycles(work)
    if isinstance(work, MacWork):
        return mac_cycles(work), 0.0
    return float(elementwise_cycles(work, config)), 0.0


def buffer_cycles(actions: Mapping[tuple[str, str], float], config: HardwareConfig) -> float:
    """Cycles the busiest global buffer needs for the task's accesses (all banks in parallel)."""
    busiest = 0.0
    for name in BUFFERS:
        accesses = actions.get((name, Action.READ), 0.0) + actions.get((name, Action.WRITE), 0.0)
        busiest = max(busiest, accesses / buffer_config(config, name).banks)
    return busiest


def task_cycles(
    task: TaskActivity,
    actions: Mapping[tuple[str, str], float],
    dram_bytes: float,
    config: HardwareConfig,
) -> TaskCycles:
    """Compute, table-build, buffer and DRAM cycles of one task."""
    compute, build = compute_cycles(task, config)
    return TaskCycles(
        compute=float(compute),
        table_build=float(build),
        buffer=buffer_cycles(actions, config),
        dram=dram_cycles(dram_bytes, config),
    )
