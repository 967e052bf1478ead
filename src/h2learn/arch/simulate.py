"""One training iteration on H2Learn: a trace or a spec plus a config in, cycles/energy/area out.

The stages (SCALE-Sim style, one module each):

    activity (counts per task) -> memory (residency, DRAM traffic)
      -> cycles (per task) -> pipeline (timeline, makespan)
      -> cost (actions priced per component) -> SimResult

``simulate(trace)`` uses trace mode (exact counts); ``simulate(spec)`` uses
statistical mode with the given or default densities.  Ablations are plain
configs: ``simulate(spec, config.with_switches(lut=False))``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from h2learn.arch.actions import ActionContext, task_actions
from h2learn.arch.activity.builder import activity_from_densities, activity_from_trace
from h2learn.arch.activity.tasks import Activity
from h2learn.arch.config import SWITCHES, HardwareConfig, default_config
from h2learn.arch.cost.table import CostTable, build_cost_table, price_actions
from h2learn.arch.cycles import TaskCycles, task_cycles
from h2learn.arch.memory import MemoryPlan, dram_cycles, plan_memory, staging_actions
from h2learn.arch.names import Engine, TaskKey, category
from h2learn.arch.pipeline import Schedule, TaskGraph, TimelineEntry, run_schedule
from h2learn.errors import H2LearnError
from h2learn.spec import Workload

LAYER_COLUMNS: tuple[str, ...] = (
    "layer",
    "kind",
    "forward_cycles",
    "forward_elementwise_cycles",
    "backward_elementwise_cycles",
    "backward_cycles",
    "update_cycles",
    "dram_stall_cycles",
    "buffer_stall_cycles",
    "lookups",
    "lookups_skipped",
    "macs_done",
    "macs_dense",
    "dram_bytes",
    "energy_j",
)
"""Fixed columns of the per-layer CSV rows (SCALE-Sim style)."""


class SimulationError(H2LearnError, ValueError):
    """The workload or its options cannot be simulated; the message says why."""


@dataclass
class TaskResult:
    """One task's cycles, actions and energy (the rows behind every breakdown)."""

    key: TaskKey
    layer: str
    phase: str
    engine: str
    cycles: TaskCycles
    actions: dict[tuple[str, str], float]
    energy_pj: dict[tuple[str, str], float]
    dram_bytes: float

    @property
    def dynamic_pj(self) -> float:
        return sum(self.energy_pj.values())


@dataclass
class SimResult:
    """Cycles, time, energy and area of one training iteration, with every breakdown.

    ``cycles`` is the pipelined makespan when ``optimizations.pipeline`` is on
    (never below the DRAM-bandwidth bound), else the sequential one.  Energy
    is dynamic (priced actions) plus leakage over ``seconds``; leakage is
    spread over engines, layers and phases in proportion to task time.
    """

    network: str
    mode: str
    batch_size: int
    time_steps: int
    config: HardwareConfig
    cycles: float
    seconds: float
    makespan_pipelined_cycles: float
    makespan_sequential_cycles: float
    dram_bound_cycles: float
    energy_j: float
    leakage_j: float
    energy_by_component_j: dict[str, float]
    energy_by_category_j: dict[str, float]
    energy_by_engine_j: dict[str, float]
    energy_by_layer_j: dict[str, float]
    energy_by_phase_j: dict[str, float]
    area_mm2: float
    area_by_component_mm2: dict[str, float]
    timeline: list[TimelineEntry]
    sequential_timeline: list[TimelineEntry]
    utilization: dict[str, float]
    activity: Activity
    memory: MemoryPlan
    tasks: list[TaskResult] = field(repr=False, default_factory=list)

    @property
    def power_w(self) -> float:
        return self.energy_j / self.seconds if self.seconds > 0 else 0.0

    @property
    def dram_bytes(self) -> float:
        return self.memory.dram_bytes

    def layer_rows(self) -> list[dict[str, Any]]:
        """One row per layer (plus loss and optimizer) with :data:`LAYER_COLUMNS`."""
        rows: dict[str, dict[str, Any]] = {}
        kinds = {layer.name: layer.kind for layer in self.activity.spec.layers}
        for task in self.tasks:
            row = rows.setdefault(
                task.layer,
                {col: 0.0 for col in LAYER_COLUMNS}
                | {"layer": task.layer, "kind": kinds.get(task.layer, task.layer)},
            )
            column = f"{task.phase}_cycles"
            if column in row:
                row[column] += task.cycles.total
            row["dram_stall_cycles"] += task.cycles.dram_stall
            row["buffer_stall_cycles"] += task.cycles.buffer_stall
            row["dram_bytes"] += task.dram_bytes
        for (layer, _phase), counts in self.activity.by_layer_phase().items():
            for name in ("lookups", "lookups_skipped", "macs_done", "macs_dense"):
                rows[layer][name] += counts.get(name, 0.0)
        for layer, energy in self.energy_by_layer_j.items():
            rows[layer]["energy_j"] = energy
        return list(rows.values())

    def layer_csv(self) -> str:
        """:meth:`layer_rows` as CSV text with a header."""
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(LAYER_COLUMNS))
        writer.writeheader()
        writer.writerows(self.layer_rows())
        return buffer.getvalue()

    def summary(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "mode": self.mode,
            "batch_size": self.batch_size,
            "time_steps": self.time_steps,
            "clock_ghz": self.config.clock_ghz,
            "cycles": self.cycles,
            "seconds": self.seconds,
            "energy_j": self.energy_j,
            "power_w": self.power_w,
            "area_mm2": self.area_mm2,
            "makespan_pipelined_cycles": self.makespan_pipelined_cycles,
            "makespan_sequential_cycles": self.makespan_sequential_cycles,
            "dram_bound_cycles": self.dram_bound_cycles,
            "dram_bytes": self.dram_bytes,
        }

    def to_dict(self, timeline: bool = True) -> dict[str, Any]:
        """A JSON-safe dictionary of everything (the timeline can be left out)."""
        out = {
            **self.summary(),
            "leakage_j": self.leakage_j,
            "energy_by_component_j": self.energy_by_component_j,
            "energy_by_category_j": self.energy_by_category_j,
            "energy_by_engine_j": self.energy_by_engine_j,
            "energy_by_layer_j": self.energy_by_layer_j,
            "energy_by_phase_j": self.energy_by_phase_j,
            "area_by_component_mm2": self.area_by_component_mm2,
            "utilization": self.utilization,
            "config": self.config.to_dict(),
            "memory": self.memory.to_dict(),
            "layers": self.layer_rows(),
            "events": self.activity.to_dict(),
        }
        if timeline:
            out["timeline"] = [entry.to_dict() for entry in self.timeline]
            out["sequential_timeline"] = [entry.to_dict() for entry in self.sequential_timeline]
        return out


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


def evaluate_tasks(
    activity: Activity,
    config: HardwareConfig,
    table: CostTable,
    mac_unit: str = Engine.BACKWARD,
) -> tuple[list[TaskResult], MemoryPlan]:
    """Actions, energy and cycles of every task (no scheduling).

    Outside trace mode most micro-batches of a layer and phase have identical
    counts, so their engine actions are computed once per distinct count set.
    """
    spec = activity.spec
    plan = plan_memory(spec, config, activity.tasks)
    context = ActionContext.of(config)
    reuse = activity.mode != "trace"
    cache: dict[tuple, dict] = {}
    results = []
    for task in activity.tasks:
        signature = (task.layer_index, task.phase, tuple(task.counts.items()))
        if reuse and signature in cache:
            actions = dict(cache[signature])
        else:
            actions = task_actions(task, context, spec, mac_unit)
            cache[signature] = dict(actions)
        for key, count in staging_actions(plan, task.key, config).items():
            actions[key] = actions.get(key, 0.0) + count
        moved = plan.task_bytes(task.key)
        cycles = task_cycles(task, actions, moved, config)
        energy = price_actions(actions, table)
        results.append(
            TaskResult(
                task.key, task.layer, task.phase, task.engine, cycles, actions, energy, moved
            )
        )
    return results, plan


def _spread(
    results: list[TaskResult], attribute: str, leakage_j: float, durations_total: float
) -> dict[str, float]:
    """Energy per value of a task attribute, leakage spread by task time."""
    out: dict[str, float] = {}
    for result in results:
        name = getattr(result, attribute)
        share = result.cycles.total / durations_total if durations_total else 0.0
        out[name] = out.get(name, 0.0) + result.dynamic_pj * 1e-12 + leakage_j * share
    return out


def assemble(
    activity: Activity,
    config: HardwareConfig,
    table: CostTable,
    results: list[TaskResult],
    plan: MemoryPlan,
    pipelined: bool,
    area_components: Mapping[str, float] | None = None,
) -> SimResult:
    """Schedule the tasks and collect every breakdown into a :class:`SimResult`."""
    graph = TaskGraph(activity.spec, activity.tasks, config)
    durations = {result.key: result.cycles.total for result in results}
    pipe: Schedule = run_schedule(graph, durations, pipelined=True)
    seq: Schedule = run_schedule(graph, durations, pipelined=False)
    bound = dram_cycles(plan.dram_bytes, config)
    pipe_makespan = max(pipe.makespan, bound)
    cycles = pipe_makespan if pipelined else seq.makespan
    seconds = cycles * config.cycle_seconds
    area = (
        dict(area_components)
        if area_components is not None
        else {name: entry.value for name, entry in table.area.items()}
    )
    area_mm2 = sum(area.values())
    leakage_j = (table.leakage.value if table.leakage else 0.0) * 1e-3 * area_mm2 * seconds
    by_component: dict[str, float] = {}
    by_category: dict[str, float] = {}
    for result in results:
        for (component, _action), pj in result.energy_pj.items():
            by_component[component] = by_component.get(component, 0.0) + pj * 1e-12
            group = category(component)
            by_category[group] = by_category.get(group, 0.0) + pj * 1e-12
    by_component["leakage"] = leakage_j
    by_category["leakage"] = leakage_j
    total_cycles = sum(durations.values())
    schedule = pipe if pipelined else seq
    return SimResult(
        network=activity.spec.name,
        mode=activity.mode,
        batch_size=activity.batch_size,
        time_steps=activity.time_steps,
        config=config,
        cycles=cycles,
        seconds=seconds,
        makespan_pipelined_cycles=pipe_makespan,
        makespan_sequential_cycles=seq.makespan,
        dram_bound_cycles=bound,
        energy_j=sum(by_component.values()),
        leakage_j=leakage_j,
        energy_by_component_j=by_component,
        energy_by_category_j=by_category,
        energy_by_engine_j=_spread(results, "engine", leakage_j, total_cycles),
        energy_by_layer_j=_spread(results, "layer", leakage_j, total_cycles),
        energy_by_phase_j=_spread(results, "phase", leakage_j, total_cycles),
        area_mm2=area_mm2,
        area_by_component_mm2=area,
        timeline=schedule.entries,
        sequential_timeline=seq.entries,
        utilization={e: b / cycles if cycles else 0.0 for e, b in schedule.busy.items()},
        activity=activity,
        memory=plan,
        tasks=results,
    )


def h2learn_area_components(table: CostTable) -> dict[str, float]:
    """Area of H2Learn's components (everything in its table but a dense MAC array)."""
    return {
        name: e.value for name, e in table.area.items() if not name.startswith(Engine.MAC_ARRAY)
    }


def evaluate(activity: Activity, config: HardwareConfig) -> SimResult:
    """Cycles, energy and area of an :class:`Activity` on ``config``."""
    table = build_cost_table(config)
    results, plan = evaluate_tasks(activity, config, table)
    return assemble(
        activity,
        config,
        table,
        results,
        plan,
        config.optimizations.pipeline,
        h2learn_area_components(table),
    )


def build_activity(workload, config: HardwareConfig, densities=None) -> Activity:
    """Trace -> trace mode; Workload -> statistical mode (densities or the defaults)."""
    if isinstance(workload, Workload):
        return activity_from_densities(workload, densities, config)
    from h2learn.workload.trace import Trace

    if isinstance(workload, Trace):
        if densities is not None:
            raise SimulationError("densities apply to a Workload; a trace has its own data")
        return activity_from_trace(workload, config)
    raise SimulationError(f"simulate needs a Trace or a Workload, got {type(workload).__name__}")


def simulate(
    workload,
    config: HardwareConfig | None = None,
    densities: Mapping[str, Mapping[str, float | None]] | None = None,
) -> SimResult:
    """Model one BPTT training iteration of ``workload`` on H2Learn.

    Args:
        workload: a :class:`~h2learn.workload.trace.Trace` (trace mode: exact
            counts) or a :class:`~h2learn.spec.Workload` (statistical mode).
        config: the hardware (default: :func:`~h2learn.arch.config.default_config`).
        densities: statistical mode only; per weighted layer ``input``,
            ``mask``, ``du_psum``, ``lower_mask`` (``"*"`` for all layers).
    """
    config = config or default_config()
    return evaluate(build_activity(workload, config, densities), config)


def ablations(
    workload, config: HardwareConfig | None = None, densities=None
) -> dict[str, SimResult]:
    """The full design and each optimisation switched off alone (``no_<switch>``), plus all off."""
    config = config or default_config()
    results = {"h2learn": simulate(workload, config, densities)}
    for switch in SWITCHES:
        results[f"no_{switch}"] = simulate(
            workload, config.with_switches(**{switch: False}), densities
        )
    everything_off = config.with_switches(**dict.fromkeys(SWITCHES, False))
    results["all_off"] = simulate(workload, everything_off, densities)
    return results
