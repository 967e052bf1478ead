"""Assembly: every task of one iteration, from a :class:`CountProvider` and the mapping.

The builder walks the layers and micro-batches in a fixed order and asks a
*count provider* for the three data-dependent phases of each weighted layer
(forward, weight update, backward); the element-wise, pooling, loss and
optimizer tasks are data-independent (:mod:`h2learn.arch.activity.elementwise`).
Three providers implement :class:`CountProvider`: expected counts from
densities (:class:`~h2learn.arch.activity.statistical.StatisticalProvider`),
exact counts from a trace (:class:`~h2learn.arch.activity.trace.TraceProvider`)
and the dense baseline's (:class:`~h2learn.baselines.dense.DenseProvider`).

After a provider has counted a LUT task, one explicit mapping step applies
the table policy (:func:`apply_table_policy`): replicated tables are written
once per copy, and the Forward Engine's tables persist across micro-batches
when they fit.  The engine formula's table writes stay recorded in the task's
:class:`~h2learn.arch.activity.tasks.LutWork`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Protocol

from h2learn.arch.activity.elementwise import (
    elementwise_backward_task,
    elementwise_forward_task,
    loss_task,
    optimizer_task,
    pool_task,
)
from h2learn.arch.activity.statistical import StatisticalProvider
from h2learn.arch.activity.tasks import Activity, LutWork, TaskActivity, Work
from h2learn.arch.activity.trace import TraceProvider
from h2learn.arch.config import HardwareConfig
from h2learn.arch.mapping import micro_batches, tables_persist
from h2learn.arch.names import NO_LAYER, PHASES, Engine, Phase, TaskKind
from h2learn.graph import POOL_KINDS, input_needs_gradient
from h2learn.spec import LayerSpec, Workload
from h2learn.workload.densities import resolve_densities

Counts = dict[str, float]
TaskCounts = tuple[Counts, Work]


class CountProvider(Protocol):
    """Counts and loads of the data-dependent tasks of a weighted layer.

    Each method gets the layer's index and spec and the micro-batch's sample
    range ``[start, stop)``, and returns ``(counts, work)``: the engine's event
    counts (floats) and the task's mapping statistics.
    """

    def forward(self, index: int, layer: LayerSpec, start: int, stop: int) -> TaskCounts: ...

    def update(self, index: int, layer: LayerSpec, start: int, stop: int) -> TaskCounts: ...

    def backward(self, index: int, layer: LayerSpec, start: int, stop: int) -> TaskCounts: ...


def engine_for(layer: LayerSpec, phase: str) -> Engine:
    """The engine that runs ``phase`` of ``layer`` (analog inputs: the Backward Engine's MACs)."""
    if phase == Phase.FORWARD:
        return Engine.FORWARD if layer.binary_input else Engine.BACKWARD
    if phase == Phase.UPDATE:
        return Engine.UPDATE if layer.binary_input else Engine.BACKWARD
    if phase == Phase.BACKWARD:
        return Engine.BACKWARD
    return Engine.ELEMENTWISE


def kind_of(layer: LayerSpec, phase: str) -> TaskKind:
    """How ``phase`` of ``layer`` computes: LUT lookups, MACs or element-wise passes."""
    if phase in (Phase.FORWARD, Phase.UPDATE):
        return TaskKind.LUT if layer.binary_input else TaskKind.MAC
    if phase == Phase.BACKWARD:
        return TaskKind.MAC
    return TaskKind.ELEMENTWISE


def apply_table_policy(counts: Counts, work: LutWork, persist: bool) -> tuple[Counts, LutWork]:
    """A LUT task's counts after table replication and (``persist``) Forward Engine persistence.

    Replicated tables (fewer groups than lanes) are written once per copy.
    With ``persist`` the tables were built by an earlier micro-batch: no
    build adds, table writes or weight reads, and no build cycles.  Returns
    new objects; the engine formula's table writes are kept in
    ``work.engine_table_entries_written``.
    """
    counts = dict(counts)
    engine_writes = counts["table_entries_written"]
    counts["table_entries_written"] = engine_writes * work.replicas
    work = dataclasses.replace(work, engine_table_entries_written=engine_writes)
    if persist:
        for name in ("table_build_adds", "table_entries_written", "weight_reads"):
            counts[name] = 0.0
        work = dataclasses.replace(work, tables_per_lane=0.0)
    return counts, work


class ActivityBuilder:
    """Collects tasks in a fixed order: per layer and micro-batch, forward then backward phases.

    ``mac_array`` names a dense design's single MAC array: every weighted
    phase then runs there as MAC work (the dense baseline).
    """

    def __init__(
        self,
        spec: Workload,
        config: HardwareConfig,
        batch: int,
        steps: int,
        mac_array: str | None = None,
    ):
        self.spec, self.config = spec, config
        self.batch, self.steps = batch, steps
        self.mac_array = mac_array
        self.ranges = micro_batches(batch, config.schedule.micro_batch)
        self.tasks: list[TaskActivity] = []

    def add(
        self,
        index: int,
        name: str,
        phase: Phase,
        engine: str,
        kind: TaskKind,
        mb: int,
        samples: int,
        counts_work: TaskCounts,
    ) -> None:
        counts, work = counts_work
        self.tasks.append(TaskActivity(name, index, phase, engine, mb, samples, kind, counts, work))

    def _elementwise(
        self, index: int, name: str, phase: Phase, mb: int, samples: int, counts_work: TaskCounts
    ) -> None:
        """A task on the element-wise units (element-wise, pooling, loss, optimizer)."""
        unit, kind = Engine.ELEMENTWISE, TaskKind.ELEMENTWISE
        self.add(index, name, phase, unit, kind, mb, samples, counts_work)

    def weighted(self, index: int, layer: LayerSpec, provider: CountProvider) -> None:
        """Every task of a weighted layer: engine phases from ``provider``, then element-wise."""
        calls = {
            Phase.FORWARD: provider.forward,
            Phase.UPDATE: provider.update,
            Phase.BACKWARD: provider.backward,
        }
        phases = (Phase.FORWARD, Phase.UPDATE) + (() if layer.encoding else (Phase.BACKWARD,))
        for mb, (start, stop) in enumerate(self.ranges):
            samples = stop - start
            steps = self.steps * samples
            share = samples / self.batch
            for phase in phases:
                counts, work = calls[phase](index, layer, start, stop)
                engine, kind = engine_for(layer, phase), kind_of(layer, phase)
                if self.mac_array:
                    engine, kind = self.mac_array, TaskKind.MAC
                if kind == TaskKind.LUT:
                    persist = phase == Phase.FORWARD and mb > 0
                    persist = persist and tables_persist(self.spec, self.config, layer)
                    counts, work = apply_table_policy(counts, work, persist)
                self.add(index, layer.name, phase, engine, kind, mb, samples, (counts, work))
            forward = elementwise_forward_task(layer, self.spec, steps, share)
            self._elementwise(index, layer.name, Phase.FORWARD_ELEMENTWISE, mb, samples, forward)
            backward = elementwise_backward_task(layer, self.spec, steps, samples, share)
            self._elementwise(index, layer.name, Phase.BACKWARD_ELEMENTWISE, mb, samples, backward)

    def pool(self, index: int, layer: LayerSpec) -> None:
        """Pooling forward, and backward when a weighted layer lies upstream."""
        phases = [(Phase.FORWARD_ELEMENTWISE, False)]
        if input_needs_gradient(self.spec, index):
            phases.append((Phase.BACKWARD_ELEMENTWISE, True))
        for mb, (start, stop) in enumerate(self.ranges):
            steps = self.steps * (stop - start)
            for phase, backward in phases:
                counts = pool_task(layer, steps, backward)
                self._elementwise(index, layer.name, phase, mb, stop - start, counts)

    def finish(self) -> list[TaskActivity]:
        """Add the loss and optimizer tasks and sort every task by phase, layer, micro-batch."""
        for mb, (start, stop) in enumerate(self.ranges):
            counts = loss_task(self.spec.num_classes, stop - start, self.steps)
            self._elementwise(NO_LAYER, "loss", Phase.LOSS, mb, stop - start, counts)
        counts = optimizer_task(self.spec, self.config.schedule.optimizer)
        self._elementwise(NO_LAYER, "optimizer", Phase.OPTIMIZER, 0, self.batch, counts)
        order = {phase: i for i, phase in enumerate(PHASES)}
        self.tasks.sort(key=lambda t: (order[t.phase], t.layer_index, t.micro_batch))
        return self.tasks

    def build(self, provider: CountProvider) -> list[TaskActivity]:
        """Every task of one iteration, sorted (see :meth:`finish`)."""
        for index, layer in enumerate(self.spec.layers):
            if layer.weighted:
                self.weighted(index, layer, provider)
            elif layer.kind in POOL_KINDS:
                self.pool(index, layer)
        return self.finish()


def activity_from_densities(
    spec: Workload,
    densities: Mapping[str, Mapping[str, float | None]] | None,
    config: HardwareConfig,
) -> Activity:
    """Expected events of one iteration of ``spec`` (its ``batch_size`` and ``time_steps``).

    ``densities``: per weighted layer, any of ``input``, ``mask``, ``du_psum``,
    ``lower_mask`` (see :func:`h2learn.workload.densities.default_densities`
    for the defaults; ``"*"`` sets a field for every layer).
    """
    resolved = resolve_densities(spec, densities)
    builder = ActivityBuilder(spec, config, spec.batch_size, spec.time_steps)
    tasks = builder.build(StatisticalProvider(config, spec.time_steps, resolved))
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
    spec = Workload(trace.spec.network, trace.batch_size, trace.time_steps)
    builder = ActivityBuilder(spec, config, trace.batch_size, trace.time_steps)
    tasks = builder.build(TraceProvider(trace, config))
    return Activity(
        spec, trace.batch_size, trace.time_steps, config.schedule.micro_batch, "trace", tasks
    )
