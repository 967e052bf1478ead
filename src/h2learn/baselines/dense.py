"""A dense accelerator of equal area: the baseline that isolates what H2Learn's ideas buy.

Design [ours]: one array of multiply-accumulate units (fp MAC + a register
file per ``macs_per_pe`` units, exactly the Backward Engine's MAC) runs the
forward pass, the backward pass and the weight update, one task at a time,
with no LUTs, no sparsity and no overlap between phases.  Everything else is
H2Learn's: the same element-wise units, the same four buffers, the same DRAM,
clock, node, number format, schedule and memory model.  Binary spikes are
stored as bits as in H2Learn but multiplied like any other operand.

Its MAC count is chosen so that its total area equals H2Learn's::

    mac_units = floor((area(H2Learn) - area(buffers) - area(element-wise)) / area(one MAC))

(:func:`dense_mac_units`); the remainder left by the floor is under one MAC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from h2learn.arch.activity.builder import ActivityBuilder
from h2learn.arch.activity.dense import dense_task
from h2learn.arch.activity.statistical import expected_backward
from h2learn.arch.activity.tasks import Activity, MacWork
from h2learn.arch.config import HardwareConfig, default_config
from h2learn.arch.cost.table import CostTable, build_cost_table, mac_unit_area_mm2
from h2learn.arch.names import Buffer, Engine, Phase
from h2learn.arch.simulate import (
    SimResult,
    SimulationError,
    assemble,
    evaluate_tasks,
    h2learn_area_components,
)
from h2learn.spec import LayerSpec, Workload

MAC_ARRAY = Engine.MAC_ARRAY
"""The dense design's one MAC array (its components are ``mac_array.<part>``)."""


def _shared_area(table: CostTable) -> dict[str, float]:
    """Components both designs have: element-wise units and the global buffers."""
    return {
        name: entry.value
        for name, entry in table.area.items()
        if name.startswith(Engine.ELEMENTWISE) or name in tuple(Buffer)
    }


def dense_mac_units(config: HardwareConfig) -> int:
    """MAC units that make the dense design's area equal to H2Learn's (see module docstring)."""
    table = build_cost_table(config)
    h2learn = sum(h2learn_area_components(table).values())
    spare = h2learn - sum(_shared_area(table).values())
    units = math.floor(spare / mac_unit_area_mm2(config))
    if units < 1:
        raise SimulationError("H2Learn's engines are smaller than one MAC; no dense design fits")
    return units


def dense_area_components(config: HardwareConfig, units: int) -> dict[str, float]:
    table = build_cost_table(config, mac_array_units=units)
    area = _shared_area(table)
    area.update({n: e.value for n, e in table.area.items() if n.startswith(MAC_ARRAY)})
    return area


@dataclass
class DenseResult:
    """The dense accelerator's iteration: time, energy, area (and the full SimResult)."""

    mac_units: int
    h2learn_area_mm2: float
    sim: SimResult

    @property
    def seconds(self) -> float:
        return self.sim.seconds

    @property
    def cycles(self) -> float:
        return self.sim.cycles

    @property
    def energy_j(self) -> float:
        return self.sim.energy_j

    @property
    def area_mm2(self) -> float:
        return self.sim.area_mm2

    @property
    def power_w(self) -> float:
        return self.sim.power_w

    def to_dict(self) -> dict[str, Any]:
        return {
            "design": "dense MAC array of equal area",
            "mac_units": self.mac_units,
            "h2learn_area_mm2": self.h2learn_area_mm2,
            "seconds": self.seconds,
            "cycles": self.cycles,
            "energy_j": self.energy_j,
            "power_w": self.power_w,
            "area_mm2": self.area_mm2,
            "area_by_component_mm2": self.sim.area_by_component_mm2,
            "energy_by_component_j": self.sim.energy_by_component_j,
            "energy_by_category_j": self.sim.energy_by_category_j,
            "energy_by_phase_j": self.sim.energy_by_phase_j,
            "memory": self.sim.memory.to_dict(),
        }


class DenseProvider:
    """A :class:`~h2learn.arch.activity.builder.CountProvider` for the dense design.

    Dense counts and balanced loads on ``units`` MAC units, no sparsity of
    any kind.  Spikes stay one bit each in the buffers, so forward and update
    tasks on binary inputs record ``binary_input`` in their work.
    """

    def __init__(self, config: HardwareConfig, steps: int, units: int):
        self.config = config.with_switches(input_sparsity=False, output_sparsity=False)
        self.steps, self.units = steps, units

    def forward(
        self, index: int, layer: LayerSpec, start: int, stop: int
    ) -> tuple[dict[str, float], MacWork]:
        steps = self.steps * (stop - start)
        return dense_task(Phase.FORWARD, layer, steps, self.units, layer.binary_input)

    def update(
        self, index: int, layer: LayerSpec, start: int, stop: int
    ) -> tuple[dict[str, float], MacWork]:
        steps = self.steps * (stop - start)
        return dense_task(Phase.UPDATE, layer, steps, self.units, layer.binary_input)

    def backward(
        self, index: int, layer: LayerSpec, start: int, stop: int
    ) -> tuple[dict[str, float], MacWork]:
        steps = self.steps * (stop - start)
        return expected_backward(layer, self.config, steps, 1.0, None, units=self.units)


def dense_activity(spec: Workload, config: HardwareConfig, units: int) -> Activity:
    """Every task of one iteration on the dense design (counts are data-independent)."""
    builder = ActivityBuilder(spec, config, spec.batch_size, spec.time_steps, mac_array=MAC_ARRAY)
    tasks = builder.build(DenseProvider(config, spec.time_steps, units))
    return Activity(
        spec, spec.batch_size, spec.time_steps, config.schedule.micro_batch, "dense", tasks
    )


def _spec_of(workload) -> Workload:
    if isinstance(workload, Workload):
        return workload
    from h2learn.workload.trace import Trace

    if isinstance(workload, Trace):
        return Workload(workload.spec.network, workload.batch_size, workload.time_steps)
    raise SimulationError(
        f"simulate_dense needs a Trace or a Workload, got {type(workload).__name__}"
    )


def simulate_dense(workload, config: HardwareConfig | None = None) -> DenseResult:
    """The dense, equal-area accelerator running one iteration of ``workload``.

    ``config`` is the H2Learn design whose area, buffers, DRAM, clock and
    node the dense design shares (default: the default H2Learn config).  The
    work of a dense design does not depend on the data, so a trace only
    contributes its network, batch and time steps.
    """
    config = config or default_config()
    units = dense_mac_units(config)
    h2learn_area = sum(h2learn_area_components(build_cost_table(config)).values())
    dense_config = config.with_switches(pipeline=False)
    spec = _spec_of(workload)
    activity = dense_activity(spec, dense_config, units)
    table = build_cost_table(dense_config, mac_array_units=units)
    results, plan = evaluate_tasks(activity, dense_config, table, mac_unit=MAC_ARRAY)
    sim = assemble(
        activity,
        dense_config,
        table,
        results,
        plan,
        pipelined=False,
        area_components=dense_area_components(dense_config, units),
    )
    return DenseResult(units, h2learn_area, sim)
