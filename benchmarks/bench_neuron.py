"""The LIF neuron alone: forward + BPTT of ``h2learn.snn.LIF`` against snnTorch, SpikingJelly
and this machine's memory-copy bandwidth.

For each input shape (``[T, B, N]`` and ``[T, B, C, H, W]``), one round times,
in this one process and in rotating order:

* ``h2learn``: ``LIF()(x)`` then ``backward`` of a given spike gradient (the
  fused C++ time loop, or with ``--torch-ops`` also the PyTorch-operator loop);
* ``snnTorch``: ``snn.Leaky`` (zero reset, rectangular surrogate) called once
  per step in a Python loop, ``torch.stack`` of the spikes, ``backward``;
* ``SpikingJelly``: ``neuron.LIFNode`` in multi-step mode (``Rect``
  surrogate, gradient through the reset), ``backward``;
* ``copy``: ``dst.copy_(src)`` of one ``[T, B, ...]`` float tensor, which reads
  and writes ``2 * numel * itemsize`` bytes: this CPU's copy bandwidth under the
  same load.

The floor of the neuron is the bytes it must move at that bandwidth: forward
reads ``x`` and writes the spikes and the potential ``u`` it keeps for BPTT;
backward reads the spike gradient and ``u`` and writes the input gradient,
6 tensor passes (``6 * numel * itemsize`` bytes).  Ratios are medians over
rounds of paired times.

Usage::

    python benchmarks/bench_neuron.py [--rounds N] [--json PATH] [--text PATH]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import interleaved_times, paired_ratio, timing_row, write_outputs  # noqa: E402

from h2learn.snn import LIF  # noqa: E402
from h2learn.snn.allocator import reuse_freed_memory  # noqa: E402
from h2learn.snn.kernels import kernel_backend, kernels_available  # noqa: E402

# Both beyond this CPU's 32 MiB L3 (float32: 32 MiB and 49 MiB per tensor): DRAM-bound.
SHAPES = {"[T, B, N]": (8, 64, 16384), "[T, B, C, H, W]": (8, 64, 32, 28, 28)}
PASSES = 6  # x, spikes, u (forward); grad, u, grad_x (backward)
ALPHA, V_TH, WINDOW, HEIGHT = 0.25, 0.25, 0.5, 1.0


def h2learn_run(backend: str):
    neuron = LIF(ALPHA, V_TH, WINDOW, HEIGHT)

    def run(x: torch.Tensor, grad: torch.Tensor) -> None:
        with kernel_backend(backend):
            neuron(x).backward(grad)

    return run


def snntorch_run():
    import snntorch as snn
    from snntorch import surrogate

    def rect(input_, grad_input, spikes):
        return grad_input * (input_.abs() < WINDOW).to(grad_input.dtype) * HEIGHT

    leaky = snn.Leaky(
        beta=ALPHA,
        threshold=V_TH,
        spike_grad=surrogate.custom_surrogate(rect),
        reset_mechanism="zero",
    )

    def run(x: torch.Tensor, grad: torch.Tensor) -> None:
        mem = leaky.reset_mem()
        spikes = []
        for t in range(x.shape[0]):
            spk, mem = leaky(x[t], mem)
            spikes.append(spk)
        torch.stack(spikes).backward(grad)

    return run


def spikingjelly_run():
    from spikingjelly.activation_based import functional, neuron, surrogate

    node = neuron.LIFNode(
        tau=1.0 / (1.0 - ALPHA),
        decay_input=False,
        v_threshold=V_TH,
        v_reset=0.0,
        surrogate_function=surrogate.Rect(alpha=HEIGHT),
        detach_reset=False,
        step_mode="m",
    )

    def run(x: torch.Tensor, grad: torch.Tensor) -> None:
        node(x).backward(grad)
        functional.reset_net(node)

    return run


def implementations(torch_ops: bool) -> dict:
    impls = {"h2learn": h2learn_run("auto")}
    if torch_ops:
        impls["h2learn (PyTorch ops)"] = h2learn_run("torch")
    if importlib.util.find_spec("snntorch"):
        impls["snnTorch"] = snntorch_run()
    if importlib.util.find_spec("spikingjelly"):
        impls["SpikingJelly"] = spikingjelly_run()
    return impls


def measure(shape: tuple[int, ...], impls: dict, rounds: int, warmup: int) -> dict:
    gen = torch.Generator().manual_seed(0)
    x = (torch.rand(shape, generator=gen) * 0.6).requires_grad_(True)
    grad = torch.randn(shape, generator=gen)
    src, dst = torch.rand(shape, generator=gen), torch.empty(shape)

    def run(impl):
        def step() -> None:
            x.grad = None
            impl(x, grad)

        return step

    runs = {name: run(impl) for name, impl in impls.items()}
    runs["copy"] = lambda: dst.copy_(src)
    times = interleaved_times(runs, rounds, warmup).wall
    nbytes = x.numel() * x.element_size()
    copy = times["copy"]
    floor = [c * PASSES / 2 for c in copy]  # a copy moves 2 tensors' bytes
    rows = {}
    for name in impls:
        rows[name] = timing_row(times[name], times["h2learn"])
        rows[name]["x_floor"] = paired_ratio(times[name], floor)
    bandwidth = statistics.median(2 * nbytes / c for c in copy) / 1e9
    floor_ms = statistics.median(copy) * PASSES / 2 * 1e3
    return {"elements": x.numel(), "copy_gb_s": bandwidth, "floor_ms": floor_ms, "rows": rows}


def report(label: str, result: dict) -> str:
    lines = [
        f"{label}: {result['elements'] / 1e6:.1f} M elements, copy bandwidth "
        f"{result['copy_gb_s']:.1f} GB/s, floor ({PASSES} passes) {result['floor_ms']:.1f} ms",
        f"  {'implementation':24s} {'median ms':>10s} {'min ms':>8s} {'x h2learn':>10s} "
        f"{'x floor':>8s}",
    ]
    for name, row in result["rows"].items():
        lines.append(
            f"  {name:24s} {row['median_ms']:10.1f} {row['min_ms']:8.1f} "
            f"{row['ratio_to_h2learn']:10.2f} {row['x_floor']:8.2f}"
        )
    rows = result["rows"]
    if "snnTorch" in rows:
        ratio = rows["snnTorch"]["ratio_to_h2learn"]
        lines.append(
            f"  target snnTorch Leaky >= 4x: {ratio:.2f} {'met' if ratio >= 4 else 'NOT met'}"
        )
    floor = rows["h2learn"]["x_floor"]
    lines.append(
        f"  target within 2x of the floor: {floor:.2f} {'met' if floor <= 2 else 'NOT met'}"
    )
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--torch-ops", action="store_true", help="also time the PyTorch-operator loop")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--text", type=Path)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    reuse_freed_memory()  # as h2learn train does: no fresh pages for every new tensor
    impls = implementations(args.torch_ops)
    header = (
        f"LIF forward + backward, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"fused kernels {'C++' if kernels_available() else 'unavailable'}, "
        f"load {os.getloadavg()[0]:.1f}"
    )
    print(header)
    texts, results = [header], {}
    for label, shape in SHAPES.items():
        results[label] = measure(shape, impls, args.rounds, args.warmup)
        texts.append(report(label, results[label]))
        print(texts[-1], flush=True)
    write_outputs(args.json, {"header": header, "shapes": results}, args.text, texts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
