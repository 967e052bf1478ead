"""The paper's comparison, reproduced: H2Learn vs the V100 and a dense accelerator.

For every benchmark one training iteration is simulated on H2Learn (trace
mode where the dataset is on this machine, statistical mode from stated
densities where it is not), on the modelled V100 and on the dense
accelerator of equal area.  ``reproduce(out_dir)`` writes ``summary.json``,
one CSV per benchmark with per-layer rows, PNG figures and ``report.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h2learn.arch.config import HardwareConfig, default_config, set_field
from h2learn.arch.simulate import ablations, simulate
from h2learn.baselines.gpu import v100_training_step
from h2learn.compare import compare_designs
from h2learn.errors import DataError
from h2learn.report.assumptions import PAPER_V100
from h2learn.report.grounding import TrainedSchedule, cpu_validation, trace_densities, trained_row
from h2learn.spec import Workload, build_spec
from h2learn.workload.densities import STATED_DENSITIES

PAPER: dict[str, Any] = {
    metric: low if low == high else (low, high) for metric, (low, high) in PAPER_V100.items()
}
"""H2Learn vs NVIDIA V100, from the paper's abstract (``report.assumptions.PAPER_V100``):
a single figure (the area saving) as a number, a range as ``(low, high)``."""

__all__ = ["BENCHMARKS", "PAPER", "STATED_DENSITIES", "Benchmark", "reproduce", "run_benchmark"]


@dataclass(frozen=True)
class Benchmark:
    """One row of the suite: a zoo model at the paper's T, and the dataset behind it."""

    name: str
    model: str
    num_classes: int
    time_steps: int
    dataset: str | None
    overrides: dict[str, Any] = field(default_factory=dict)

    def spec(self, batch_size: int) -> Workload:
        return build_spec(
            self.model,
            num_classes=self.num_classes,
            time_steps=self.time_steps,
            batch_size=batch_size,
            **self.overrides,
        )


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark("cifar10-vgg", "cifar-vgg", 10, 6, "cifar10"),
    Benchmark("cifar100-vgg", "cifar-vgg", 100, 6, "cifar100"),
    Benchmark("dvs-gesture", "dvs-gesture", 11, 10, "dvs-gesture"),
    Benchmark("dvs-cifar10", "dvs-cifar10", 10, 10, None),
    Benchmark("fmnist-conv", "fmnist-conv", 10, 6, "fashion-mnist"),
)


def _trace_if_possible(bench: Benchmark, batch_size: int, use_traces: bool):
    """A trace of a fresh model on the real dataset, or None when its files are absent."""
    if not use_traces or bench.dataset is None:
        return None
    from h2learn.workload.record import record_from_dataset

    try:
        return record_from_dataset(
            bench.model, bench.dataset, batch_size=batch_size, time_steps=bench.time_steps
        )
    except DataError:
        return None


def run_benchmark(
    bench: Benchmark,
    config: HardwareConfig,
    batch_size: int,
    use_traces: bool = True,
) -> dict[str, Any]:
    """Simulate one benchmark on H2Learn, the V100 model and the dense accelerator."""
    trace = _trace_if_possible(bench, batch_size, use_traces)
    workload = trace if trace is not None else bench.spec(batch_size)
    densities = None if trace is not None else STATED_DENSITIES
    comparison = compare_designs(workload, config, densities)
    runs = {**ablations(workload, config, densities), "h2learn": comparison.h2learn}
    gpu = comparison.v100
    extra = {} if trace is None else {"densities": trace_densities(trace)}
    return {
        "benchmark": bench.name,
        "model": bench.model,
        "time_steps": bench.time_steps,
        "batch_size": batch_size,
        "sparsity_from": "trace (fresh model, real data)"
        if trace is not None
        else "stated densities",
        "h2learn": comparison.h2learn.summary(),
        "v100_model": {
            "seconds": gpu.seconds,
            "energy_j": gpu.energy_j,
            "power_w": gpu.power_w,
            "area_mm2": gpu.area_mm2,
        },
        "dense_accelerator": comparison.dense.to_dict(),
        "v100": comparison.vs_v100,
        "dense": comparison.vs_dense,
        "ablations": {
            name: {"seconds": r.seconds, "energy_j": r.energy_j} for name, r in runs.items()
        },
        **extra,
        "_results": runs,
    }


def sensitivity(bench: Benchmark, config: HardwareConfig, batch_size: int) -> dict[str, Any]:
    """Speedup and energy saving vs the V100 as spike density, mask density and k vary."""
    spec = bench.spec(batch_size)
    gpu = v100_training_step(spec)
    spike_values = [0.05, 0.1, 0.2, 0.3, 0.45, 0.6]
    mask_values = [0.1, 0.2, 0.3, 0.4, 0.5, 0.7]
    base = STATED_DENSITIES["*"]
    out: dict[str, Any] = {"spike_density": spike_values, "mask_density": mask_values}
    for label, key, values in (("spike", "input", spike_values), ("mask", "mask", mask_values)):
        speed, energy = [], []
        for value in values:
            densities = {"*": {**base, key: value}}
            if key == "mask":
                densities["*"]["lower_mask"] = value
            result = simulate(spec, config, densities)
            speed.append(gpu.seconds / result.seconds)
            energy.append(gpu.energy_j / result.energy_j)
        out[f"{label}_speedup"], out[f"{label}_energy_saving"] = speed, energy
    ks = [1, 2, 4, 6, 8]
    out["k"] = ks
    k_results = [simulate(spec, set_field(config, "k", k), STATED_DENSITIES) for k in ks]
    out["k_speedup"] = [gpu.seconds / r.seconds for r in k_results]
    out["k_energy_saving"] = [gpu.energy_j / r.energy_j for r in k_results]
    out["k_area_mm2"] = [r.area_mm2 for r in k_results]
    return out


def reproduce(
    out_dir: str | Path,
    config: HardwareConfig | None = None,
    batch_size: int = 16,
    benchmarks: tuple[Benchmark, ...] = BENCHMARKS,
    use_traces: bool = True,
    progress: Callable[[str], None] | None = None,
    waterfall: bool = True,
    waterfall_max_size: int | None = None,
    trained: TrainedSchedule | None = None,
    cpu_cases: Sequence[tuple[str, int, int]] = (),
) -> dict[str, Any]:
    """Run the suite and write summary.json, per-layer CSVs, figures and report.md.

    With ``waterfall`` (default) it also takes the gap to the paper apart
    (:mod:`h2learn.report.waterfall`): ``summary["waterfall"]`` lists per
    benchmark the steps (assumption, source, file, ``speedup``,
    ``energy_saving``, ``area_saving`` vs the V100), ``summary["waterfall_search"]``
    holds the area sizing and the smallest set of assumptions that lands
    inside the paper's ranges (combinations of at most ``waterfall_max_size``
    assumptions; None: all).  Each step's config is written under
    ``out_dir/waterfall/<benchmark>/``.

    With ``trained`` (and traces), every benchmark whose data is on the machine
    is also simulated from a trained network's trace (``row["trained"]``:
    densities and figures beside the fresh row; :mod:`h2learn.report.grounding`).
    ``cpu_cases`` (model, batch, T) run the V100 model's method on this CPU
    against the measured step (``summary["cpu_validation"]``).
    """
    from h2learn.report.markdown import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = config or default_config()
    rows = []
    for bench in benchmarks:
        if progress is not None:
            progress(bench.name)
        row = run_benchmark(bench, config, batch_size, use_traces)
        if trained is not None and "densities" in row:
            if progress is not None:
                progress(f"{bench.name} (trained)")
            row["trained"] = trained_row(bench, config, batch_size, out_dir, trained)
        (out_dir / f"{bench.name}_layers.csv").write_text(row["_results"]["h2learn"].layer_csv())
        rows.append(row)
    if progress is not None:
        progress("sensitivity")
    sweep = sensitivity(benchmarks[0], config, batch_size)
    summary = {
        "paper": {"v100": PAPER},
        "config": config.to_dict(),
        "batch_size": batch_size,
        "benchmarks": {row["benchmark"]: _public(row) for row in rows},
        "ranges": _ranges(rows),
        "sensitivity": {"benchmark": benchmarks[0].name, **sweep},
    }
    if cpu_cases:
        if progress is not None:
            progress("cpu validation")
        summary["cpu_validation"] = cpu_validation(cpu_cases)
    if waterfall:
        from h2learn.report.waterfall import run_waterfall

        parts = run_waterfall(out_dir, benchmarks, config, batch_size, waterfall_max_size, progress)
        summary["waterfall"] = parts.pop("benchmarks")
        summary["waterfall_search"] = parts
    from h2learn.snn.train import atomic_write_json

    atomic_write_json(out_dir / "summary.json", summary)
    write_report(out_dir, summary, rows)
    return summary


def _public(row: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in row.items() if not key.startswith("_")}


def _ranges(rows) -> dict[str, dict[str, list[float]]]:
    """Min and max of each ratio over the suite, per baseline."""
    ranges: dict[str, dict[str, list[float]]] = {}
    for baseline in ("v100", "dense"):
        ranges[baseline] = {}
        for metric in ("speedup", "energy_saving", "area_saving"):
            values = [row[baseline][metric] for row in rows]
            ranges[baseline][metric] = [min(values), max(values)]
    return ranges
