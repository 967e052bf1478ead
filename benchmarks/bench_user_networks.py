"""Training step of user-written spiking networks: h2learn blocks against snnTorch and SpikingJelly.

For each network of ``user_networks.py`` (conv-avgpool without and with batch
norm, an MLP) and each implementation (h2learn's public blocks in an
``nn.Sequential``; plain torch layers with ``h2learn.snn.LIF``; snnTorch;
SpikingJelly), one training step = ``zero_grad`` + forward over ``T`` steps +
cross-entropy on the time-mean read-out + BPTT backward + Adam update, on the
same data and initial weights.

Timing: per network, all implementations in this one process, round-robin
(one step of each per round, starting one later each round), after warm-up
rounds; the ratio to h2learn is the median over rounds of the two step times of
the same round (a paired ratio: both saw the same load).  Peak memory: each
implementation in a fresh subprocess; after one warm-up step the next runs
under ``torch.profiler(profile_memory=True)`` and the peak of the allocator's
running total during that step is its peak tensor memory (what
``bench_training_step.py`` measures).  Equivalence: a float64 forward and
backward of fresh copies; the logits must agree.

Usage::

    python benchmarks/bench_user_networks.py [--rounds N] [--networks a,b] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import user_networks as nets  # noqa: E402
from measure import (  # noqa: E402
    interleaved_times,
    memory_events,
    peak_allocated_mb,
    run_json_child,
    timing_row,
    write_outputs,
)

from h2learn.snn.allocator import reuse_freed_memory  # noqa: E402
from h2learn.snn.kernels import kernels_available  # noqa: E402

PEERS = {"snntorch": "snnTorch", "spikingjelly": "SpikingJelly"}
TARGETS = {"snnTorch": 2.0, "SpikingJelly": 1.5}  # the speed-ups
MEMORY_TARGET = 0.7  # h2learn's peak at most this fraction of the leaner peer's


def batch(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.rand(size, *nets.INPUT_SHAPE, generator=gen)
    return x, torch.randint(0, nets.CLASSES, (size,), generator=gen)


def make_step(impl: nets.Impl):
    opt = torch.optim.Adam(impl.model.parameters(), lr=1e-3)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(impl.forward(x), y).backward()
        opt.step()
        impl.after_step()

    return step


def installed() -> list[str]:
    import importlib.util

    keys = ["h2learn", "torch+lif"]
    for key in PEERS:
        if importlib.util.find_spec(key) is None:
            print(f"{key} is not installed; skipping it (see benchmarks/README.md)")
        else:
            keys.append(key)
    return keys


def equivalence(name: str, keys: list[str], steps: int, x, y) -> dict[str, float]:
    """Max |logit difference| to h2learn of every implementation, float64, fresh copies."""
    out, ref = {}, None
    for key in keys:
        impl = nets.build(key, name, steps)
        impl.model.double()
        logits = impl.forward(x.double())
        F.cross_entropy(logits, y).backward()
        impl.after_step()
        ref = logits.detach() if ref is None else ref
        out[impl.name] = (logits.detach() - ref).abs().max().item()
    return out


def time_network(name: str, keys: list[str], args, x, y) -> dict[str, dict]:
    impls = [nets.build(key, name, args.time_steps, args.seed) for key in keys]
    runs = {impl.name: (lambda step=make_step(impl): step(x, y)) for impl in impls}
    times = interleaved_times(runs, args.rounds, args.warmup).wall
    return {impl.name: timing_row(times[impl.name], times["h2learn"]) for impl in impls}


def memory_child(args) -> dict:
    """In a fresh process: the peak tensor memory of one step (after a warm-up step)."""
    impl = nets.build(args.memory_child, args.network, args.time_steps, args.seed)
    x, y = batch(args.batch_size, args.seed)
    step = make_step(impl)
    step(x, y)
    return {"peak_alloc_mb": peak_allocated_mb(memory_events(lambda: step(x, y)))}


def measure_memory(args, name: str, key: str) -> float | None:
    child = run_json_child(
        [
            __file__,
            "--memory-child",
            key,
            "--network",
            name,
            "--time-steps",
            str(args.time_steps),
            "--batch-size",
            str(args.batch_size),
            "--threads",
            str(args.threads),
            "--seed",
            str(args.seed),
        ],
        f"{name}/{key}",
    )
    return None if child is None else child["peak_alloc_mb"]


def verdict(rows: dict[str, dict]) -> dict[str, dict]:
    """The issue's targets for one network: speed-up over each peer, memory against the leaner."""
    out = {}
    for peer, target in TARGETS.items():
        if peer in rows:
            ratio = rows[peer]["ratio_to_h2learn"]
            out[f"{peer} speed-up >= {target}"] = {"value": ratio, "met": ratio >= target}
    peaks = [rows[p].get("peak_alloc_mb") for p in TARGETS if p in rows]
    peaks = [p for p in peaks if p]
    ours = rows["h2learn"].get("peak_alloc_mb")
    if peaks and ours:
        share = ours / min(peaks)
        out[f"peak memory <= {MEMORY_TARGET} x leaner peer"] = {
            "value": share,
            "met": share <= MEMORY_TARGET,
        }
    return out


def report(name: str, rows: dict[str, dict], eq: dict[str, float], checks: dict) -> str:
    lines = [
        f"network {name}",
        f"  {'implementation':30s} {'median ms':>10s} {'min ms':>8s} {'x h2learn':>10s} "
        f"{'peak MB':>8s} {'|dlogit| f64':>12s}",
    ]
    for impl, row in rows.items():
        peak = row.get("peak_alloc_mb")
        lines.append(
            f"  {impl:30s} {row['median_ms']:10.1f} {row['min_ms']:8.1f} "
            f"{row['ratio_to_h2learn']:10.2f} {peak if peak else float('nan'):8.1f} "
            f"{eq.get(impl, float('nan')):12.1e}"
        )
    for check, result in checks.items():
        lines.append(
            f"  target {check}: {result['value']:.2f} {'met' if result['met'] else 'NOT met'}"
        )
    return "\n".join(lines)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--networks", default=",".join(nets.NAMES))
    ap.add_argument("--rounds", type=int, default=10, help="timed rounds per network")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--time-steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    ap.add_argument("--json", type=Path, help="write every sample and result here")
    ap.add_argument("--text", type=Path, help="write the printed report here too")
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    ap.add_argument("--network", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    tuned = reuse_freed_memory()
    if args.memory_child:
        print(json.dumps(memory_child(args)))
        return 0
    keys = installed()
    x, y = batch(args.batch_size, args.seed)
    header = (
        f"T={args.time_steps}, batch {args.batch_size}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, fused kernels "
        f"{'C++' if kernels_available() else 'unavailable'}, malloc "
        f"{'keeps freed memory' if tuned else 'glibc defaults'}, load {os.getloadavg()[0]:.1f}"
    )
    print(header)
    texts, results = [header], {}
    for name in args.networks.split(","):
        eq = equivalence(name, keys, args.time_steps, x[:8], y[:8])
        rows = time_network(name, keys, args, x, y)
        if not args.no_memory:
            for key in keys:
                impl_name = nets.build(key, name, 2).name
                rows[impl_name]["peak_alloc_mb"] = measure_memory(args, name, key)
        checks = verdict(rows)
        results[name] = {"rows": rows, "float64_logit_diff": eq, "targets": checks}
        texts.append(report(name, rows, eq, checks))
        print(texts[-1], flush=True)
    texts.append(f"load average after: {os.getloadavg()[0]:.1f}")
    print(texts[-1])
    meta = {"time_steps": args.time_steps, "batch_size": args.batch_size, "header": header}
    write_outputs(args.json, {"meta": meta, "networks": results}, args.text, texts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
