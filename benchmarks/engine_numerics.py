"""Accuracy of training in the engines' number formats, and what each format costs on H2Learn.

For each format the dataset's model is trained with its forward, backward and
weight-update arithmetic computed by the engine models in that format
(:mod:`h2learn.snn.engine_numerics`), next to a float32 PyTorch baseline
trained in the same run on the same schedule.  For every trained network a
trace of one training iteration is recorded (in the network's own
arithmetic) and simulated on H2Learn with ``datapath_format`` set to the
format: energy per iteration and chip area.  The cheapest format (fewest
bits, then least energy) whose accuracy is within ``--tolerance`` points of
the baseline is named.

    python benchmarks/engine_numerics.py --dataset digits --out benchmarks/results/numerics_digits

writes ``numerics.json`` and ``numerics.md`` to ``--out`` (training runs go
to ``--runs``, default ``runs/numerics_<dataset>``, and are reused when the
script runs again).  ``--full`` trains on the whole dataset for 30 epochs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from h2learn.arch.config import HardwareConfig, default_config
from h2learn.arch.numerics import parse_format
from h2learn.arch.simulate import simulate
from h2learn.cli.app import validation_message
from h2learn.errors import H2LearnError
from h2learn.snn.data import dataset_info
from h2learn.snn.engine_numerics import parse_training_format
from h2learn.snn.train import CHECKPOINT_NAME, TrainConfig, train
from h2learn.workload.record import record_from_dataset

BASELINE = "pytorch-float32"
DEFAULT_FORMATS = ("float16", "bfloat16", "fixed16.16", "fixed8.8", "fixed8.8:floor", "fixed6.10")
SHORT_SCHEDULE: dict[str, dict[str, int]] = {
    "digits": {"epochs": 5},
    "fashion-mnist": {"epochs": 1, "limit_train": 2000, "limit_test": 1000},
}


def hardware_for(fmt: str | None) -> HardwareConfig:
    """The default H2Learn design with its datapath in ``fmt`` (float32 for the baseline)."""
    data = default_config().model_dump()
    data["datapath_format"] = "float32" if fmt is None else fmt
    return HardwareConfig(**data)


def run_format(settings: dict[str, Any], fmt: str | None, runs: Path) -> dict[str, Any]:
    """Train in ``fmt`` (None: PyTorch float32), then the trained network's cost on H2Learn."""
    name = BASELINE if fmt is None else fmt
    run_dir = runs / name.replace(":", "-")
    config = TrainConfig(**settings, engine_format=fmt)
    began = time.perf_counter()
    resume = (run_dir / CHECKPOINT_NAME).exists()
    metrics = train(config, run_dir, resume=resume, log=lambda m: print(f"  {name}: {m}"))
    trace = record_from_dataset(
        checkpoint=run_dir / CHECKPOINT_NAME, batch_size=config.batch_size, seed=config.seed
    )
    sim = simulate(trace, hardware_for(fmt))
    return {
        "format": name,
        "bits": 32 if fmt is None else parse_format(fmt).total_bits,
        "test_accuracy": metrics["test_accuracy"],
        "h2learn_energy_j": sim.energy_j,
        "h2learn_seconds": sim.seconds,
        "h2learn_area_mm2": sim.area_mm2,
        "wall_seconds": time.perf_counter() - began,
    }


def cheapest(rows: list[dict[str, Any]], tolerance: float) -> dict[str, Any] | None:
    """The fewest-bit, then lowest-energy, engine format within ``tolerance`` points."""
    base = next(r for r in rows if r["format"] == BASELINE)["test_accuracy"]
    good = [
        r
        for r in rows
        if r["format"] != BASELINE and (base - r["test_accuracy"]) * 100 <= tolerance + 1e-9
    ]
    return min(good, key=lambda r: (r["bits"], r["h2learn_energy_j"]), default=None)


def markdown(rows: list[dict[str, Any]], settings: dict[str, Any], best, tolerance: float) -> str:
    """The numerics table, energy and area relative to the float32 design."""
    base = next(r for r in rows if r["format"] == BASELINE)
    lines = [
        f"Schedule: {settings}.",
        "",
        "| format | bits | test acc. | vs float32 (points) | H2Learn energy (mJ) | "
        "energy vs fp32 | area (mm^2) | area vs fp32 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        delta = (r["test_accuracy"] - base["test_accuracy"]) * 100
        lines.append(
            f"| {r['format']} | {r['bits']} | {r['test_accuracy']:.2%} | {delta:+.2f} | "
            f"{r['h2learn_energy_j'] * 1e3:.4f} | "
            f"{r['h2learn_energy_j'] / base['h2learn_energy_j']:.2f}x | "
            f"{r['h2learn_area_mm2']:.1f} | "
            f"{r['h2learn_area_mm2'] / base['h2learn_area_mm2']:.2f}x |"
        )
    verdict = (
        f"Cheapest format within {tolerance} points of float32: **{best['format']}**."
        if best
        else f"No engine format stays within {tolerance} points of float32."
    )
    return "\n".join([*lines, "", verdict]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--runs", type=Path, default=None, help="training runs (default: runs/numerics_DATASET)"
    )
    parser.add_argument("--formats", default=",".join(DEFAULT_FORMATS))
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--limit-train", type=int)
    parser.add_argument("--limit-test", type=int)
    parser.add_argument("--full", action="store_true", help="all samples, 30 epochs")
    parser.add_argument("--tolerance", type=float, default=0.5, help="accuracy points")
    args = parser.parse_args(argv)
    name = dataset_info(args.dataset).name
    settings: dict[str, Any] = {"dataset": name}
    if not args.full:
        settings.update(SHORT_SCHEDULE.get(name, {"epochs": 3}))
    for key in ("epochs", "limit_train", "limit_test"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    for fmt in formats:  # refuse a bad format before any training
        parse_training_format(fmt)
    runs = args.runs or Path("runs") / f"numerics_{name}"
    rows = [run_format(settings, None, runs)]
    for fmt in formats:
        rows.append(run_format(settings, fmt, runs))
        print(json.dumps(rows[-1]))
    best = cheapest(rows, args.tolerance)
    args.out.mkdir(parents=True, exist_ok=True)
    summary = {"settings": settings, "rows": rows, "cheapest": best and best["format"]}
    (args.out / "numerics.json").write_text(json.dumps(summary, indent=1))
    table = markdown(rows, settings, best, args.tolerance)
    (args.out / "numerics.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except H2LearnError as exc:  # bad input: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except ValidationError as exc:
        print(f"error: {validation_message(exc)}", file=sys.stderr)
        sys.exit(2)
