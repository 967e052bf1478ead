"""Speed of the accelerator model, against the PyTorch training step it models.

1. Statistical mode: the whole reproduction suite's H2Learn simulations
   (every benchmark network, from densities) — target: under 1 s in total.
2. Trace mode: simulating one recorded cifar-vgg iteration (T=6, batch 16)
   against the PyTorch CPU time of that same iteration (forward + BPTT),
   measured in the same run — target: at most 2x.

Usage: python benchmarks/bench_simulation.py [--batch-size 16] [--repeats 3] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from h2learn.arch.config import default_config
from h2learn.arch.simulate import simulate
from h2learn.report.reproduce import BENCHMARKS, STATED_DENSITIES
from h2learn.snn.models import build
from h2learn.workload.record import record_from_dataset


def _best_of(repeats: int, fn) -> float:
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return min(times)


def statistical_suite_seconds(batch_size: int, repeats: int) -> float:
    config = default_config()
    specs = [bench.spec(batch_size) for bench in BENCHMARKS]

    def run() -> None:
        for spec in specs:
            simulate(spec, config, STATED_DENSITIES)

    run()  # warm-up (imports, caches)
    return _best_of(repeats, run)


def pytorch_iteration_seconds(batch_size: int, repeats: int) -> float:
    torch.manual_seed(0)
    model = build("cifar-vgg", batch_size=batch_size)
    x = torch.rand(batch_size, *model.spec.input_shape)
    y = torch.randint(0, 10, (batch_size,))

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    step()
    return statistics.median(_best_of(1, step) for _ in range(repeats))


def trace_mode_seconds(batch_size: int, repeats: int) -> float:
    trace = record_from_dataset("cifar-vgg", "synthetic", batch_size=batch_size)
    config = default_config()
    return statistics.median(_best_of(1, lambda: simulate(trace, config)) for _ in range(repeats))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    suite = statistical_suite_seconds(args.batch_size, args.repeats)
    torch_step = pytorch_iteration_seconds(args.batch_size, args.repeats)
    trace_sim = trace_mode_seconds(args.batch_size, args.repeats)
    results = {
        "threads": torch.get_num_threads(),
        "statistical_suite_seconds": suite,
        "statistical_suite_benchmarks": [bench.name for bench in BENCHMARKS],
        "pytorch_cifar_vgg_iteration_seconds": torch_step,
        "trace_mode_cifar_vgg_seconds": trace_sim,
        "trace_mode_over_pytorch": trace_sim / torch_step,
    }
    print(f"statistical-mode suite ({len(BENCHMARKS)} networks): {suite:.3f} s (target < 1 s)")
    print(f"PyTorch CPU cifar-vgg iteration (T=6, batch {args.batch_size}): {torch_step:.2f} s")
    print(
        f"trace-mode simulation of that iteration: {trace_sim:.2f} s = "
        f"{trace_sim / torch_step:.2f}x PyTorch (target <= 2x)"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
