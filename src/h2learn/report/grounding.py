"""What grounds the reproduction in measurements: trained sparsity and the baseline's method.

Two parts of ``h2learn reproduce`` that do not model anything new but check
the inputs of the comparison against this machine:

* **Trained networks.**  A fresh network's densities are not a trained one's
  (docs/characterization.md).  For every benchmark whose dataset is on the
  machine, :func:`trained_row` takes a trained checkpoint (given by the
  user, or trained here on a short, stated schedule), records one iteration
  from it and simulates it beside the fresh row: densities and figures vs the
  V100, side by side.
* **The baseline method on this CPU.**  :func:`cpu_validation` applies the
  V100 model's method (roofline per kernel plus launch overhead, the same
  kernel list) to this CPU with measured rates and compares its prediction
  with h2learn's measured step (:mod:`h2learn.baselines.cpu`,
  docs/cpu-validation.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h2learn.arch.config import HardwareConfig
from h2learn.compare import compare_designs
from h2learn.errors import DataError
from h2learn.workload.characterize import epoch_densities, layer_mean

if TYPE_CHECKING:
    from h2learn.report.reproduce import Benchmark
    from h2learn.workload.trace import Trace


@dataclass(frozen=True)
class TrainedSchedule:
    """How the trained rows get their networks.

    ``checkpoints`` maps a benchmark name or zoo model to a checkpoint of
    ``h2learn train`` (used as it is); other benchmarks whose data is on the
    machine are trained here for ``epochs`` on the first ``limit_train``
    samples [ours: short enough for a reproduction run; the densities of
    digits-mlp and fmnist-conv settle within the first epochs,
    docs/characterization.md], cached under ``out_dir/trained/<benchmark>``.
    """

    epochs: int = 1
    limit_train: int | None = 6000
    limit_test: int | None = 2000
    batch_size: int = 32
    checkpoints: Mapping[str, Path] = field(default_factory=dict)

    def checkpoint_for(self, bench: Benchmark) -> Path | None:
        return self.checkpoints.get(bench.name) or self.checkpoints.get(bench.model)


def trace_densities(trace: Trace) -> dict[str, float]:
    """Each density field's mean over the layers of ``trace`` that have it."""
    return layer_mean(epoch_densities(trace))


def _train_briefly(bench: Benchmark, folder: Path, schedule: TrainedSchedule) -> Path:
    from h2learn.snn.train import CHECKPOINT_NAME, TrainConfig, train

    config = TrainConfig(
        dataset=bench.dataset,
        model=bench.model,
        epochs=schedule.epochs,
        limit_train=schedule.limit_train,
        limit_test=schedule.limit_test,
        batch_size=schedule.batch_size,
        time_steps=bench.time_steps,
    )
    checkpoint = folder / CHECKPOINT_NAME
    train(config, folder, resume=checkpoint.exists())
    return checkpoint


def trained_row(
    bench: Benchmark,
    config: HardwareConfig,
    batch_size: int,
    out_dir: Path,
    schedule: TrainedSchedule,
) -> dict[str, Any] | None:
    """The benchmark simulated from a trained network's trace, or None without its data."""
    if bench.dataset is None:
        return None
    from h2learn.snn.train import load_checkpoint
    from h2learn.workload.record import record_from_dataset

    checkpoint = schedule.checkpoint_for(bench)
    given = checkpoint is not None
    try:
        if checkpoint is None:
            checkpoint = _train_briefly(bench, out_dir / "trained" / bench.name, schedule)
        trace = record_from_dataset(checkpoint=checkpoint, batch_size=batch_size)
    except DataError:
        return None
    state = load_checkpoint(Path(checkpoint))
    comparison = compare_designs(trace, config)
    history = state["history"]
    return {
        "checkpoint": str(checkpoint),
        "trained_here": not given,
        "schedule": None if given else asdict(schedule) | {"checkpoints": None},
        "epochs": state["epoch"] + 1,
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "time_steps": trace.time_steps,
        "densities": trace_densities(trace),
        "h2learn": {
            "seconds": comparison.h2learn.seconds,
            "energy_j": comparison.h2learn.energy_j,
        },
        "v100": comparison.vs_v100,
    }


DEFAULT_CPU_CASES: tuple[tuple[str, int, int], ...] = (("fmnist-conv", 8, 4), ("cifar-vgg", 2, 4))
"""(model, batch size, T) of the CPU check: the issue's two models at small batches, as
``benchmarks/validate_cpu_model.py`` runs them (docs/cpu-validation.md)."""


def cpu_validation(
    cases: Sequence[tuple[str, int, int]] = DEFAULT_CPU_CASES, steps: int = 5, warmup: int = 2
) -> dict[str, Any]:
    """The V100 model's method applied to this CPU, per case: predicted vs measured step.

    One thread (docs/cpu-validation.md: with two threads on a shared machine
    the per-operator start-up cost the method does not model dominates).
    """
    from h2learn.baselines.cpu import validate_cpu_model

    results = {}
    for model, batch, steps_t in cases:
        result = validate_cpu_model(model, batch, steps_t, steps, warmup=warmup, threads=1)
        results[model] = {
            "batch_size": batch,
            "time_steps": steps_t,
            "predicted_s": result.predicted_total_s,
            "measured_s": result.measured_total_s,
            "total_error": result.total_error,
            "dominant_error": result.dominant_error,
            "detail": result.to_dict(),
        }
    return results


def trained_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown: fresh vs trained densities and figures for the benchmarks that have both."""
    both = [row for row in rows if row.get("trained")]
    if not both:
        return []
    lines = [
        "## Fresh vs trained networks",
        "",
        "Densities (mean over layers: input spikes, surrogate mask, dL/d(psum)) and figures vs "
        "the V100 model, from a trace of the fresh network and of a trained one "
        "(docs/characterization.md). Benchmarks without data keep the stated densities.",
        "",
        "| benchmark | network | input | mask | du_psum | speedup | energy saving |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in both:
        trained = row["trained"]
        how = (
            f"trained here, {trained['epochs']} epoch(s), {trained['test_accuracy']:.1%}"
            if trained["trained_here"]
            else f"checkpoint, epoch {trained['epochs']}, {trained['test_accuracy']:.1%}"
        )
        for label, densities, ratios in (
            ("fresh", row.get("densities", {}), row["v100"]),
            (how, trained["densities"], trained["v100"]),
        ):
            cells = [_density(densities.get(name)) for name in ("input", "mask", "du_psum")]
            lines.append(
                f"| {row['benchmark']} | {label} | " + " | ".join(cells) + " | "
                f"{ratios['speedup']:.2f}x | {ratios['energy_saving']:.2f}x |"
            )
    return [*lines, ""]


def _density(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def cpu_section(results: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Markdown: the baseline method's prediction against the measured step on this CPU."""
    if not results:
        return []
    lines = [
        "## The baseline method checked on this CPU",
        "",
        "The V100 model's method (per-kernel roofline plus launch overhead, the same kernel "
        "list) applied to this CPU with its measured rates, against h2learn's measured "
        "training step (docs/cpu-validation.md; one thread).",
        "",
        "| model | batch | T | predicted | measured | error |",
        "|---|---|---|---|---|---|",
    ]
    for model, result in results.items():
        lines.append(
            f"| {model} | {result['batch_size']} | {result['time_steps']} | "
            f"{result['predicted_s'] * 1e3:.1f} ms | {result['measured_s'] * 1e3:.1f} ms | "
            f"{result['total_error']:+.1%} |"
        )
    lines.append("")
    for model, result in results.items():
        lines += [f"**{model}**: {result['dominant_error']}", ""]
    return lines
