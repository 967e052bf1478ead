"""Counts -> (component, action): the one step that names what a task does to the hardware.

Accelergy's action-count step: an engine task's event counts (the engines'
count names) become counts of ``(component, action)`` pairs, which
:func:`h2learn.arch.cost.price` multiplies by the energy reference table.
Every component and action name comes from :mod:`h2learn.arch.names`, the
same names :mod:`h2learn.arch.cost.table` prices.

Mapping, per kind of task:

* **LUT engines**: one LUT read per lookup, one LUT write per table entry, one
  adder op per table-build add, accumulation and partial-sum merge; k-bit
  spike patterns read from the activation buffer; weights (Forward Engine)
  or ``du`` and the partial ``dW`` (Weight Update Engine) through their buffers.
* **MAC arrays** (Backward Engine, dense fallbacks, the dense baseline's
  array): multiply + add + register-file operand read per MAC, plus buffer
  traffic (:func:`mac_actions`).
* **Element-wise units**: arithmetic on the lanes, operands from the buffers
  by phase (:data:`ELEMENTWISE_BUFFERS`, :func:`elementwise_actions`).

Buffer traffic is counted in accesses of the buffer's port width.
"""

from __future__ import annotations

from dataclasses import dataclass

from h2learn.arch.activity.tasks import MacWork, TaskActivity
from h2learn.arch.config import HardwareConfig
from h2learn.arch.names import (
    BUFFERS,
    Action,
    Buffer,
    Engine,
    Part,
    Phase,
    TaskKind,
    buffer_config,
    component,
)
from h2learn.graph import POOL_KINDS
from h2learn.spec import AnyNetwork, LayerSpec

Actions = dict[tuple[str, str], float]

READ, WRITE = Action.READ, Action.WRITE
WEIGHT, ACTIVATION = Buffer.WEIGHT, Buffer.ACTIVATION
GRADIENT, MEMBRANE = Buffer.GRADIENT, Buffer.MEMBRANE


@dataclass(frozen=True)
class ActionContext:
    """What the count-to-action mapping needs from a config, read once (plain attributes)."""

    word_bits: int
    widths: dict[str, int]
    forward_k: int
    update_k: int

    @classmethod
    def of(cls, config: HardwareConfig) -> ActionContext:
        widths = {name.value: buffer_config(config, name).width_bits for name in BUFFERS}
        return cls(config.word_bits, widths, config.forward_group_size, config.update_group_size)


class _Tally:
    """Accumulates ``(component, action)`` counts; buffer traffic given in bits."""

    def __init__(self, ctx: ActionContext):
        self.ctx = ctx
        self.actions: Actions = {}

    def add(self, name: str, action: str, count: float) -> None:
        if count:
            key = (name, action)
            self.actions[key] = self.actions.get(key, 0.0) + float(count)

    def bits(self, buffer: Buffer, action: str, bits: float) -> None:
        """Bits moved to or from a buffer, as accesses of its port width."""
        self.add(buffer, action, bits / self.ctx.widths[buffer])


def lut_actions(task: TaskActivity, ctx: ActionContext) -> Actions:
    """A Forward or Weight Update Engine task: adders, LUT banks and buffer traffic."""
    c, word = task.counts, ctx.word_bits
    engine = Engine.FORWARD if task.engine == Engine.FORWARD else Engine.UPDATE
    k = ctx.forward_k if engine == Engine.FORWARD else ctx.update_k
    tally = _Tally(ctx)
    adds = c["table_build_adds"] + c["accumulations"] + c.get("partial_sum_adds", 0.0)
    tally.add(component(engine, Part.ADDER), Action.ADD, adds)
    tally.add(component(engine, Part.LUT), WRITE, c["table_entries_written"])
    tally.add(component(engine, Part.LUT), READ, c["table_reads"])
    tally.bits(ACTIVATION, READ, c["spike_reads"] * k)
    if engine == Engine.FORWARD:
        tally.bits(WEIGHT, READ, c["weight_reads"] * word)
        spill = c.get("psum_spill_words", 0.0) * word
        tally.bits(MEMBRANE, READ, spill)
        tally.bits(MEMBRANE, WRITE, c["output_writes"] * word + spill)
    else:
        tally.bits(GRADIENT, READ, (c["grad_reads"] + c["partial_sum_adds"]) * word)
        tally.bits(GRADIENT, WRITE, max(c["partial_sum_adds"], c["output_writes"]) * word)
    return tally.actions


def mac_actions(task: TaskActivity, ctx: ActionContext, weights: int, unit: str) -> Actions:
    """MAC array: multiply + add + register-file operand read per MAC, plus buffer traffic.

    Backward: weights are broadcast from the weight buffer once per task into
    the PEs' register files [ours]; ``du`` non-zeros are read from the
    gradient buffer, mask bits from the membrane buffer, ``do`` written to the
    gradient buffer.  Dense forward/update: analog inputs are read as words
    from the activation buffer (spikes as bits in the dense baseline).
    """
    c, word = task.counts, ctx.word_bits
    tally = _Tally(ctx)
    if task.phase == Phase.BACKWARD:
        macs = c["macs_done"]
        tally.bits(WEIGHT, READ, weights * word)
        tally.bits(GRADIENT, READ, c["grad_reads"] * word)
        tally.bits(MEMBRANE, READ, c["mask_reads"])
        tally.bits(GRADIENT, WRITE, c["output_writes"] * word)
    else:
        macs = c["multiplies"]
        binary = isinstance(task.work, MacWork) and task.work.binary_input
        tally.bits(ACTIVATION, READ, c["input_reads"] * (1 if binary else word))
        if task.phase == Phase.FORWARD:
            tally.bits(WEIGHT, READ, c["weight_reads"] * word)
            tally.bits(MEMBRANE, WRITE, c["output_writes"] * word)
        else:
            tally.bits(GRADIENT, READ, c["grad_reads"] * word)
            tally.bits(GRADIENT, WRITE, c["output_writes"] * word)
    tally.add(component(unit, Part.MULTIPLIER), Action.MULTIPLY, macs)
    tally.add(component(unit, Part.ADDER), Action.ADD, macs)
    tally.add(component(unit, Part.REGISTER_FILE), READ, macs)
    return tally.actions


ELEMENTWISE_BUFFERS: dict[str, dict[str, tuple[Buffer, Action, bool]]] = {
    # phase -> count name -> (buffer, read/write, is a datapath word (else one bit))
    Phase.FORWARD_ELEMENTWISE: {
        "input_reads": (MEMBRANE, READ, True),
        "param_reads": (WEIGHT, READ, True),
        "output_writes": (MEMBRANE, WRITE, True),
        "potential_writes": (MEMBRANE, WRITE, True),
        "spike_writes": (ACTIVATION, WRITE, False),
        "mask_writes": (MEMBRANE, WRITE, False),
    },
    Phase.BACKWARD_ELEMENTWISE: {
        "input_reads": (GRADIENT, READ, True),
        "grad_reads": (GRADIENT, READ, True),
        "potential_reads": (MEMBRANE, READ, True),
        "param_reads": (WEIGHT, READ, True),
        "output_writes": (GRADIENT, WRITE, True),
    },
    Phase.LOSS: {
        "input_reads": (MEMBRANE, READ, True),
        "output_writes": (GRADIENT, WRITE, True),
    },
    Phase.OPTIMIZER: {
        "param_reads": (WEIGHT, READ, True),
        "input_reads": (GRADIENT, READ, True),
        "output_writes": (WEIGHT, WRITE, True),
    },
}
"""Where each element-wise count's operands live, by phase."""


def pool_buffers(layer: LayerSpec, phase: str) -> dict[str, tuple[Buffer, Action, bool]]:
    """Pooling reads and writes activations (bits for max-pooled spikes) or gradients (words)."""
    if phase == Phase.FORWARD_ELEMENTWISE:
        words = not layer.binary_output
        return {
            "input_reads": (ACTIVATION, READ, words),
            "output_writes": (ACTIVATION, WRITE, words),
        }
    return {
        "input_reads": (GRADIENT, READ, True),
        "output_writes": (GRADIENT, WRITE, True),
    }


def elementwise_actions(task: TaskActivity, ctx: ActionContext, layer: LayerSpec | None) -> Actions:
    """Element-wise units: arithmetic on the lanes, operands from the buffers.

    LIF state (``u[t-1]`` as a word, ``o[t-1]`` as a bit) lives in the
    membrane and activation buffers; the backward state reads fetch a spike
    bit and a mask bit.  Selects are priced as compares (a multiplexer is no
    dearer than a compare).
    """
    c, word = task.counts, ctx.word_bits
    tally = _Tally(ctx)
    unit = Engine.ELEMENTWISE
    tally.add(component(unit, Part.MULTIPLIER), Action.MULTIPLY, c.get("multiplies", 0.0))
    tally.add(component(unit, Part.ADDER), Action.ADD, c.get("adds", 0.0))
    compares = c.get("compares", 0.0) + c.get("selects", 0.0)
    tally.add(component(unit, Part.COMPARATOR), Action.COMPARE, compares)
    special = sum(c.get(name, 0.0) for name in ("divides", "sqrts", "exps", "logs"))
    tally.add(component(unit, Part.SPECIAL), Action.OP, special)
    table = dict(ELEMENTWISE_BUFFERS.get(task.phase, {}))
    if layer is not None and layer.kind in POOL_KINDS:
        table = pool_buffers(layer, task.phase)
    for name, (buffer, action, is_word) in table.items():
        tally.bits(buffer, action, c.get(name, 0.0) * (word if is_word else 1))
    state_reads, state_writes = c.get("state_reads", 0.0), c.get("state_writes", 0.0)
    if task.phase == Phase.FORWARD_ELEMENTWISE:
        for count, action in ((state_reads, READ), (state_writes, WRITE)):
            tally.bits(MEMBRANE, action, count / 2 * word)
            tally.bits(ACTIVATION, action, count / 2)
    elif task.phase == Phase.BACKWARD_ELEMENTWISE:
        tally.bits(ACTIVATION, READ, state_reads)
        tally.bits(MEMBRANE, READ, state_reads)
    return tally.actions


def task_actions(
    task: TaskActivity,
    config: HardwareConfig | ActionContext,
    spec: AnyNetwork | None,
    mac_unit: str = Engine.BACKWARD,
) -> Actions:
    """``(component, action) -> count`` of one task (the mapping is documented per engine).

    ``spec`` supplies the task's layer (its weights for MAC tasks, its kind
    for pooling); ``mac_unit`` names the MAC array that runs MAC tasks.
    """
    ctx = config if isinstance(config, ActionContext) else ActionContext.of(config)
    if task.kind == TaskKind.LUT:
        return lut_actions(task, ctx)
    layer = spec.layers[task.layer_index] if spec is not None and task.layer_index >= 0 else None
    if task.kind == TaskKind.MAC:
        return mac_actions(task, ctx, layer.num_weights if layer is not None else 0, mac_unit)
    return elementwise_actions(task, ctx, layer)
