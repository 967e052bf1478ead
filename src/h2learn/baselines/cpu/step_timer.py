"""Wall-clock time of h2learn's real training step, per layer and in total, on the CPU.

The step is the trainer's (:mod:`h2learn.snn.train`): ``zero_grad``, the
network's forward pass, cross-entropy on the rate read-out, ``backward`` and
``torch.optim.Adam.step``.  On the CPU every operator runs synchronously on
the calling thread (autograd's CPU engine included), so ``time.perf_counter``
stamps taken between operators measure the operators between them.

Attribution (:class:`LayerClock`):

* **forward**: each layer module's ``forward`` (and a conv block's
  ``forward_pooled``, where batch norm, firing and max pooling run as one
  fused kernel) is wrapped, for the instrumented steps only, by a function
  that stamps its start and end; a layer's forward time is the sum of its
  calls.  The read-out mean and the loss are the ``loss`` row.
* **backward**: the wrapper passes the layer's output through an identity
  autograd function (:class:`_Mark`) whose backward stamps the time at which
  the gradient of that output is ready.  For a chain of layers (the zoo's
  image models) autograd's CPU engine then runs every backward node of layer
  ``i`` -- LIF BPTT, batch norm, input and weight gradients, the gradient
  accumulation into ``.grad`` -- after layer ``i``'s mark and before layer
  ``i-1``'s, because all of them become ready only from layer ``i``'s output
  gradient and the engine runs ready nodes of later layers first.  A layer's
  backward time is therefore the interval from its mark to the next stamp
  (the next mark, or the end of ``backward()`` for the first layer); the
  interval from the start of ``backward()`` to the first mark is the loss's.
* **optimizer**: ``zero_grad`` plus ``optimizer.step()``.

What no row covers (the network's Python glue between layers) is reported as
``unattributed``; plain steps (not instrumented) give the total that the
prediction is compared with.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

from h2learn.snn.models import SpikingNetwork
from h2learn.snn.train import loss_fn, to_time_major


class _Mark(torch.autograd.Function):
    """Identity whose backward appends ``(layer, time)`` when the output's gradient is ready."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, log: list, layer: str) -> torch.Tensor:  # type: ignore[override]
        ctx.log, ctx.layer = log, layer
        return x.view_as(x)  # keeps strides (channels-last, stride 0 over time)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        ctx.log.append((ctx.layer, time.perf_counter()))
        return grad, None, None


@dataclass
class StepTimes:
    """One instrumented step: seconds per layer and phase, and the rows outside the layers."""

    forward: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    backward: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    optimizer: float = 0.0
    total: float = 0.0
    unattributed: float = 0.0


class LayerClock:
    """Instruments a :class:`SpikingNetwork`'s layers while :meth:`instrumented` is active."""

    def __init__(self, model: SpikingNetwork) -> None:
        self.model = model
        self.spans: dict[str, float] = defaultdict(float)
        self.marks: list[tuple[str, float]] = []
        self.last_end = 0.0

    def _wrap(self, name: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            out = call(*args, **kwargs)
            if isinstance(out, torch.Tensor) and out.requires_grad:
                out = _Mark.apply(out, self.marks, name)
            self.last_end = time.perf_counter()
            self.spans[name] += self.last_end - start
            return out

        return timed

    @contextmanager
    def instrumented(self) -> Iterator[None]:
        """Wrap every layer's ``forward`` (and ``forward_pooled``) for the block; unwrap after."""
        patched: list[tuple[torch.nn.Module, str]] = []
        try:
            for spec, layer in zip(self.model.spec.layers, self.model.layers, strict=True):
                for method in ("forward", "forward_pooled"):
                    if hasattr(layer, method):
                        setattr(layer, method, self._wrap(spec.name, getattr(layer, method)))
                        patched.append((layer, method))
            yield
        finally:
            for layer, method in patched:
                delattr(layer, method)  # the class's method shows through again

    def reset(self) -> None:
        """Forget the spans and marks of the previous instrumented step."""
        self.spans = defaultdict(float)
        self.marks = []
        self.last_end = 0.0


def backward_segments(marks: list[tuple[str, float]], start: float, end: float) -> dict[str, float]:
    """Seconds from each mark to the next stamp, per layer; ``loss``: start to first mark."""
    stamps = [("loss", start), *sorted(marks, key=lambda m: m[1]), ("", end)]
    out: dict[str, float] = defaultdict(float)
    for (name, t0), (_, t1) in zip(stamps, stamps[1:], strict=False):
        out[name] += t1 - t0
    return out


class StepRunner:
    """The trainer's step on one fixed batch, plain or instrumented per layer."""

    def __init__(self, model: SpikingNetwork, x: torch.Tensor, y: torch.Tensor, lr: float) -> None:
        self.model = model
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        self.x, self.y = x, y
        self.clock = LayerClock(model)

    def plain(self) -> float:
        """Seconds of one uninstrumented training step."""
        start = time.perf_counter()
        self.optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(self.model(to_time_major(self.x, self.model)), self.y, "ce")
        loss.backward()
        self.optimizer.step()
        return time.perf_counter() - start

    def instrumented(self) -> StepTimes:
        """One training step with per-layer stamps (see the module docstring)."""
        clock = self.clock
        clock.reset()
        times = StepTimes()
        with clock.instrumented():
            t0 = time.perf_counter()
            self.optimizer.zero_grad(set_to_none=True)
            t_net = time.perf_counter()
            rate = self.model(to_time_major(self.x, self.model))
            loss = loss_fn(rate, self.y, "ce")
            t_loss = time.perf_counter()
            loss.backward()
            t_back = time.perf_counter()
            self.optimizer.step()
            t_end = time.perf_counter()
        for name, seconds in clock.spans.items():
            times.forward[name] += seconds
        times.forward["loss"] += t_loss - clock.last_end
        for name, seconds in backward_segments(clock.marks, t_loss, t_back).items():
            times.backward[name] += seconds
        times.optimizer = (t_net - t0) + (t_end - t_back)
        times.total = t_end - t0
        attributed = sum(times.forward.values()) + sum(times.backward.values()) + times.optimizer
        times.unattributed = times.total - attributed
        return times


# The operators that run the model's "gemm" kernels (conv / fc forward, input and weight
# gradients), as torch.profiler names them; their nested calls are not counted again.
GEMM_OPS = frozenset(
    {
        "aten::conv2d",
        "aten::convolution",
        "aten::_convolution",
        "aten::convolution_backward",
        "aten::linear",
        "aten::matmul",
        "aten::mm",
        "aten::addmm",
    }
)


def _nested_in_gemm(event: Any) -> bool:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name in GEMM_OPS:
            return True
        parent = parent.cpu_parent
    return False


def profiled_gemm_share(runner: StepRunner) -> float:
    """Fraction of one plain step spent inside conv / fc operators, from ``torch.profiler``.

    Splits the measured step between the operators the model prices as GEMMs
    and everything else (element-wise kernels, dispatch, Python).  A share of
    the same profiled step, so that load changes between steps cancel; the
    profiler's own per-operator cost lengthens the rest, so the share is a
    slight underestimate.
    """
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        runner.plain()
        seconds = time.perf_counter() - start
    micros = sum(
        event.cpu_time_total
        for event in prof.events()
        if event.name in GEMM_OPS and not _nested_in_gemm(event)
    )
    return min(micros / 1e6 / seconds, 1.0)


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """Silence file descriptor 2 for a moment: the profiler's C++ side logs each start and
    stop there, which would break the one-line output of the commands that run it."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
