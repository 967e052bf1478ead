"""The engine schedule of one mini-batch: a task graph, a pipelined and a sequential timeline.

Hardware behaviour [paper: "pipeline optimization between different
engines"; the schedule is ours, SYSTEM.md section 2]: the Forward Engine,
Backward Engine, Weight Update Engine and element-wise units are separate
resources that can work at once on different tasks.  Dependencies follow
BPTT and the weights stay fixed within the mini-batch:

* a layer's Forward Engine task needs its input (the producer's LIF output)
  of the same micro-batch; its LIF/batch-norm task needs the Forward Engine's
  sums, and with batch statistics those of the *whole* mini-batch;
* the loss needs the last layer's output; a layer's LIF/BN backward needs the
  gradient of its output from every consumer (Backward Engine of the layer
  above, pooling backward, the residual's user, or the loss), and with batch
  statistics from the whole mini-batch;
* the Backward and Weight Update Engine tasks of a layer both consume its
  ``du`` and run side by side (WUE of layer n beside BE of layer n-1);
* the optimizer waits for every weight update.

Order: with batch statistics the only legal order is layer by layer over the
mini-batch (forward up, backward down); without, sample by sample, so the
Forward Engine starts micro-batch ``b+1`` while the Backward and Weight
Update Engines work on ``b``.  A task starts when its engine is free and its
inputs are ready; among ready tasks the one that can start first goes first (ties:
older micro-batch, earlier layer).  The sequential schedule runs one task
at a time in priority order.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from h2learn.arch.activity.tasks import TaskActivity
from h2learn.arch.config import HardwareConfig
from h2learn.arch.mapping import layer_major
from h2learn.arch.names import Phase, TaskKey
from h2learn.graph import consumers, residual_users
from h2learn.spec import AnyNetwork


@dataclass(frozen=True)
class TimelineEntry:
    """One task on the timeline (``sample`` is the micro-batch index)."""

    engine: str
    layer: str
    sample: int
    phase: str
    start_cycle: float
    end_cycle: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Schedule:
    """A timeline and its makespan; ``busy`` is each engine's total task time."""

    entries: list[TimelineEntry]
    makespan: float
    busy: dict[str, float]


class TaskGraph:
    """Dependencies and the issue order of the tasks of one iteration."""

    def __init__(self, spec: AnyNetwork, tasks: list[TaskActivity], config: HardwareConfig):
        self.spec = spec
        self.tasks = {task.key: task for task in tasks}
        self.micro = sorted({t.micro_batch for t in tasks if t.phase != Phase.OPTIMIZER})
        self.batch_stats = layer_major(spec, config)
        self.consumers = consumers(spec)
        self.residual_users = residual_users(spec)
        self._producers: dict[tuple[int, int], list[TaskKey]] = {}
        self.deps = {key: self._dependencies(key) for key in self.tasks}
        self.order = self._order()

    # -- forward -------------------------------------------------------------------------------

    def _output_task(self, index: int, mb: int) -> list[TaskKey]:
        """The task that makes layer ``index``'s output available (nothing for the input)."""
        if index < 0:
            return []
        layer = self.spec.layers[index]
        if layer.kind == "flatten":
            return self._output_task(layer.source, mb)
        key = TaskKey(index, Phase.FORWARD_ELEMENTWISE, mb)
        return [key] if key in self.tasks else []

    def _batch_wide(self, index: int) -> bool:
        return self.batch_stats and self.spec.layers[index].batch_norm

    def _all(self, index: int, phase: str, mb: int, batch_wide: bool) -> list[TaskKey]:
        samples = self.micro if batch_wide else [mb]
        keys = (TaskKey(index, phase, m) for m in samples)
        return [key for key in keys if key in self.tasks]

    # -- backward ------------------------------------------------------------------------------

    def _gradient_producers(self, index: int, mb: int) -> list[TaskKey]:
        """Tasks that produce the gradient of layer ``index``'s output for micro-batch ``mb``."""
        if (index, mb) not in self._producers:
            self._producers[(index, mb)] = self._find_gradient_producers(index, mb)
        return self._producers[(index, mb)]

    def _find_gradient_producers(self, index: int, mb: int) -> list[TaskKey]:
        keys: list[TaskKey] = []
        for consumer in self.consumers.get(index, []):
            layer = self.spec.layers[consumer]
            backward = TaskKey(consumer, Phase.BACKWARD, mb)
            elementwise = TaskKey(consumer, Phase.BACKWARD_ELEMENTWISE, mb)
            if layer.kind == "flatten":
                keys += self._gradient_producers(consumer, mb)
            elif layer.weighted and backward in self.tasks:
                keys.append(backward)
            elif elementwise in self.tasks and not layer.weighted:
                keys.append(elementwise)
        for user in self.residual_users.get(index, []):
            keys.append(TaskKey(user, Phase.BACKWARD_ELEMENTWISE, mb))
        if index == len(self.spec.layers) - 1:
            keys.append(TaskKey.loss(mb))
        return keys

    def _dependencies(self, key: TaskKey) -> list[TaskKey]:
        index, phase, mb = key
        if phase == Phase.OPTIMIZER:
            return [k for k in self.tasks if k[1] == Phase.UPDATE]
        if phase == Phase.LOSS:
            return self._output_task(len(self.spec.layers) - 1, mb)
        layer = self.spec.layers[index]
        if phase == Phase.FORWARD:
            return self._output_task(layer.source, mb)
        if phase == Phase.FORWARD_ELEMENTWISE:
            if not layer.weighted:
                return self._output_task(layer.source, mb)
            deps = self._all(index, Phase.FORWARD, mb, self._batch_wide(index))
            if layer.residual is not None:
                deps += self._output_task(layer.residual, mb)
            return deps
        if phase == Phase.BACKWARD_ELEMENTWISE:
            samples = self.micro if (layer.weighted and self._batch_wide(index)) else [mb]
            deps = [k for m in samples for k in self._gradient_producers(index, m)]
            return deps + [TaskKey(index, Phase.FORWARD_ELEMENTWISE, mb)]
        return [TaskKey(index, Phase.BACKWARD_ELEMENTWISE, mb)]  # backward, update

    # -- issue order ----------------------------------------------------------------------------

    def _forward_keys(self, index: int, mbs: list[int]) -> list[TaskKey]:
        layer = self.spec.layers[index]
        fwd, ew = Phase.FORWARD, Phase.FORWARD_ELEMENTWISE
        if not layer.weighted:
            return [TaskKey(index, ew, m) for m in mbs]
        if self._batch_wide(index):
            return [TaskKey(index, fwd, m) for m in mbs] + [TaskKey(index, ew, m) for m in mbs]
        return [TaskKey(index, phase, m) for m in mbs for phase in (fwd, ew)]

    def _backward_keys(self, index: int, mbs: list[int]) -> list[TaskKey]:
        phases = (Phase.BACKWARD_ELEMENTWISE, Phase.BACKWARD, Phase.UPDATE)
        return [TaskKey(index, phase, m) for m in mbs for phase in phases]

    def _order(self) -> list[TaskKey]:
        """Priority order: layer by layer (batch statistics) or sample by sample.

        This is the sequential schedule's order and the pipelined scheduler's
        tie-break (older micro-batches first).
        """
        layers = range(len(self.spec.layers))
        groups = [self.micro] if self.batch_stats else [[m] for m in self.micro]
        keys: list[TaskKey] = []
        for mbs in groups:
            for index in layers:
                keys += self._forward_keys(index, mbs)
            keys += [TaskKey.loss(m) for m in mbs]
            for index in reversed(layers):
                keys += self._backward_keys(index, mbs)
        keys.append(TaskKey.optimizer())
        return [key for key in keys if key in self.tasks]


def run_schedule(graph: TaskGraph, durations: Mapping[TaskKey, float], pipelined: bool) -> Schedule:
    """Schedule the graph: greedy list scheduling (pipelined) or one task at a time.

    Pipelined: repeatedly start the ready task (all dependencies scheduled)
    that can start earliest on its engine, ties broken by priority order; an
    engine runs one task at a time and never goes back to fill a gap.
    Sequential: the priority order, each task after the previous one.
    """
    priority = {key: n for n, key in enumerate(graph.order)}
    end: dict[TaskKey, float] = {}
    free: dict[str, float] = {}
    busy: dict[str, float] = {}
    entries: list[TimelineEntry] = []

    def place(key: TaskKey, start: float) -> None:
        task = graph.tasks[key]
        finish = start + durations[key]
        end[key] = finish
        free[task.engine] = finish
        busy[task.engine] = busy.get(task.engine, 0.0) + durations[key]
        entries.append(
            TimelineEntry(task.engine, task.layer, task.micro_batch, task.phase, start, finish)
        )

    def ready_time(key: TaskKey) -> float:
        return max((end[d] for d in graph.deps[key]), default=0.0)

    if not pipelined:
        previous = 0.0
        for key in graph.order:
            place(key, max(ready_time(key), previous))
            previous = end[key]
        return Schedule(entries, previous, busy)

    waiting = {key: len(set(graph.deps[key])) for key in graph.order}
    dependants: dict[TaskKey, list[TaskKey]] = {}
    for key in graph.order:
        for dep in set(graph.deps[key]):
            dependants.setdefault(dep, []).append(key)
    heap: list[tuple[float, int, TaskKey]] = []

    def push(key: TaskKey) -> None:
        start = max(ready_time(key), free.get(graph.tasks[key].engine, 0.0))
        heapq.heappush(heap, (start, priority[key], key))

    for key in graph.order:
        if waiting[key] == 0:
            push(key)
    while heap:
        start, _, key = heapq.heappop(heap)
        actual = max(ready_time(key), free.get(graph.tasks[key].engine, 0.0))
        if actual > start:  # its engine got busier since it was queued
            heapq.heappush(heap, (actual, priority[key], key))
            continue
        place(key, actual)
        for child in dependants.get(key, []):
            waiting[child] -= 1
            if waiting[child] == 0:
                push(child)
    if len(end) != len(graph.order):
        raise RuntimeError("task graph has a cycle or a missing dependency (model bug)")
    return Schedule(entries, max(end.values(), default=0.0), busy)
