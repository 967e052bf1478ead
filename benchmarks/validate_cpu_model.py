"""Validate the GPU model's method on this CPU: predicted vs measured training step, per layer.

For each model (default ``fmnist-conv`` at T=4, batch 8 and ``cifar-vgg`` at
T=4, batch 2) and each kernel backend (``torch``: PyTorch operators, what the
model's ``PYTORCH_EAGER`` implementation describes; ``cpp``: the fused C++
kernels, compared with ``FUSED_LIF``), runs
:func:`h2learn.baselines.cpu.validate_cpu_model`: measures this CPU's GEMM
rate, add bandwidth and per-operator dispatch time, predicts the step with the
GPU model's kernel list and roofline, and times the real step per layer
(medians of interleaved rounds).  Where a CUDA GPU is present it also runs the
measured GPU mode (:mod:`h2learn.baselines.gpu_measure`) on the same
configuration; elsewhere it prints one line saying why it is skipped.

Writes ``benchmarks/results/cpu_validation_<model>.json`` (every figure and
sample) and ``.txt`` (the tables).  Usage::

    python benchmarks/validate_cpu_model.py [--models fmnist-conv cifar-vgg]
        [--backends torch cpp] [--steps 10] [--warmup 3] [--threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from h2learn.baselines.cpu import validate_cpu_model
from h2learn.baselines.gpu_measure import gpu_unavailable_reason, measure_training_step
from h2learn.errors import H2LearnError

CONFIGS = {"fmnist-conv": (8, 4), "cifar-vgg": (2, 4)}  # model: (batch, T), small batches
RESULTS = Path(__file__).resolve().parent / "results"


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages: other work on the machine skews every timing."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


def measured_gpu(model: str, batch: int, time_steps: int, steps: int) -> dict[str, Any]:
    """The measured GPU mode on the same configuration, or why it is skipped."""
    reason = gpu_unavailable_reason()
    if reason is not None:
        print(f"measured GPU mode skipped: {reason}")
        return {"available": False, "reason": reason}
    result = measure_training_step(model, batch, time_steps=time_steps, steps=steps)
    return {"available": True, **(result or {})}


def run_model(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """Validate ``model`` with each backend; write its JSON and text results."""
    batch, time_steps = args.config.get(model, CONFIGS.get(model, (2, 2)))
    out: dict[str, Any] = {
        "model": model,
        "batch_size": batch,
        "time_steps": time_steps,
        "threads": args.threads or torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "load_average_before": load_average(),
        "backends": {},
    }
    tables = []
    for backend in args.backends:
        start = time.perf_counter()
        result = validate_cpu_model(
            model,
            batch,
            time_steps,
            steps=args.steps,
            warmup=args.warmup,
            backend=backend,
            threads=args.threads,
        )
        data = result.to_dict()
        data["wall_seconds"] = time.perf_counter() - start
        out["backends"][backend] = data
        tables.append(result.table())
        print(tables[-1], end="\n\n", flush=True)
    out["load_average_after"] = load_average()
    out["measured_gpu"] = measured_gpu(model, batch, time_steps, args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"cpu_validation_{model}.json").write_text(json.dumps(out, indent=2) + "\n")
    loads = f"load average before {out['load_average_before']}, after {out['load_average_after']}"
    header = f"{out['date_utc']} UTC, {out['cpu_count']} CPUs, {loads}"
    (args.out / f"cpu_validation_{model}.txt").write_text(
        header + "\n\n" + "\n\n".join(tables) + "\n"
    )
    return out


def parse_config(items: list[str]) -> dict[str, tuple[int, int]]:
    """``MODEL=BATCHxT`` items (e.g. ``cifar-vgg=4x2``)."""
    config = {}
    for item in items:
        try:
            model, shape = item.split("=")
            batch, steps = (int(v) for v in shape.lower().split("x"))
        except ValueError:
            raise ValueError(f"--config {item!r}: use MODEL=BATCHxT, e.g. cifar-vgg=4x2") from None
        config[model] = (batch, steps)
    return config


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; exit status 2 with one ``error:`` line on bad input."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=list(CONFIGS))
    ap.add_argument("--backends", nargs="+", default=["torch", "cpp"], choices=["torch", "cpp"])
    ap.add_argument("--config", nargs="*", default=[], help="MODEL=BATCHxT overrides")
    ap.add_argument("--steps", type=int, default=10, help="timed rounds (medians)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed rounds first")
    ap.add_argument("--threads", type=int, default=None, help="default: PyTorch's default")
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON and text")
    args = ap.parse_args(argv)
    try:
        args.config = parse_config(args.config)
    except ValueError as error:
        ap.error(str(error))  # one line, exit status 2
    try:
        for model in args.models:
            run_model(model, args)
    except H2LearnError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
