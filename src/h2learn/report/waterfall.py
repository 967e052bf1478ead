"""The gap to the paper, taken apart: one stated assumption at a time, per benchmark.

Our default design lands outside the paper's headline ranges (docs/reproduction.md).
The waterfall starts from the default comparison of each benchmark (statistical
mode, :data:`~h2learn.workload.densities.STATED_DENSITIES`) and changes one
assumption at a time, each to a *cited* alternative (:data:`ASSUMPTIONS`):
technology node, clock, the paper's area, batch-norm statistics, batch size,
the GPU's numerics, DRAM energy per bit, the cost table and the Lonic preset.
Every step is written as a comparison config (:mod:`h2learn.compare`) under
``waterfall/<benchmark>/NN-<name>.yaml``; simulating that file alone gives the
step's recorded figures.

:func:`smallest_set` then searches the combinations of the steps (at most one
value per assumption) in order of size for the smallest under which every
benchmark's speedup, energy saving and area saving lands inside the paper's
ranges; where none does it says which figure refuses.  Nothing is fitted: the
only tuned quantity is the buffer size of the area step, solved so that the
chip has the paper's area (the V100's 815 mm^2 / 7.38).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from h2learn.arch.config import (
    ConfigError,
    HardwareConfig,
    config_from_dict,
    default_config,
    get_field,
    set_fields,
)
from h2learn.baselines.gpu import V100
from h2learn.compare import (
    BaselineSection,
    ComparisonConfig,
    WorkloadSection,
    check_cost_table,
    gpu_step,
    ratios,
)
from h2learn.errors import H2LearnError
from h2learn.report.area import PE_FIELDS, design_area_mm2, size_to_area
from h2learn.report.assumptions import ASSUMPTIONS, PAPER_V100, Assumption
from h2learn.workload.densities import STATED_DENSITIES

METRICS: tuple[str, ...] = ("speedup", "energy_saving", "area_saving")

PAPER_RANGES: dict[str, tuple[float, float]] = dict(PAPER_V100)
"""The paper's headline figures vs the V100 (:data:`~h2learn.report.assumptions.PAPER_V100`).

A figure *lands* when it rounds, to the paper's two decimals, into the range:
the area saving must round to 7.38x."""

V100_DIE_MM2 = V100.die_area_mm2
"""NVIDIA V100 die area, 815 mm^2, as the V100 model has it (its source: the V100 whitepaper)."""

PAPER_AREA_MM2 = V100_DIE_MM2 / PAPER_RANGES["area_saving"][0]
"""The chip area the paper's 7.38x area saving implies: 815 / 7.38 = 110.4 mm^2."""


PE_SCALES: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 4.0)
"""[ours] engine sizes the area step tries (x the default PE counts and element-wise lanes)."""


def lands(metric: str, value: float) -> bool:
    """Whether ``value`` rounds (two decimals, as the paper prints) into the paper's range."""
    low, high = PAPER_RANGES[metric]
    return low <= round(value, 2) <= high


# --------------------------------------------------------------------------
# Applying assumptions
# --------------------------------------------------------------------------


@dataclass
class Sizing:
    """The area step's choice: the engine scale picked by a sweep, reused in combinations."""

    pe_scale: float = 1.0
    candidates: list[dict[str, Any]] = field(default_factory=list)


def base_setup(benchmark: Any, batch_size: int, hardware: HardwareConfig) -> ComparisonConfig:
    """Our default comparison of one benchmark: the hardware, its run, fp32 on the V100.

    A benchmark with spec ``overrides`` beyond what a comparison config's
    ``workload:`` section holds is refused: its step files could not reproduce it.
    """
    if getattr(benchmark, "overrides", None):
        raise H2LearnError(
            f"benchmark {benchmark.name}: spec overrides {sorted(benchmark.overrides)} cannot be "
            "written to a comparison config (workload: has model, num_classes, time_steps, "
            "batch_size, densities)"
        )
    workload = WorkloadSection(
        model=benchmark.model,
        num_classes=benchmark.num_classes,
        time_steps=benchmark.time_steps,
        batch_size=batch_size,
        densities={key: dict(value) for key, value in STATED_DENSITIES.items()},
    )
    return ComparisonConfig(hardware, workload, BaselineSection())


def apply(
    setup: ComparisonConfig, assumptions: Sequence[Assumption], sizing: Sizing
) -> ComparisonConfig:
    """``setup`` with ``assumptions`` applied: preset, then fields, then the area sizing."""
    hardware = setup.hardware
    for assumption in assumptions:
        if assumption.preset is not None:
            hardware = config_from_dict(dict(assumption.preset))
    changes: dict[str, Any] = {}
    workload: dict[str, Any] = {}
    baseline: dict[str, Any] = {}
    for assumption in assumptions:
        changes.update(assumption.hardware)
        workload.update(assumption.workload)
        baseline.update(assumption.baseline)
    hardware = set_fields(hardware, changes) if changes else hardware
    if any(assumption.sized for assumption in assumptions):
        hardware = sized(hardware, sizing.pe_scale)
    names = "+".join(a.name for a in assumptions) or "default"
    hardware = set_fields(hardware, {"name": f"{setup.hardware.name}+{names}"[:120]})
    return replace(
        setup,
        hardware=hardware,
        workload=setup.workload.model_copy(update=workload),
        baseline=setup.baseline.model_copy(update=baseline),
    )


def sized(hardware: HardwareConfig, pe_scale: float) -> HardwareConfig:
    """``hardware`` at the paper's area, engines at ``pe_scale`` or the largest smaller scale
    of :data:`PE_SCALES` that fits (an older node leaves less room for buffers)."""
    scales = [pe_scale, *sorted((s for s in PE_SCALES if s < pe_scale), reverse=True)]
    for scale in scales:
        try:
            return size_to_area(hardware, PAPER_AREA_MM2, scale)
        except ConfigError:
            continue
    raise ConfigError(
        f"no engine scale fits {PAPER_AREA_MM2:.1f} mm^2 at {hardware.technology_nm} nm"
    )


def skip_reason(assumption: Assumption, hardware: HardwareConfig | None = None) -> str | None:
    """Why an assumption cannot be a step in this build (None: it can), judged on ``hardware``."""
    try:
        setup = ComparisonConfig(hardware or default_config())
        check_cost_table(apply(setup, [assumption], Sizing()).hardware)
    except H2LearnError as exc:
        return f"not loadable here: {exc}"
    return None


# --------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------


class Evaluator:
    """H2Learn and V100-model figures of comparison configs, cached (statistical mode)."""

    def __init__(self) -> None:
        self._h2: dict[str, Any] = {}
        self._gpu: dict[str, Any] = {}

    def results(self, setup: ComparisonConfig) -> tuple[Any, Any]:
        """``(H2Learn result, V100 result)`` of one comparison config, as simulated alone."""
        from h2learn.arch.simulate import simulate

        run = setup.workload.model_dump_json()
        key = setup.hardware.model_copy(update={"name": ""}).model_dump_json() + run
        if key not in self._h2:
            self._h2[key] = simulate(setup.spec(), setup.hardware, setup.workload.densities)
        gpu_key = run + setup.baseline.gpu_numerics
        if gpu_key not in self._gpu:
            self._gpu[gpu_key] = gpu_step(setup.spec(), setup.baseline.gpu_numerics)
        return self._h2[key], self._gpu[gpu_key]

    def figures(self, setup: ComparisonConfig) -> dict[str, Any]:
        """The step record: ratios vs the V100 and both designs' totals."""
        h2, gpu = self.results(setup)
        figures: dict[str, Any] = ratios(h2, gpu)
        figures["h2learn"] = {
            "seconds": h2.seconds,
            "energy_j": h2.energy_j,
            "power_w": h2.power_w,
            "area_mm2": h2.area_mm2,
        }
        figures["v100_model"] = {
            "seconds": gpu.seconds,
            "energy_j": gpu.energy_j,
            "power_w": gpu.power_w,
            "numerics": setup.baseline.gpu_numerics,
        }
        figures["lands"] = {m: lands(m, figures[m]) for m in METRICS}
        return figures


def choose_pe_scale(setups: Sequence[ComparisonConfig], evaluator: Evaluator) -> Sizing:
    """The area step's sweep: each engine scale, buffers solved to the paper's area; best EDP.

    Best = the lowest geometric mean over the benchmarks of time x energy per
    iteration (both matter in the paper's comparison).
    """
    sizing = Sizing()
    best = math.inf
    for scale in PE_SCALES:
        row: dict[str, Any] = {"pe_scale": scale}
        try:
            hardware = size_to_area(setups[0].hardware, PAPER_AREA_MM2, scale)
            trial = [replace(setup, hardware=hardware) for setup in setups]
            edps = []
            for setup in trial:
                h2, _ = evaluator.results(setup)
                edps.append(h2.seconds * h2.energy_j)
        except H2LearnError as exc:
            row["infeasible"] = str(exc)
            sizing.candidates.append(row)
            continue
        geo = math.exp(sum(math.log(v) for v in edps) / len(edps))
        row.update(
            {
                "edp_geomean_js": geo,
                "pe_counts": {path: get_field(hardware, path) for path in PE_FIELDS},
                "buffer_kib": {
                    name: getattr(hardware.buffers, name).size_kib
                    for name in ("weight", "activation", "gradient", "membrane")
                },
            }
        )
        sizing.candidates.append(row)
        if geo < best:
            best, sizing.pe_scale = geo, scale
    if best == math.inf:
        raise H2LearnError(f"no engine scale of {PE_SCALES} fits {PAPER_AREA_MM2:.1f} mm^2")
    return sizing


# --------------------------------------------------------------------------
# The waterfall of one benchmark
# --------------------------------------------------------------------------


def benchmark_steps(
    setup: ComparisonConfig,
    steps: Sequence[tuple[Assumption, str | None]],
    sizing: Sizing,
    evaluator: Evaluator,
    write: Callable[[str, ComparisonConfig, str], str],
) -> list[dict[str, Any]]:
    """The default and every step alone: change, source, file, figures, effect vs default."""
    default = evaluator.figures(setup)
    records = [
        {
            "step": 0,
            "name": "default",
            "assumption": f"our default ({setup.hardware.name}, stated densities, fp32 V100)",
            "source": "docs/cost-model.md",
            "change": {},
            "file": write("00-default", setup, "our default comparison"),
            **default,
        }
    ]
    for number, (assumption, reason) in enumerate(steps, start=1):
        record: dict[str, Any] = {
            "step": number,
            "name": assumption.name,
            "assumption": assumption.label,
            "source": assumption.source,
            "change": describe(assumption),
        }
        if reason is not None:
            records.append({**record, "skipped": reason})
            continue
        changed = apply(setup, [assumption], sizing)
        figures = evaluator.figures(changed)
        note = f"{assumption.label}; source: {assumption.source}"
        record["file"] = write(f"{number:02d}-{assumption.name}", changed, note)
        record.update(figures)
        record["effect"] = {m: figures[m] / default[m] for m in METRICS}
        records.append(record)
    return records


def describe(assumption: Assumption) -> dict[str, Any]:
    """What a step changes, as ``{field: value}`` (sections prefixed), for the report."""
    change: dict[str, Any] = {}
    if assumption.preset is not None:
        change["hardware"] = "configs/lonic-h2learn.yaml"
    change.update(assumption.hardware)
    change.update({f"workload.{k}": v for k, v in assumption.workload.items()})
    change.update({f"baseline.{k}": v for k, v in assumption.baseline.items()})
    if assumption.sized:
        change["area_mm2"] = round(PAPER_AREA_MM2, 2)
    return change


# --------------------------------------------------------------------------
# The smallest set of assumptions that lands inside the paper's ranges
# --------------------------------------------------------------------------


def combinations(usable: Sequence[Assumption]) -> list[tuple[Assumption, ...]]:
    """Every set of usable assumptions with at most one per axis, smallest first."""
    out: list[tuple[Assumption, ...]] = []
    for size in range(len(usable) + 1):
        for combo in itertools.combinations(usable, size):
            axes = [a.axis for a in combo]
            if len(set(axes)) < len(axes):
                continue
            if any(axis in a.excludes for a in combo for axis in axes):
                continue
            out.append(combo)
    return out


def _area_lands(setup: ComparisonConfig) -> bool:
    return lands("area_saving", V100_DIE_MM2 / design_area_mm2(setup.hardware))


def _distance(figures: Mapping[str, float]) -> float:
    """How far the figures lie outside the paper's ranges (sum of log ratios; 0 inside)."""
    total = 0.0
    for metric in METRICS:
        low, high = PAPER_RANGES[metric]
        value = round(figures[metric], 2)
        if value < low:
            total += math.log(low / value)
        elif value > high:
            total += math.log(value / high)
    return total


def smallest_set(
    setups: Sequence[ComparisonConfig],
    usable: Sequence[Assumption],
    sizing: Sizing,
    evaluator: Evaluator,
    max_size: int | None = None,
) -> dict[str, Any]:
    """Search the combinations, smallest first, for those where every benchmark lands.

    A combination whose area cannot round to 7.38x is rejected without
    simulating; the others are simulated benchmark by benchmark (stopping at
    the first that misses).  Returns the smallest landing sets, or, where none
    lands, the closest set and, per figure, the span reached on the first
    benchmark over every area-landing combination.
    """
    found: list[tuple[Assumption, ...]] = []
    tried = simulated = 0
    closest: tuple[float, tuple[Assumption, ...], dict[str, Any]] | None = None
    spans: dict[str, list[float]] = {m: [math.inf, -math.inf] for m in [*METRICS, "power_ratio"]}
    for combo in combinations(usable):
        if max_size is not None and len(combo) > max_size:
            break
        if found and len(combo) > len(found[0]):
            break
        tried += 1
        try:
            changed = [apply(s, combo, sizing) for s in setups]
            if not _area_lands(changed[0]):
                continue
            simulated += 1
            first = evaluator.figures(changed[0])
            ok = all(first["lands"].values()) and all(
                all(evaluator.figures(s)["lands"].values()) for s in changed[1:]
            )
        except H2LearnError:
            continue
        first["power_ratio"] = first["h2learn"]["power_w"] / first["v100_model"]["power_w"]
        for metric, (low, high) in spans.items():
            spans[metric] = [min(low, first[metric]), max(high, first[metric])]
        if ok:
            found.append(combo)
        distance = _distance(first)
        if closest is None or distance < closest[0]:
            closest = (distance, combo, first)
    result: dict[str, Any] = {
        "found": bool(found),
        "combinations_tried": tried,
        "combinations_simulated": simulated,
        "max_size": max_size,
        "sets": [[a.name for a in combo] for combo in found],
    }
    if not found and closest is not None:
        result["closest"] = {
            "assumptions": [a.name for a in closest[1]],
            "benchmark": setups[0].workload.model,
            **{m: closest[2][m] for m in METRICS},
            "h2learn_power_w": closest[2]["h2learn"]["power_w"],
            "v100_power_w": closest[2]["v100_model"]["power_w"],
        }
        result["spans_first_benchmark"] = spans
        result["power_ratio_needed"] = [
            PAPER_RANGES["speedup"][0] / PAPER_RANGES["energy_saving"][1],
            PAPER_RANGES["speedup"][1] / PAPER_RANGES["energy_saving"][0],
        ]
        result["refusing"] = [m for m in METRICS if not lands(m, closest[2][m])]
    return result


# --------------------------------------------------------------------------
# The whole waterfall
# --------------------------------------------------------------------------


def run_waterfall(
    out_dir: Path,
    benchmarks: Sequence[Any],
    hardware: HardwareConfig,
    batch_size: int,
    max_size: int | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Every benchmark's steps, their files under ``out_dir/waterfall``, and the set search.

    Returns ``{"benchmarks": {name: [step, ...]}, "area_sizing": ..., "smallest_set": ...}``;
    file paths in it are relative to ``out_dir``.
    """
    from h2learn.compare import dump_comparison

    evaluator = Evaluator()
    setups = [base_setup(bench, batch_size, hardware) for bench in benchmarks]
    steps = [(assumption, skip_reason(assumption, hardware)) for assumption in ASSUMPTIONS]
    if progress is not None:
        progress("waterfall: area sweep")
    sizing = choose_pe_scale(setups, evaluator)
    out: dict[str, Any] = {"benchmarks": {}}
    for bench, setup in zip(benchmarks, setups, strict=True):
        if progress is not None:
            progress(f"waterfall: {bench.name}")
        folder = out_dir / "waterfall" / bench.name
        folder.mkdir(parents=True, exist_ok=True)

        def write(stem: str, config: ComparisonConfig, note: str, folder: Path = folder) -> str:
            path = folder / f"{stem}.yaml"
            header = (
                f"# h2learn reproduce, waterfall step {stem} of {folder.name}: {note}\n"
                "# simulate alone: h2learn simulate --config THIS_FILE --json\n"
            )
            path.write_text(header + dump_comparison(config))
            return path.relative_to(out_dir).as_posix()

        out["benchmarks"][bench.name] = benchmark_steps(setup, steps, sizing, evaluator, write)
    if progress is not None:
        progress("waterfall: smallest set")
    usable = [assumption for assumption, reason in steps if reason is None]
    search = smallest_set(setups, usable, sizing, evaluator, max_size)
    search["skipped"] = {assumption.name: reason for assumption, reason in steps if reason}
    if "closest" in search:
        search["closest"]["benchmark"] = benchmarks[0].name
    if search["found"]:
        chosen = [a for a in usable if a.name in search["sets"][0]]
        search["files"] = {}
        search["figures"] = {}
        for bench, setup in zip(benchmarks, setups, strict=True):
            changed = apply(setup, chosen, sizing)
            path = out_dir / "waterfall" / bench.name / "smallest-set.yaml"
            names = ", ".join(search["sets"][0])
            path.write_text(f"# the smallest set of assumptions landing: {names}\n")
            with path.open("a") as handle:
                handle.write(dump_comparison(changed))
            search["files"][bench.name] = path.relative_to(out_dir).as_posix()
            search["figures"][bench.name] = {m: evaluator.figures(changed)[m] for m in METRICS}
    out["area_sizing"] = {
        "target_mm2": PAPER_AREA_MM2,
        "pe_scales": list(PE_SCALES),
        "chosen_pe_scale": sizing.pe_scale,
        "candidates": sizing.candidates,
    }
    out["smallest_set"] = search
    return out
