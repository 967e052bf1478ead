"""Training-step time and peak memory of h2learn against snnTorch and SpikingJelly; FLOP floor.

One training step = ``zero_grad`` + forward over ``T`` steps + cross-entropy on the
time-mean read-out + BPTT backward + Adam update, on the same network
(``fmnist-conv`` by default), the same ``T``, batch, initial weights and data for
every implementation (see ``benchmarks/peers.py`` for how each peer is built).

Timing: all implementations are timed in this one process, round-robin (one step
of each per round, starting one later each round, plus one float32 ``torch.mm`` of
2048x2048 that measures this CPU's matrix-multiply rate under the same load), after
warm-up rounds.  Reported: median and minimum wall time, median process CPU time,
and the ratio to h2learn as the median over rounds of the two times of the same
round.  Peak memory: each implementation runs in a fresh subprocess; after one
warm-up step (so that Adam's state and one-time caches exist), the next step runs
under ``torch.profiler`` with ``profile_memory=True`` and the peak of the
allocator's running total of bytes allocated during that step is the step's peak
tensor memory (activations, saved tensors, gradients, temporaries; the parameters
and optimiser state already held are excluded).  The subprocess also reports the
resident-set growth over its first step (``VmHWM`` after ``clear_refs`` minus
``VmRSS`` before), bytes allocated and minor page faults per step, a profiled
step's time by kind of operator, and the median of a few steps timed alone after
untimed ones that let the heap settle (with their page faults).

FLOP floor: dense multiply-adds of every conv/fc layer on ``T * B`` samples,
times 2 (forward), plus the same again for the weight gradient and for the input
gradient (none for the first layer, whose input needs no gradient); the floor is
those FLOPs at the measured ``torch.mm`` rate.

Usage::

    python benchmarks/bench_training_step.py [--steps N] [--time-steps T] [--batch-size B]
                                             [--threads N] [--json PATH]

A peer that is not installed is skipped with the command that installs it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

import peers  # noqa: E402
from measure import (  # noqa: E402
    interleaved_times,
    memory_events,
    paired_ratio,
    peak_allocated_mb,
    run_json_child,
)

from h2learn.baselines.cpu.rates import cpu_name  # noqa: E402
from h2learn.snn.allocator import reuse_freed_memory  # noqa: E402
from h2learn.snn.kernels import kernel_backend, kernels_available  # noqa: E402
from h2learn.spec import Workload, build_spec  # noqa: E402

MM_SIZE = 2048


def load_average() -> list[float] | None:
    """1-, 5- and 15-minute load averages (other work on the machine skews timings)."""
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return None


TARGETS = {  # issue targets on fmnist-conv, T=8, batch 64
    "speedup_vs_snntorch_min": 2.0,
    "speedup_vs_spikingjelly_min": 1.3,
    "memory_vs_leaner_peer_max": 0.7,
    "time_over_floor_max": 1.5,
}


def targets(rows: dict, ours: str) -> dict[str, dict]:
    """Each target's measured value and whether it is met (None: peer missing)."""
    out: dict[str, dict] = {}
    for key, peer in (("snntorch", "snnTorch"), ("spikingjelly", "SpikingJelly")):
        value = rows[peer]["speedup_of_ours"] if peer in rows else None
        limit = TARGETS[f"speedup_vs_{key}_min"]
        out[f"speedup_vs_{key}"] = {
            "value": value,
            "target": f">= {limit}",
            "met": None if value is None else value >= limit,
        }
    peaks = [rows[p]["peak_alloc_mb"] for p in ("snnTorch", "SpikingJelly") if p in rows]
    peaks = [p for p in peaks if p]
    mine = rows[ours]["peak_alloc_mb"]
    value = mine / min(peaks) if peaks and mine else None
    limit = TARGETS["memory_vs_leaner_peer_max"]
    out["memory_vs_leaner_peer"] = {
        "value": value,
        "target": f"<= {limit}",
        "met": None if value is None else value <= limit,
    }
    value, limit = rows[ours]["over_floor"], TARGETS["time_over_floor_max"]
    out["time_over_floor"] = {"value": value, "target": f"<= {limit}", "met": value <= limit}
    return out


def step_flops(spec: Workload, batch: int) -> dict[str, float]:
    """Dense FLOPs of one training step: forward, input gradient, weight gradient."""
    samples = spec.time_steps * batch
    fwd = grad_in = 0.0
    for layer in spec.weighted_layers:
        flops = 2.0 * layer.macs_per_step * samples
        fwd += flops
        if not layer.encoding:  # the first layer's input (the image) needs no gradient
            grad_in += flops
    return {"forward": fwd, "grad_input": grad_in, "grad_weight": fwd, "total": 2 * fwd + grad_in}


VARIANTS = {
    "h2learn-noreset": "h2learn (reset_grad=False)",
    "h2learn-input-per-step": "h2learn (input copied per step)",
    "h2learn-torch-ops": "h2learn (PyTorch ops, no C++ kernels)",
}


def make_impls(args, names: list[str]) -> list[peers.Impl]:
    """``names``: ``h2learn``, the ``VARIANTS`` of it, and peers; all from h2learn's weights."""
    ours = peers.build_ours(args.model, args.time_steps, seed=args.seed)
    impls = {"h2learn": ours}
    if "h2learn-noreset" in names:
        impl = peers.build_ours(args.model, args.time_steps, seed=args.seed, reset_grad=False)
        impls["h2learn-noreset"] = impl
    if "h2learn-input-per-step" in names:
        # The image materialised as [T, B, ...] (as event frames arrive): h2learn cannot see
        # that the input is time-invariant and runs the first layer on all T * B samples.
        impl = peers.build_ours(args.model, args.time_steps, seed=args.seed)
        model, steps = impl.model, args.time_steps
        impl.forward = lambda x: model(x.unsqueeze(0).repeat(steps, *([1] * x.dim())))
        impls["h2learn-input-per-step"] = impl
    if "h2learn-torch-ops" in names:
        # PyTorch operators instead of the fused C++ kernels (LIF, batch norm + LIF, pooling).
        impl = peers.build_ours(args.model, args.time_steps, seed=args.seed)
        impl.forward = _with_kernel_backend("torch", impl.forward)
        impls["h2learn-torch-ops"] = impl
    for key, label in VARIANTS.items():
        if key in impls:
            impls[key].name = label
    for name, builder in peers.BUILDERS.items():
        if name in names:
            impls[name] = builder(ours.model)
    return [impls[n] for n in names]


def _with_kernel_backend(backend: str, forward):
    """``forward`` run on LIF backend ``backend``; backward follows its choice."""

    def run(x):
        with kernel_backend(backend):
            return forward(x)

    return run


def make_batch(args) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(args.seed + 1)
    spec = build_spec(args.model)
    x = torch.rand(args.batch_size, *spec.input_shape, generator=gen)
    y = torch.randint(0, spec.num_classes, (args.batch_size,), generator=gen)
    return x, y


def make_step(impl: peers.Impl, lr: float = 1e-3):
    opt = torch.optim.Adam(impl.model.parameters(), lr=lr)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(impl.forward(x), y)
        loss.backward()
        opt.step()
        impl.after_step()
        return loss.item()

    return step


def mm_rate() -> tuple[float, callable]:
    a = torch.randn(MM_SIZE, MM_SIZE)
    b = torch.randn(MM_SIZE, MM_SIZE)
    out = torch.empty(MM_SIZE, MM_SIZE)

    def run() -> float:
        start = time.perf_counter()
        torch.mm(a, b, out=out)
        return time.perf_counter() - start

    return 2.0 * MM_SIZE**3, run


# --------------------------------------------------------------------------- equivalence


def equivalence(args, names: list[str], x: torch.Tensor, y: torch.Tensor) -> dict[str, dict]:
    """Logits and parameter gradients of each implementation against h2learn, in float64.

    Fresh copies of the networks (h2learn's initial weights) run one forward and
    backward pass in float64, where rounding cannot flip a spike, so differences
    are those of the networks' definitions (the reset gradient snnTorch detaches).
    """
    impls = make_impls(args, names)
    out: dict[str, dict] = {}
    ref = None
    for impl in impls:
        impl.model.double()
        logits = impl.forward(x.double())
        F.cross_entropy(logits, y).backward()
        impl.after_step()
        grads = torch.cat([p.grad.flatten() for p in impl.model.parameters()])
        if ref is None:
            ref = (logits.detach(), grads)
        out[impl.name] = {
            "max_abs_logit_diff": (logits.detach() - ref[0]).abs().max().item(),
            "grad_rel_diff": ((grads - ref[1]).norm() / ref[1].norm()).item(),
        }
    return out


# --------------------------------------------------------------------------- memory


def _rss_peak_reset() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``clear_refs``)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def memory_child(args) -> dict:
    """Run in a fresh interpreter: step-1 RSS growth, step-2 peak tensor allocation."""
    from torch.profiler import ProfilerActivity, profile

    names = ["h2learn"] if args.memory_child == "h2learn" else ["h2learn", args.memory_child]
    impl = make_impls(args, names)[-1]
    x, y = make_batch(args)
    step = make_step(impl)
    # Peak RSS over the first step minus RSS just before it (VmHWM after clear_refs;
    # ru_maxrss would carry the parent's peak across exec).
    if _rss_peak_reset():
        before = _rss_kib("VmRSS")
        step(x, y)
        rss_growth = (_rss_kib("VmHWM") - before) / 1024
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        step(x, y)
        rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    memory = memory_events(lambda: step(x, y))
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step(x, y)
    profiled_ms = (time.perf_counter() - start) * 1e3
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    # This implementation alone in its process (no other one's heap around),
    # after untimed steps that let glibc's heap reach its steady size: a fresh
    # process still maps new pages now and then for its first ~10 steps.
    for _ in range(args.alone_warmup if args.alone_steps else 0):
        step(x, y)
    alone = []
    alone_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(args.alone_steps):
        start = time.perf_counter()
        step(x, y)
        alone.append((time.perf_counter() - start) * 1e3)
    alone_faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - alone_faults
    return {
        "alone_step_ms_median": statistics.median(alone) if alone else None,
        "alone_step_ms_all": alone,
        "peak_alloc_mb": peak_allocated_mb(memory),
        "allocated_per_step_mb": sum(max(m["Bytes"], 0) for m in memory) / 2**20,
        "rss_first_step_mb": rss_growth,
        "minor_page_faults_per_step": faults,
        "alone_page_faults_per_step": alone_faults / len(alone) if alone else None,
        "profiled_step_ms": profiled_ms,
        "self_time_ms": time_breakdown(prof),
    }


GEMM_OPS = (
    "aten::mkldnn_convolution",
    "aten::convolution_backward",
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::_slow_conv2d_forward",
    "aten::_slow_conv2d_backward",
)


def time_breakdown(prof) -> dict[str, float]:
    """Self CPU time (ms) of one profiled step by kind of operator."""
    parts = {
        "conv/linear kernels": 0.0,
        "batch norm (+ LIF and pooling when fused)": 0.0,
        "pooling": 0.0,
        "everything else": 0.0,
    }
    for event in prof.key_averages():
        ms = event.self_cpu_time_total / 1e3
        name = event.key
        if name in GEMM_OPS:
            parts["conv/linear kernels"] += ms
        elif "batch_norm" in name or name.startswith("h2learn_norm_lif::"):
            parts["batch norm (+ LIF and pooling when fused)"] += ms
        elif "max_pool" in name or name == "aten::scatter_":  # h2learn_pool::max_pool_* too
            parts["pooling"] += ms
        else:
            parts["everything else"] += ms
    return parts


def measure_memory(args, key: str) -> dict | None:
    cmd = [
        __file__,
        "--memory-child",
        key,
        "--model",
        args.model,
        "--time-steps",
        str(args.time_steps),
        "--batch-size",
        str(args.batch_size),
        "--threads",
        str(args.threads),
        "--seed",
        str(args.seed),
        "--alone-steps",
        str(args.alone_steps),
        "--alone-warmup",
        str(args.alone_warmup),
        *(["--no-malloc-tuning"] if args.no_malloc_tuning else []),
    ]
    return run_json_child(cmd, f"for {key}")


# --------------------------------------------------------------------------- main


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="timed rounds (median reported)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    ap.add_argument("--time-steps", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--model", default="fmnist-conv")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, help="write the raw numbers here")
    ap.add_argument(
        "--no-variants",
        action="store_true",
        help="skip the extra h2learn rows (reset_grad=False, input copied per step)",
    )
    ap.add_argument(
        "--alone-steps",
        type=int,
        default=5,
        help="steps timed again per implementation alone in its memory subprocess",
    )
    ap.add_argument(
        "--alone-warmup",
        type=int,
        default=8,
        help="untimed steps before those (the heap settles over a fresh process's first steps)",
    )
    ap.add_argument(
        "--no-malloc-tuning",
        action="store_true",
        help="leave glibc malloc at its defaults (h2learn train keeps freed memory for reuse)",
    )
    ap.add_argument("--memory-child", help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    malloc_tuned = not args.no_malloc_tuning and reuse_freed_memory()
    if args.memory_child:
        print(json.dumps(memory_child(args)))
        return 0

    names = ["h2learn"] + ([] if args.no_variants else list(VARIANTS))
    skipped = {}
    for peer, install in peers.available().items():
        if install is None:
            names.append(peer)
        else:
            skipped[peer] = install
            print(f"{peer} is not installed; skipping it. Install with: {install}")
    impls = make_impls(args, names)
    spec = impls[0].model.spec
    x, y = make_batch(args)

    print(
        f"model {args.model}, T={args.time_steps}, batch {args.batch_size}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU {cpu_name()}, "
        f"fused kernels {'C++' if kernels_available() else 'unavailable'}, malloc "
        f"{'keeps freed memory (every implementation)' if malloc_tuned else 'glibc defaults'}"
    )
    versions = {p: peers.peer_version(p) for p in peers.INSTALL if p in names}
    if versions:
        print("peers: " + ", ".join(f"{k} {v}" for k, v in versions.items()))

    # Same weights, same data: the forward passes agree and the firing rates match.
    eq = equivalence(args, names, x[:8], y[:8])
    rates0 = {impl.name: impl.rates(x) for impl in impls}

    runs = {impl.name: (lambda step=make_step(impl): step(x, y)) for impl in impls}
    mm_flops, mm_run = mm_rate()
    mm_times: list[float] = []

    def time_mm(kept: bool) -> None:  # the matmul rate under the same load, every round
        elapsed = mm_run()
        if kept:
            mm_times.append(elapsed)

    load_before = load_average()
    measured = interleaved_times(runs, args.steps, args.warmup, after_round=time_mm)
    times, cpu_times = measured.wall, measured.cpu
    load_after = load_average()
    rates1 = {impl.name: impl.rates(x) for impl in impls}

    print("peak memory (fresh subprocess per implementation) ...", flush=True)
    keys = dict(zip([impl.name for impl in impls], names, strict=True))
    memory = {impl.name: measure_memory(args, keys[impl.name]) for impl in impls}

    flops = step_flops(spec, args.batch_size)
    rate = mm_flops / statistics.median(mm_times)
    floor_s = flops["total"] / rate
    floors = [flops["total"] * t / mm_flops for t in mm_times]  # each round's floor
    ours = impls[0].name

    width = max(len(impl.name) for impl in impls) + 2
    print()
    print(
        f"{'implementation':<{width}}{'step ms':>9}{'min ms':>8}{'CPU ms':>8}{'x ours':>8}"
        f"{'alone':>8}{'x ours':>8}"
        f"{'peak MB':>9}{'ours/it':>8}{'RSS MB':>8}{'/floor':>8}  firing rates (start -> end)"
    )
    rows = {}
    for impl in impls:
        name = impl.name
        ts = sorted(times[name])
        q1, q3 = ts[len(ts) // 4], ts[(3 * len(ts)) // 4]
        mem = memory[name] or {}
        peak = mem.get("peak_alloc_mb")
        ours_peak = (memory[ours] or {}).get("peak_alloc_mb")
        ours_alone = (memory[ours] or {}).get("alone_step_ms_median")
        rows[name] = {
            "step_ms_median": statistics.median(ts) * 1e3,
            "step_ms_min": ts[0] * 1e3,
            "step_ms_iqr": (q3 - q1) * 1e3,
            "step_ms_all": [t * 1e3 for t in times[name]],
            "cpu_ms_median": statistics.median(cpu_times[name]) * 1e3,
            "cpu_ms_all": [t * 1e3 for t in cpu_times[name]],
            "speedup_of_ours": paired_ratio(times[name], times[ours]),
            "speedup_of_ours_from_medians": statistics.median(ts) / statistics.median(times[ours]),
            "speedup_of_ours_from_minima": ts[0] / min(times[ours]),
            "speedup_of_ours_cpu_time": paired_ratio(cpu_times[name], cpu_times[ours]),
            "peak_alloc_mb": peak,
            "ours_over_this_memory": (ours_peak / peak) if peak and ours_peak else None,
            "rss_first_step_mb": mem.get("rss_first_step_mb"),
            "alone_step_ms_median": mem.get("alone_step_ms_median"),
            "alone_speedup_of_ours": (
                mem["alone_step_ms_median"] / ours_alone
                if mem.get("alone_step_ms_median") and ours_alone
                else None
            ),
            "memory_run": mem,
            "over_floor": paired_ratio(times[name], floors),
            "firing_rates_start": rates0[name],
            "firing_rates_end": rates1[name],
            "float64_check_vs_ours": eq[name],
            "notes": impl.notes,
        }
        r = rows[name]
        rates_txt = " ".join(
            f"{a:.3f}->{b:.3f}" for a, b in zip(rates0[name], rates1[name], strict=True)
        )
        nan = float("nan")
        print(
            f"{name:<{width}}{r['step_ms_median']:>9.1f}{r['step_ms_min']:>8.1f}"
            f"{r['cpu_ms_median']:>8.1f}{r['speedup_of_ours']:>8.2f}"
            f"{(r['alone_step_ms_median'] or nan):>8.1f}{(r['alone_speedup_of_ours'] or nan):>8.2f}"
            f"{(peak or nan):>9.1f}"
            f"{(r['ours_over_this_memory'] or nan):>8.2f}"
            f"{(r['rss_first_step_mb'] or nan):>8.0f}{r['over_floor']:>8.2f}  {rates_txt}"
        )
    print(
        f"\nFLOP floor: {flops['total'] / 1e9:.2f} GFLOP per step (dense conv/fc: forward "
        f"{flops['forward'] / 1e9:.2f}, input grad {flops['grad_input'] / 1e9:.2f}, weight grad "
        f"{flops['grad_weight'] / 1e9:.2f}) at the measured torch.mm rate "
        f"{rate / 1e9:.1f} GFLOP/s = {floor_s * 1e3:.1f} ms."
    )
    print(
        "step ms / min ms: median / minimum wall time over rounds; CPU ms: median process "
        "CPU time; x ours: median over rounds of step time / h2learn's in the same round "
        "(above 1: h2learn is faster); alone / x ours: median step time of the "
        "implementation alone in a fresh process, and its ratio to h2learn's; peak MB: "
        "peak tensor memory of one step; ours/it: "
        "h2learn's peak / this one's; RSS MB: resident-set growth over a fresh process's "
        "first step; /floor: median over rounds of step time / that round's FLOP floor."
    )
    print(f"load average before/after timing: {load_before} / {load_after}")
    print("float64 check (same initial weights, 8 samples) against h2learn:")
    for name, e in eq.items():
        if name != ours:
            print(
                f"  {name}: max |logit diff| {e['max_abs_logit_diff']:.1e}, relative "
                f"gradient difference {e['grad_rel_diff']:.1e}  {rows[name]['notes']}"
            )
    goals = targets(rows, ours)
    print("targets:")
    for key, goal in goals.items():
        value = "n/a" if goal["value"] is None else f"{goal['value']:.2f}"
        verdict = {True: "met", False: "MISSED", None: "not measured"}[goal["met"]]
        print(f"  {key:<24}{value:>7}  (target {goal['target']}): {verdict}")
    if args.json:
        result = {
            "command": " ".join([Path(sys.executable).name, *sys.argv]),
            "model": args.model,
            "time_steps": args.time_steps,
            "batch_size": args.batch_size,
            "threads": torch.get_num_threads(),
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "torch": torch.__version__,
            "cpp_kernels": kernels_available(),
            "malloc_keeps_freed_memory": malloc_tuned,
            "peers": versions,
            "skipped": skipped,
            "timed_rounds": args.steps,
            "warmup_rounds": args.warmup,
            "mm_gflops": rate / 1e9,
            "mm_seconds_all": mm_times,
            "floor_ms_all": [f * 1e3 for f in floors],
            "flops": flops,
            "floor_ms": floor_s * 1e3,
            "results": rows,
            "targets": goals,
            "load_average_before_after": [load_before, load_after],
            "env": {
                k: v
                for k, v in os.environ.items()
                if k.startswith(("MALLOC_", "THP_", "OMP_", "MKL_", "LD_PRELOAD"))
            },
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))
        print(f"raw numbers written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
