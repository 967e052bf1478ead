"""What BPTT keeps, what fits on chip, and what moves to and from DRAM (per engine task).

Hardware behaviour modelled [ours, the natural reading of SYSTEM.md section 3]:
BPTT needs, for every layer, the forward pass's state of all ``T`` steps of a
sample until that sample's backward pass reaches the layer.  Each kind of
data has a home buffer; what does not fit there lives in DRAM and costs one
DRAM write when produced and one DRAM read per later consumer.

Data classes (bytes per sample unless stated) and their homes:

* ``weights`` -> weight buffer.  All resident: no DRAM traffic in steady
  state.  Otherwise in layer-by-layer order each layer's weights are read
  from DRAM once per phase (forward, backward) and, if a layer alone exceeds
  the buffer, its excess once more per task; in sample-by-sample order a
  fixed fraction ``capacity / total`` of every layer stays resident and the
  rest streams in every task.
* ``weight_gradients`` (dW, accumulated over the mini-batch) -> gradient
  buffer, after the transient gradients; same residency rules (read-modify-
  write of the excess per task), written out once for the optimizer.
* ``state_words`` (``u`` for the reset path, the batch-norm input, analog
  inputs of non-encoding layers; datapath words) -> membrane buffer;
  ``state_bits`` (spike and surrogate-mask bits) -> activation buffer.
  Samples alive at once: the whole mini-batch in layer-by-layer order (batch
  norm's statistics), else the micro-batches in flight.  Residency is given
  to the last layers first (their backward comes first); a spilled fraction
  is written in the layer's forward element-wise task and read back by its
  consumers (LIF/BN backward, the Backward Engine's mask, the Weight Update
  Engine's input, and in layer-by-layer order the next layer's Forward Engine).
* ``gradients`` (``do`` from the Backward Engine, ``du`` from the LIF
  backward) -> gradient buffer; ``do`` of the whole mini-batch is alive
  when the layer below uses batch statistics.
* ``network_input``: the dataset lives in DRAM; the encoding layer reads it
  in its forward and again in its weight update.
* ``optimizer_state``: Adam's two moments live in DRAM (read and written once).

:func:`bandwidth_stall_cycles` is the stall rule: a task that moves ``bytes``
over DRAM needs ``bytes / (bandwidth / clock)`` cycles and stalls for
whatever exceeds its compute cycles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from h2learn.arch.activity.elementwise import parameter_count
from h2learn.arch.activity.tasks import TaskActivity
from h2learn.arch.config import HardwareConfig
from h2learn.arch.mapping import layer_major
from h2learn.arch.names import DRAM, Action, Buffer, Phase, TaskKey, buffer_config
from h2learn.graph import producer
from h2learn.spec import LayerSpec, Workload

CLASS_BUFFER: dict[str, Buffer] = {
    "weights": Buffer.WEIGHT,
    "weight_gradients": Buffer.GRADIENT,
    "state_words": Buffer.MEMBRANE,
    "state_bits": Buffer.ACTIVATION,
    "gradients": Buffer.GRADIENT,
    "network_input": Buffer.ACTIVATION,
    "optimizer_state": Buffer.WEIGHT,
}
"""The buffer each data class is staged through on its way to or from DRAM."""


@dataclass(frozen=True)
class LayerFootprint:
    """Bytes one weighted layer needs (per sample unless the name says otherwise)."""

    name: str
    index: int
    weight_bytes: float
    state_word_bytes: float
    state_bit_bytes: float
    input_bit_bytes: float
    du_bytes: float
    do_bytes: float
    network_input_bytes: float


@dataclass
class MemoryPlan:
    """Residency decisions and the DRAM traffic of every task.

    ``traffic[task_key][data_class] = {"read": bytes, "write": bytes}``.
    """

    footprints: list[LayerFootprint]
    layer_major: bool
    live_samples: int
    residency: dict[str, Any] = field(default_factory=dict)
    traffic: dict[TaskKey, dict[str, dict[str, float]]] = field(default_factory=dict)

    def add(self, key: TaskKey, data_class: str, direction: str, nbytes: float) -> None:
        if nbytes <= 0:
            return
        entry = self.traffic.setdefault(key, {}).setdefault(data_class, {"read": 0.0, "write": 0.0})
        entry[direction] += nbytes

    def task_bytes(self, key: TaskKey) -> float:
        return sum(v["read"] + v["write"] for v in self.traffic.get(key, {}).values())

    def totals_by_class(self) -> dict[str, dict[str, float]]:
        totals: dict[str, dict[str, float]] = {}
        for per_class in self.traffic.values():
            for name, moved in per_class.items():
                entry = totals.setdefault(name, {"read": 0.0, "write": 0.0})
                entry["read"] += moved["read"]
                entry["write"] += moved["write"]
        return totals

    @property
    def dram_bytes(self) -> float:
        return sum(v["read"] + v["write"] for v in self.totals_by_class().values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "layer_major": self.layer_major,
            "live_samples": self.live_samples,
            "residency": self.residency,
            "dram_bytes": self.dram_bytes,
            "dram_by_class": self.totals_by_class(),
            "footprints": [f.__dict__ for f in self.footprints],
        }


def footprint(layer: LayerSpec, index: int, spec: Workload, word_bits: int) -> LayerFootprint:
    """What BPTT keeps for ``layer`` per sample, and its transient gradients."""
    steps, word = spec.time_steps, word_bits / 8
    inputs = math.prod(layer.in_shape)
    keeps_potential = layer.fires and spec.lif.reset_grad
    words = steps * layer.neurons * word * (int(keeps_potential) + int(layer.batch_norm))
    if not layer.binary_input and not layer.encoding:
        words += steps * inputs * word
    network_input = 0.0
    if layer.encoding:
        if spec.input_kind == "spikes":  # binary spike frames: one bit per input and step
            network_input = steps * inputs / 8
        else:
            frames = steps if spec.input_kind == "events" else 1
            network_input = frames * inputs * word
    return LayerFootprint(
        name=layer.name,
        index=index,
        weight_bytes=layer.num_weights * word,
        state_word_bytes=words,
        state_bit_bytes=steps * layer.neurons * 2 / 8 if layer.fires else 0.0,
        input_bit_bytes=steps * inputs / 8 if layer.binary_input else 0.0,
        du_bytes=steps * layer.neurons * word,
        do_bytes=0.0 if layer.encoding else steps * inputs * word,
        network_input_bytes=network_input,
    )


def _greedy_residency(needs: list[tuple[str, float]], capacity: float) -> dict[str, float]:
    """Spilled fraction per item, giving capacity to the items in order until it runs out."""
    spilled: dict[str, float] = {}
    remaining = capacity
    for name, need in needs:
        if need <= 0:
            spilled[name] = 0.0
            continue
        kept = min(need, remaining)
        remaining -= kept
        spilled[name] = (need - kept) / need
    return spilled


class _Planner:
    """Builds a :class:`MemoryPlan` for the tasks of one iteration."""

    def __init__(self, spec: Workload, config: HardwareConfig, tasks: list[TaskActivity]):
        self.spec, self.config = spec, config
        self.tasks = tasks
        self.batch = spec.batch_size
        word = config.word_bits
        self.weighted = [(i, layer) for i, layer in enumerate(spec.layers) if layer.weighted]
        self.footprints = {i: footprint(layer, i, spec, word) for i, layer in self.weighted}
        self.major = layer_major(spec, config)
        micro = config.schedule.micro_batch
        in_flight = 2 if config.optimizations.pipeline else 1
        self.live = self.batch if self.major else min(self.batch, micro * in_flight)
        self.plan = MemoryPlan(list(self.footprints.values()), self.major, self.live)
        self.by_layer: dict[int, list[TaskActivity]] = {}
        for task in tasks:
            self.by_layer.setdefault(task.layer_index, []).append(task)

    def _tasks(self, index: int, phase: str) -> list[TaskActivity]:
        return sorted(
            (t for t in self.by_layer.get(index, []) if t.phase == phase),
            key=lambda t: t.micro_batch,
        )

    def _capacity(self, name: str) -> float:
        return buffer_config(self.config, name).size_bytes

    # -- weights -------------------------------------------------------------------------------

    def weights(self) -> None:
        total = sum(f.weight_bytes for f in self.footprints.values())
        capacity = self._capacity("weight")
        resident = total <= capacity
        fraction = 1.0 if resident else (0.0 if self.major else capacity / total)
        self.plan.residency["weights"] = {
            "bytes": total,
            "capacity": capacity,
            "all_resident": resident,
            "resident_fraction": fraction,
        }
        if resident:
            return
        for index, fp in self.footprints.items():
            for phase in (Phase.FORWARD, Phase.BACKWARD):
                for n, task in enumerate(self._tasks(index, phase)):
                    if self.major:
                        moved = fp.weight_bytes if n == 0 else max(0.0, fp.weight_bytes - capacity)
                    else:
                        moved = fp.weight_bytes * (1 - fraction)
                    self.plan.add(task.key, "weights", "read", moved)
        key = TaskKey.optimizer()
        self.plan.add(key, "weights", "read", total * (1 - fraction))
        self.plan.add(key, "weights", "write", total * (1 - fraction))

    # -- transient gradients and dW ---------------------------------------------------------------

    def _do_live(self, index: int) -> float:
        """Bytes of ``do`` (this layer's input gradient) alive until the layer below consumes it."""
        source = producer(self.spec, index)[0]
        batch_wide = self.major and source >= 0 and self.spec.layers[source].batch_norm
        samples = self.batch if batch_wide else self.config.schedule.micro_batch
        return min(samples, self.batch) * self.footprints[index].do_bytes

    def gradients(self) -> None:
        """Gradient buffer: ``du`` of the task, then dW accumulators, then ``do``; excess spills.

        dW comes before ``do`` because a spilled dW costs a read-modify-write
        in every task of the layer, a spilled ``do`` only one write and one read.
        In layer-by-layer order the buffer serves one layer at a time; in
        sample-by-sample order all layers' dW share it (a fixed resident fraction).
        """
        capacity = self._capacity("gradient")
        micro = min(self.config.schedule.micro_batch, self.batch)
        total_dw = sum(f.weight_bytes for f in self.footprints.values())
        transient_peak = max(
            (micro * f.du_bytes + self._do_live(i) for i, f in self.footprints.items()), default=0.0
        )
        if self.major:
            shared_fraction = None
        else:  # dW of every layer stays alive for the whole mini-batch
            room = max(0.0, capacity - micro * max(f.du_bytes for f in self.footprints.values()))
            shared_fraction = min(1.0, room / total_dw) if total_dw else 1.0
        spilled_dw = 0.0
        for index, fp in self.footprints.items():
            du = micro * fp.du_bytes
            room = max(0.0, capacity - du)
            if shared_fraction is None:
                kept_dw = min(fp.weight_bytes, room)
            else:
                kept_dw = fp.weight_bytes * shared_fraction
            do_room = max(0.0, room - (kept_dw if shared_fraction is None else 0.0))
            self._dw_traffic(index, fp, kept_dw)
            spilled_dw += fp.weight_bytes - kept_dw
            self._transient_traffic(index, fp, du, capacity, do_room)
        self.plan.residency["gradients"] = {
            "capacity": capacity,
            "transient_peak_bytes": transient_peak,
            "weight_gradient_bytes": total_dw,
            "weight_gradients_spilled_bytes": spilled_dw,
        }
        if self.major or spilled_dw:
            self.plan.add(TaskKey.optimizer(), "weight_gradients", "read", total_dw)

    def _dw_traffic(self, index: int, fp: LayerFootprint, kept: float) -> None:
        """Read-modify-write of the non-resident dW in every update task; final write-out."""
        tasks = self._tasks(index, Phase.UPDATE)
        excess = fp.weight_bytes - kept
        for n, task in enumerate(tasks):
            self.plan.add(task.key, "weight_gradients", "write", excess)
            if n > 0:
                self.plan.add(task.key, "weight_gradients", "read", excess)
        if tasks and self.major and kept:  # the layer's buffer is reused by the next layer
            self.plan.add(tasks[-1].key, "weight_gradients", "write", kept)

    def _transient_traffic(self, index, fp: LayerFootprint, du: float, capacity, do_room):
        """Spilled ``do`` (written by the BE, read by the layer below) and ``du``."""
        do = self._do_live(index)
        spill_do = max(0.0, do - do_room) / do if do else 0.0
        spill_du = max(0.0, du - capacity) / du if du else 0.0
        source = producer(self.spec, index)[0]
        for task in self._tasks(index, Phase.BACKWARD):
            moved = task.samples * fp.do_bytes * spill_do
            self.plan.add(task.key, "gradients", "write", moved)
            if source >= 0:
                key = TaskKey(source, Phase.BACKWARD_ELEMENTWISE, task.micro_batch)
                self.plan.add(key, "gradients", "read", moved)
        for task in self._tasks(index, Phase.BACKWARD_ELEMENTWISE):
            moved = task.samples * fp.du_bytes * spill_du
            self.plan.add(task.key, "gradients", "write", moved)
            for phase in (Phase.BACKWARD, Phase.UPDATE):
                self.plan.add(TaskKey(index, phase, task.micro_batch), "gradients", "read", moved)

    # -- BPTT state -----------------------------------------------------------------------------

    def state(self) -> None:
        top_down = sorted(self.footprints.items(), key=lambda item: -item[0])
        words = _greedy_residency(
            [(fp.name, self.live * fp.state_word_bytes) for _, fp in top_down],
            self._capacity("membrane"),
        )
        bits = _greedy_residency(
            [(fp.name, self.live * fp.state_bit_bytes) for _, fp in top_down],
            self._capacity("activation"),
        )
        self.plan.residency["state"] = {
            "live_samples": self.live,
            "words_bytes_per_sample": sum(f.state_word_bytes for f in self.footprints.values()),
            "bits_bytes_per_sample": sum(f.state_bit_bytes for f in self.footprints.values()),
            "words_spilled_fraction": words,
            "bits_spilled_fraction": bits,
        }
        for index, fp in self.footprints.items():
            self._state_traffic(index, fp, words[fp.name], bits[fp.name], bits)

    def _state_traffic(self, index, fp: LayerFootprint, words: float, bits: float, all_bits):
        layer = self.spec.layers[index]
        psum = self.spec.time_steps * layer.neurons * self.config.word_bits / 8
        for task in self._tasks(index, Phase.FORWARD_ELEMENTWISE):
            self.plan.add(
                task.key, "state_words", "write", task.samples * fp.state_word_bytes * words
            )
            self.plan.add(task.key, "state_bits", "write", task.samples * fp.state_bit_bytes * bits)
            if layer.batch_norm:  # the normalisation pass reads the spilled batch-norm input
                self.plan.add(task.key, "state_words", "read", task.samples * psum * words)
        for task in self._tasks(index, Phase.BACKWARD_ELEMENTWISE):
            self.plan.add(
                task.key, "state_words", "read", task.samples * fp.state_word_bytes * words
            )
            self.plan.add(task.key, "state_bits", "read", task.samples * fp.state_bit_bytes * bits)
        source = producer(self.spec, index)[0]
        if source < 0 or not layer.binary_input:
            return
        spilled = all_bits[self.footprints[source].name]
        readers = [Phase.UPDATE] + ([Phase.FORWARD] if self.major else [])
        for phase in readers:  # the input spikes, for the FE (layer order) and the WUE
            for task in self._tasks(index, phase):
                self.plan.add(
                    task.key, "state_bits", "read", task.samples * fp.input_bit_bytes * spilled
                )
        for task in self._tasks(index, Phase.BACKWARD):  # the lower mask bits
            self.plan.add(
                task.key, "state_bits", "read", task.samples * fp.input_bit_bytes * spilled
            )

    # -- input and optimizer ----------------------------------------------------------------------

    def network_input(self) -> None:
        for index, fp in self.footprints.items():
            if not fp.network_input_bytes:
                continue
            for phase in (Phase.FORWARD, Phase.UPDATE):
                for task in self._tasks(index, phase):
                    self.plan.add(
                        task.key, "network_input", "read", task.samples * fp.network_input_bytes
                    )

    def optimizer_state(self) -> None:
        if self.config.schedule.optimizer != "adam":
            return
        moments = 2 * parameter_count(self.spec) * self.config.word_bits / 8
        self.plan.add(TaskKey.optimizer(), "optimizer_state", "read", moments)
        self.plan.add(TaskKey.optimizer(), "optimizer_state", "write", moments)

    def build(self) -> MemoryPlan:
        self.weights()
        self.gradients()
        self.state()
        self.network_input()
        self.optimizer_state()
        return self.plan


def plan_memory(spec: Workload, config: HardwareConfig, tasks: list[TaskActivity]) -> MemoryPlan:
    """Residency and per-task DRAM traffic of one training iteration (module docstring rules)."""
    return _Planner(spec, config, tasks).build()


def dram_cycles(nbytes: float, config: HardwareConfig) -> float:
    """Cycles to move ``nbytes`` at the configured DRAM bandwidth."""
    return nbytes / config.dram_bytes_per_cycle


def bandwidth_stall_cycles(nbytes: float, compute_cycles: float, config: HardwareConfig) -> float:
    """``max(0, bytes / (bandwidth / clock) - compute cycles)``: DRAM time not hidden by compute."""
    return max(0.0, dram_cycles(nbytes, config) - compute_cycles)


def staging_actions(plan: MemoryPlan, key: TaskKey, config: HardwareConfig) -> dict:
    """DRAM bits and the buffer accesses that stage them, as ``(component, action)`` counts.

    A DRAM read is written into the data's home buffer and a DRAM write is
    read out of it [ours].
    """
    actions: dict[tuple[str, str], float] = {}
    for data_class, moved in plan.traffic.get(key, {}).items():
        buffer = CLASS_BUFFER[data_class]
        width = buffer_config(config, buffer).width_bits
        for direction, staged in ((Action.READ, Action.WRITE), (Action.WRITE, Action.READ)):
            bits = moved[direction] * 8
            if not bits:
                continue
            dram = (DRAM, direction)
            actions[dram] = actions.get(dram, 0.0) + bits
            stage = (buffer, staged)
            actions[stage] = actions.get(stage, 0.0) + bits / width
    return actions
