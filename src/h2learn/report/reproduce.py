"""The paper's comparison, reproduced: H2Learn vs the V100 and a dense accelerator.

For every benchmark one training iteration is simulated on H2Learn (trace
mode where the dataset is on this machine, statistical mode from stated
densities where it is not), on the modelled V100 and on the dense
accelerator of equal area.  ``reproduce(out_dir)`` writes ``summary.json``,
one CSV per benchmark with per-layer rows, PNG figures and ``report.md``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from h2learn.arch.config import HardwareConfig, default_config
from h2learn.arch.simulate import ablations, simulate
from h2learn.baselines.dense import simulate_dense
from h2learn.baselines.gpu import v100_training_step
from h2learn.errors import DataError, H2LearnError
from h2learn.spec import NetworkSpec, build_spec

PAPER = {
    "area_saving": 7.38,
    "speedup": (5.74, 10.20),
    "energy_saving": (5.25, 7.12),
}
"""H2Learn vs NVIDIA V100, from the paper's abstract (arXiv 2107.11746)."""

STATED_DENSITIES: dict[str, dict[str, float]] = {
    "*": {"input": 0.15, "mask": 0.35, "du_psum": 1.0, "lower_mask": 0.35},
}
"""[ours] densities used where no trace can be recorded (see docs/reproduction.md).

Spike density 0.15 and mask density 0.35 are what our own traces of trained
fmnist-conv and fresh cifar-vgg networks show (``h2learn stats``); du at the
partial sums is dense because batch norm's backward mixes every position.
The sensitivity sweep varies both.
"""


@dataclass(frozen=True)
class Benchmark:
    """One row of the suite: a zoo model at the paper's T, and the dataset behind it."""

    name: str
    model: str
    num_classes: int
    time_steps: int
    dataset: str | None
    overrides: dict[str, Any] = field(default_factory=dict)

    def spec(self, batch_size: int) -> NetworkSpec:
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


def compare(h2: Any, baseline: Any) -> dict[str, float]:
    """Speedup, energy saving and area saving of H2Learn against a baseline.

    Both arguments have ``seconds``, ``energy_j`` and ``area_mm2``.
    """
    return {
        "speedup": baseline.seconds / h2.seconds,
        "energy_saving": baseline.energy_j / h2.energy_j,
        "area_saving": baseline.area_mm2 / h2.area_mm2,
    }


def run_benchmark(
    bench: Benchmark,
    config: HardwareConfig,
    batch_size: int,
    use_traces: bool = True,
) -> dict[str, Any]:
    """Simulate one benchmark on H2Learn, the V100 model and the dense accelerator."""
    spec = bench.spec(batch_size)
    trace = _trace_if_possible(bench, batch_size, use_traces)
    workload = trace if trace is not None else spec
    densities = None if trace is not None else STATED_DENSITIES
    runs = ablations(workload, config, densities)
    h2 = runs["h2learn"]
    gpu = v100_training_step(spec)
    dense = simulate_dense(spec, config)
    return {
        "benchmark": bench.name,
        "model": bench.model,
        "time_steps": bench.time_steps,
        "batch_size": batch_size,
        "sparsity_from": "trace (fresh model, real data)"
        if trace is not None
        else "stated densities",
        "h2learn": h2.summary(),
        "v100_model": {
            "seconds": gpu.seconds,
            "energy_j": gpu.energy_j,
            "power_w": gpu.power_w,
            "area_mm2": gpu.area_mm2,
        },
        "dense_accelerator": dense.to_dict(),
        "v100": compare(h2, gpu),
        "dense": compare(h2, dense),
        "ablations": {
            name: {"seconds": r.seconds, "energy_j": r.energy_j} for name, r in runs.items()
        },
        "_results": runs,
    }


def override(config: HardwareConfig, path: str, value: Any) -> HardwareConfig:
    """A copy of ``config`` with the dotted field ``path`` set to ``value`` (re-validated)."""
    data = config.model_dump()
    node = data
    parts = path.split(".")
    for part in parts[:-1]:
        if not isinstance(node, dict) or part not in node:
            raise H2LearnError(f"config has no field {path!r}; see configs/h2learn.yaml")
        node = node[part]
    if not isinstance(node, dict) or parts[-1] not in node:
        raise H2LearnError(f"config has no field {path!r}; see configs/h2learn.yaml")
    node[parts[-1]] = value
    return HardwareConfig.model_validate(data)


def with_group_size(config: HardwareConfig, k: int) -> HardwareConfig:
    """The same design with LUT group size ``k`` in both LUT engines."""
    config = override(config, "forward_engine.lut_group_size", k)
    return override(config, "update_engine.lut_group_size", k)


def sensitivity(bench: Benchmark, config: HardwareConfig, batch_size: int) -> dict[str, Any]:
    """Speedup and energy saving vs the V100 as spike density, mask density and k vary."""
    spec = bench.spec(batch_size)
    gpu = v100_training_step(spec)
    spike_values = [0.05, 0.1, 0.15, 0.2, 0.3, 0.4]
    mask_values = [0.1, 0.2, 0.35, 0.5, 0.7]
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
    k_results = [simulate(spec, with_group_size(config, k), STATED_DENSITIES) for k in ks]
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
) -> dict[str, Any]:
    """Run the suite and write summary.json, per-layer CSVs, figures and report.md."""
    from h2learn.report.markdown import write_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config = config or default_config()
    rows = []
    for bench in benchmarks:
        if progress is not None:
            progress(bench.name)
        row = run_benchmark(bench, config, batch_size, use_traces)
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


def load_summary(path: str | Path) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
