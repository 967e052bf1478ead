"""The names the model's stages agree on: phases, engines, task kinds, task keys, components.

Every stage of the simulator (activity, actions, cost table, cycles, memory,
pipeline) refers to tasks and hardware components by name.  This module is
the one place those names are defined and built, so that a new component is
one line here plus an estimator in :mod:`h2learn.arch.cost` and a mapping rule
in :mod:`h2learn.arch.actions` (Accelergy's split of component classes, action
counts and the energy reference table).

The enums mix in ``str`` (``class Phase(str, Enum)``, since ``StrEnum`` needs
Python 3.11): a member equals, hashes and prints as its value, so results
keyed by phase or component read the same as before the enums existed.
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple


class _Name(str, Enum):
    """A string-valued enum member that prints and formats as its value."""

    def __str__(self) -> str:
        return str.__str__(self)

    def __format__(self, spec: str) -> str:
        return str.__format__(str.__str__(self), spec)


class Phase(_Name):
    """The phases of one BPTT iteration, in the order tasks are listed."""

    FORWARD = "forward"
    FORWARD_ELEMENTWISE = "forward_elementwise"
    LOSS = "loss"
    BACKWARD_ELEMENTWISE = "backward_elementwise"
    BACKWARD = "backward"
    UPDATE = "update"
    OPTIMIZER = "optimizer"


PHASES: tuple[Phase, ...] = tuple(Phase)
"""Every phase, in task-list order."""


class Engine(_Name):
    """The hardware units a task can run on (``MAC_ARRAY``: the dense baseline's array)."""

    FORWARD = "forward_engine"
    BACKWARD = "backward_engine"
    UPDATE = "update_engine"
    ELEMENTWISE = "elementwise"
    MAC_ARRAY = "mac_array"


ENGINES: tuple[Engine, ...] = (Engine.FORWARD, Engine.BACKWARD, Engine.UPDATE, Engine.ELEMENTWISE)
"""H2Learn's four engines (the dense baseline's MAC array is not one of them)."""


class TaskKind(_Name):
    """How a task computes: LUT lookups, multiply-accumulates or element-wise passes."""

    LUT = "lut"
    MAC = "mac"
    ELEMENTWISE = "elementwise"


class TaskKey(NamedTuple):
    """``(layer_index, phase, micro_batch)``: the identity of one engine task.

    The loss and the optimizer belong to no layer; their layer index is
    :data:`NO_LAYER`.  A plain tuple with the same fields compares equal.
    """

    layer_index: int
    phase: str
    micro_batch: int

    @classmethod
    def loss(cls, micro_batch: int) -> TaskKey:
        """The loss task of a micro-batch."""
        return cls(NO_LAYER, Phase.LOSS, micro_batch)

    @classmethod
    def optimizer(cls) -> TaskKey:
        """The single optimizer step after the mini-batch."""
        return cls(NO_LAYER, Phase.OPTIMIZER, 0)


NO_LAYER = -1
"""Layer index of the tasks that belong to no layer (loss, optimizer)."""


# --------------------------------------------------------------------------
# Components and actions (Accelergy style: ``<unit>.<part>`` and an action)
# --------------------------------------------------------------------------


class Part(_Name):
    """The parts an engine is built from (the ``<part>`` of ``<unit>.<part>``)."""

    ADDER = "adder"
    MULTIPLIER = "multiplier"
    COMPARATOR = "comparator"
    SPECIAL = "special"
    LUT = "lut"
    REGISTER_FILE = "register_file"


class Buffer(_Name):
    """The four global on-chip buffers (components without a unit prefix)."""

    WEIGHT = "weight_buffer"
    ACTIVATION = "activation_buffer"
    GRADIENT = "gradient_buffer"
    MEMBRANE = "membrane_buffer"

    @property
    def section(self) -> str:
        """The buffer's section in ``HardwareConfig.buffers`` (``weight_buffer`` -> ``weight``)."""
        return self.value.removesuffix("_buffer")


BUFFERS: tuple[Buffer, ...] = tuple(Buffer)
"""The global buffers, in the order the cost table lists them."""

DRAM = "dram"
"""The off-chip memory component (priced per bit)."""


class Action(_Name):
    """What a component does (the second half of a priced ``(component, action)``)."""

    READ = "read"
    WRITE = "write"
    ADD = "add"
    MULTIPLY = "multiply"
    COMPARE = "compare"
    OP = "op"


def component(unit: str, part: Part) -> str:
    """The component name of ``part`` in ``unit``: ``component("forward_engine", Part.LUT)``."""
    return f"{unit}.{part}"


def buffer_of(name: str) -> Buffer:
    """The :class:`Buffer` named ``name`` (``weight_buffer``) or by its section (``weight``)."""
    for buffer in Buffer:
        if name in (buffer.value, buffer.section):
            return buffer
    raise KeyError(f"no buffer {name!r}; buffers: {', '.join(BUFFERS)}")


def buffer_config(config, name: str):
    """The ``BufferConfig`` of buffer ``name`` in a ``HardwareConfig`` (the one lookup)."""
    return getattr(config.buffers, buffer_of(name).section)


CATEGORY: dict[str, str] = {
    Part.ADDER: "logic",
    Part.MULTIPLIER: "logic",
    Part.COMPARATOR: "logic",
    Part.SPECIAL: "logic",
    Part.LUT: "lut",
    Part.REGISTER_FILE: "lut",
    **{buffer.value: "sram" for buffer in Buffer},
    DRAM: "dram",
}
"""Energy categories by part or component: logic, lut (PE-local SRAM/RF), sram, dram."""


def category(name: str) -> str:
    """The energy category of a component (``forward_engine.lut`` -> ``lut``)."""
    return CATEGORY[name.rsplit(".", 1)[-1]]
