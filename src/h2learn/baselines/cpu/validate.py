"""The GPU model's method applied to this CPU: predict h2learn's training step, then time it.

:func:`validate_cpu_model` does four things in one process:

1. lists the kernels of one training step with the GPU model's own
   :func:`~h2learn.baselines.gpu.training_step_kernels` (the implementation
   matching what runs: :data:`~h2learn.baselines.gpu.PYTORCH_EAGER` for
   ``backend="torch"``, :data:`~h2learn.baselines.gpu.FUSED_LIF` for
   ``"cpp"``; both with one Adam launch per parameter tensor, as
   ``torch.optim.Adam`` runs on the CPU, where it does not take the
   multi-tensor path);
2. measures this CPU's GEMM rate, streaming bandwidth and per-operator
   dispatch time (:mod:`.rates`) and prices every kernel on them with the
   model's :func:`~h2learn.baselines.gpu.kernel_cost` (roofline + launch
   overhead), through :func:`~h2learn.baselines.gpu.v100_training_step`
   given this CPU as its device;
3. times the real step per layer (:mod:`.step_timer`), interleaving one
   sample of each micro-benchmark, one plain step and one instrumented step
   per round, so that all of them see the same load;
4. compares, row by row (:mod:`.compare`), with medians over the rounds.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

import torch

from h2learn.baselines.cpu.compare import PHASE_COLUMNS, LayerComparison, compare_layers
from h2learn.baselines.cpu.compare import dominant_error as _dominant_error
from h2learn.baselines.cpu.rates import (
    MM_SIZE,
    STREAM_BYTES,
    MachineRates,
    RateProbe,
    cpu_device_spec,
)
from h2learn.baselines.cpu.step_timer import StepRunner, StepTimes, profiled_gemm_share
from h2learn.baselines.gpu import (
    FUSED_LIF,
    PYTORCH_EAGER,
    GPUResult,
    GPUSpec,
    StepImplementation,
    v100_training_step,
)
from h2learn.errors import H2LearnError
from h2learn.spec import Workload, build_spec

BACKENDS = ("torch", "cpp")


class CPUValidationError(H2LearnError, ValueError):
    """Arguments of a CPU validation are invalid; the message names the fix."""


def cpu_step_implementation(backend: str) -> StepImplementation:
    """The GPU model's step implementation for what runs on this CPU with kernel ``backend``.

    ``torch``: PyTorch operators, :data:`PYTORCH_EAGER`.  ``cpp``: the fused
    C++ kernels; :data:`FUSED_LIF` describes the LIF part (one pass per layer
    and direction) but not the batch norm + LIF + pooling fusion of conv
    blocks, which the model has no kernels for.  In both, Adam runs one
    kernel per op and parameter tensor (``foreach_tensors_per_launch=1``).
    """
    if backend not in BACKENDS:
        raise CPUValidationError(f"backend={backend!r} is not one of: {', '.join(BACKENDS)}")
    base = PYTORCH_EAGER if backend == "torch" else FUSED_LIF
    return base.replace(name=f"{base.name}; per-tensor Adam", foreach_tensors_per_launch=1)


def predict_step(spec: Workload, device: GPUSpec, backend: str = "torch") -> GPUResult:
    """The GPU model's prediction of one float32 training step of ``spec`` on ``device``."""
    return v100_training_step(
        spec, gpu=device, dtype="float32", implementation=cpu_step_implementation(backend)
    )


@dataclass(frozen=True)
class CPUValidation:
    """Predicted against measured training-step time of one model on this CPU."""

    model: str
    batch_size: int
    time_steps: int
    backend: str
    implementation: str
    steps: int
    rates: MachineRates
    device: GPUSpec
    rows: tuple[LayerComparison, ...]
    predicted_total_s: float
    measured_total_s: float  # median of plain (uninstrumented) steps
    measured_instrumented_s: float  # median of instrumented steps
    measured_unattributed_s: float  # median time of an instrumented step in no row
    plain_step_seconds: tuple[float, ...]
    predicted_gemm_s: float = 0.0  # the model's conv / fc kernels
    measured_gemm_s: float | None = None  # profiled conv / fc share x measured_total_s

    @property
    def total_error(self) -> float:
        """``predicted / measured - 1`` for the whole step (the plain steps' median)."""
        return self.predicted_total_s / self.measured_total_s - 1.0

    @property
    def dominant_error(self) -> str:
        """What dominates the error, per row and split into GEMMs and the rest.

        Per row: :func:`h2learn.baselines.cpu.compare.dominant_error`.  The split
        compares the model's GEMM kernels with the conv / fc operators of the
        measured step (their share of profiled steps times the plain median),
        and the rest of the prediction with the rest of the measured step.
        """
        text = _dominant_error(list(self.rows), self.measured_total_s)
        if self.measured_gemm_s is None:
            return text
        rest_pred = self.predicted_total_s - self.predicted_gemm_s
        rest_meas = self.measured_total_s - self.measured_gemm_s
        return (
            f"{text} Split: GEMMs (conv/fc operators, profiled) predicted "
            f"{self.predicted_gemm_s * 1e3:.2f} ms, measured {self.measured_gemm_s * 1e3:.2f} ms "
            f"({_signed_ratio(self.predicted_gemm_s, self.measured_gemm_s)}); everything else "
            f"predicted {rest_pred * 1e3:.2f} ms, measured {rest_meas * 1e3:.2f} ms "
            f"({_signed_ratio(rest_pred, rest_meas)})."
        )

    def to_dict(self) -> dict[str, Any]:
        """Every figure, sample and row as a JSON-ready dictionary."""
        return {
            "model": self.model,
            "batch_size": self.batch_size,
            "time_steps": self.time_steps,
            "backend": self.backend,
            "implementation": self.implementation,
            "steps": self.steps,
            "rates": self.rates.to_dict(),
            "device": {
                "name": self.device.name,
                "fp32_flops_per_s": self.device.peak_fp32_flops,
                "bandwidth_bytes_per_s": self.device.dram_bandwidth_bytes_per_s,
                "launch_overhead_seconds": self.device.launch_overhead_seconds,
            },
            "predicted_total_s": self.predicted_total_s,
            "measured_total_s": self.measured_total_s,
            "measured_instrumented_s": self.measured_instrumented_s,
            "measured_unattributed_s": self.measured_unattributed_s,
            "plain_step_seconds": list(self.plain_step_seconds),
            "predicted_gemm_s": self.predicted_gemm_s,
            "measured_gemm_s": self.measured_gemm_s,
            "total_error": self.total_error,
            "dominant_error": self.dominant_error,
            "rows": [row.to_dict() for row in self.rows],
        }

    def table(self) -> str:
        """A plain-text table of the rows and the totals (milliseconds)."""
        head = (
            f"{self.model}  T={self.time_steps} B={self.batch_size}  backend={self.backend}  "
            f"{self.rates.threads} threads  GEMM {self.rates.flops_per_s / 1e9:.1f} GFLOP/s  "
            f"add {self.rates.bandwidth_bytes_per_s / 1e9:.1f} GB/s  "
            f"dispatch {self.rates.dispatch_seconds * 1e6:.2f} us"
        )
        cols = "".join(f"{p[:3] + ' pred/meas':>20}" for p in PHASE_COLUMNS)
        lines = [head, f"{'row':<18}{cols}{'total pred/meas':>22}{'error':>8}  part"]
        for r in self.rows:
            cells = "".join(
                f"{r.predicted[p] * 1e3:>10.2f}/{r.measured[p] * 1e3:<9.2f}" for p in PHASE_COLUMNS
            )
            lines.append(
                f"{r.layer:<18}{cells}{r.predicted_s * 1e3:>11.2f}/{r.measured_s * 1e3:<10.2f}"
                f"{r.relative_error:>+8.0%}  {r.dominant_part}"
            )
        lines.append(
            f"total: predicted {self.predicted_total_s * 1e3:.2f} ms, measured "
            f"{self.measured_total_s * 1e3:.2f} ms (median of {self.steps} plain steps; "
            f"instrumented {self.measured_instrumented_s * 1e3:.2f}, of which "
            f"{self.measured_unattributed_s * 1e3:.2f} in no row), error {self.total_error:+.1%}"
        )
        lines.append(f"dominant error: {self.dominant_error}")
        return "\n".join(lines)


def _signed_ratio(predicted: float, measured: float) -> str:
    return f"{predicted / measured - 1:+.0%}" if measured > 0 else "n/a"


def _check(spec: Workload, steps: int, warmup: int, backend: str) -> None:
    if steps < 1:
        raise CPUValidationError(f"steps={steps} must be at least 1")
    if warmup < 0:
        raise CPUValidationError(f"warmup={warmup} must be 0 or more")
    if backend not in BACKENDS:
        raise CPUValidationError(f"backend={backend!r} is not one of: {', '.join(BACKENDS)}")
    for index, layer in enumerate(spec.layers):
        if layer.source != index - 1 or layer.residual is not None:
            raise CPUValidationError(
                f"model {spec.name} is not a chain of layers (layer {layer.name}); per-layer "
                "backward attribution needs one: pick an image or event model without residuals"
            )


def _synthetic_batch(spec: Workload, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed random batch shaped as the data loader gives it (events batch-major)."""
    gen = torch.Generator().manual_seed(seed)
    if spec.input_kind == "image":
        shape: tuple[int, ...] = (spec.batch_size, *spec.input_shape)
    else:
        shape = (spec.batch_size, spec.time_steps, *spec.input_shape)
    x = torch.rand(shape, generator=gen)
    y = torch.randint(0, spec.num_classes, (spec.batch_size,), generator=gen)
    return x, y


def _median_times(samples: list[StepTimes]) -> tuple[dict[str, float], dict[str, float]]:
    names_f = {n for s in samples for n in s.forward}
    names_b = {n for s in samples for n in s.backward}
    forward = {n: statistics.median(s.forward.get(n, 0.0) for s in samples) for n in names_f}
    backward = {n: statistics.median(s.backward.get(n, 0.0) for s in samples) for n in names_b}
    return forward, backward


def _require_backend(backend: str) -> None:
    """For ``cpp``: build the C++ kernels now (outside the timing) or fail in one line."""
    if backend != "cpp":
        return
    from h2learn.snn.kernels import KernelBuildError, require_kernels

    try:
        require_kernels()
    except KernelBuildError as error:
        raise CPUValidationError(f"backend='cpp': {error}") from None


def _run_rounds(
    runner: StepRunner, probe: RateProbe, steps: int, warmup: int
) -> tuple[list[float], list[StepTimes], MachineRates]:
    """Warm up, then ``steps`` rounds of (micro-benchmarks, plain step, instrumented step).

    The order of the two steps alternates between rounds.
    """
    for _ in range(warmup):
        runner.plain()
        runner.instrumented()
    probe.flop_rate(), probe.bandwidth(), probe.dispatch_seconds()
    flops, bandwidth, dispatch = [], [], []
    plain: list[float] = []
    instrumented: list[StepTimes] = []
    for i in range(steps):
        flops.append(probe.flop_rate())
        bandwidth.append(probe.bandwidth())
        dispatch.append(probe.dispatch_seconds())
        if i % 2:
            instrumented.append(runner.instrumented())
            plain.append(runner.plain())
        else:
            plain.append(runner.plain())
            instrumented.append(runner.instrumented())
    return plain, instrumented, MachineRates.from_samples(flops, bandwidth, dispatch, probe)


def _measure(
    spec: Workload,
    backend: str,
    rounds: tuple[int, int, int],
    probe: RateProbe,
    seed: int,
    lr: float,
) -> tuple[list[float], list[StepTimes], MachineRates, list[float]]:
    """``rounds = (steps, warmup, profiled)``: the interleaved rounds, then profiled steps."""
    from h2learn.snn.allocator import reuse_freed_memory
    from h2learn.snn.kernels import kernel_backend
    from h2learn.snn.models import SpikingNetwork

    reuse_freed_memory()  # as h2learn.snn.train does: later steps reuse mapped pages
    torch.manual_seed(seed)
    x, y = _synthetic_batch(spec, seed)
    runner = StepRunner(SpikingNetwork(spec), x, y, lr)
    with kernel_backend(backend):
        steps, warmup, profiled = rounds
        plain, instrumented, rates = _run_rounds(runner, probe, steps, warmup)
        shares = [profiled_gemm_share(runner) for _ in range(profiled)]
    return plain, instrumented, rates, shares


def validate_cpu_model(
    model_name: str,
    batch_size: int,
    time_steps: int,
    steps: int = 10,
    *,
    warmup: int = 3,
    backend: str = "torch",
    threads: int | None = None,
    seed: int = 0,
    lr: float = 2e-3,
    mm_size: int = MM_SIZE,
    stream_bytes: int = STREAM_BYTES,
    profile_gemm: bool = True,
) -> CPUValidation:
    """Predict h2learn's float32 training step of ``model_name`` on this CPU, and time it.

    ``backend`` picks the kernels that run (``H2LEARN_KERNELS``: ``torch`` =
    PyTorch operators, the case ``PYTORCH_EAGER`` describes; ``cpp`` = the
    fused C++ kernels).  ``threads`` sets ``torch.set_num_threads`` for the run
    (default: as is).  Medians over ``steps`` interleaved rounds after
    ``warmup`` rounds; ``mm_size`` and ``stream_bytes`` size the
    micro-benchmarks (smaller values only for tests).  ``profile_gemm``:
    profile up to 3 more steps; the median share of conv / fc operators in
    them splits the measured step into GEMMs and the rest.  Like the trainer,
    it seeds PyTorch's generator with ``seed`` and tunes ``malloc`` to keep
    freed memory (:func:`h2learn.snn.allocator.reuse_freed_memory`).  Raises
    :class:`CPUValidationError` for bad arguments and ``SpecError`` for an
    unknown model.
    """
    if batch_size < 1 or time_steps < 1:
        raise CPUValidationError(
            f"batch_size={batch_size} and time_steps={time_steps} must be at least 1"
        )
    if threads is not None and threads < 1:
        raise CPUValidationError(f"threads={threads} must be at least 1")
    spec = build_spec(model_name, batch_size=batch_size, time_steps=time_steps)
    _check(spec, steps, warmup, backend)
    _require_backend(backend)
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        probe = RateProbe(mm_size, stream_bytes)
        rounds = (steps, warmup, min(steps, 3) if profile_gemm else 0)
        plain, instrumented, rates, shares = _measure(spec, backend, rounds, probe, seed, lr)
    finally:
        torch.set_num_threads(before)
    return _result(spec, backend, plain, instrumented, rates, shares)


def _result(
    spec: Workload,
    backend: str,
    plain: list[float],
    instrumented: list[StepTimes],
    rates: MachineRates,
    shares: list[float],
) -> CPUValidation:
    """Predict with the measured rates and compare with the medians of the measurements."""
    device = cpu_device_spec(rates)
    prediction = predict_step(spec, device, backend)
    forward, backward = _median_times(instrumented)
    optimizer = statistics.median(s.optimizer for s in instrumented)
    names = [layer.name for layer in spec.layers]
    rows = compare_layers(prediction, names, forward, backward, optimizer)
    measured = statistics.median(plain)
    return CPUValidation(
        model=spec.name,
        batch_size=spec.batch_size,
        time_steps=spec.time_steps,
        backend=backend,
        implementation=prediction.implementation,
        steps=len(plain),
        rates=rates,
        device=device,
        rows=tuple(rows),
        predicted_total_s=prediction.seconds,
        measured_total_s=measured,
        measured_instrumented_s=statistics.median(s.total for s in instrumented),
        measured_unattributed_s=statistics.median(s.unattributed for s in instrumented),
        plain_step_seconds=tuple(plain),
        predicted_gemm_s=sum(k.seconds for k in prediction.kernels if k.engine == "gemm"),
        measured_gemm_s=statistics.median(shares) * measured if shares else None,
    )
