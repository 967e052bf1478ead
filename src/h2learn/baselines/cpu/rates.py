"""Micro-benchmarks of this CPU, and the device description the GPU roofline takes.

The GPU model (:mod:`h2learn.baselines.gpu`) prices a kernel with three
numbers of the machine: the FLOP rate a well-tuned GEMM sustains, the
bandwidth a streaming element-wise kernel sustains, and a fixed cost per
kernel launch.  On a V100 they come from the datasheet and published
measurements; here they are measured, each by the simplest operation that
exposes it, with PyTorch's own CPU kernels and the thread count of the run:

* **FLOP rate**: a float32 ``torch.mm`` of two ``n x n`` matrices
  (``2 n^3`` FLOPs), large enough to run at the BLAS library's best rate;
* **memory bandwidth**: ``torch.add(a, b, out=c)`` on float32 vectors far
  larger than the last-level cache, counting 12 bytes per element (two reads
  and one write, the same convention as the model's element-wise kernels);
* **dispatch overhead**: the time per call of a string of tiny element-wise
  operators (16 elements) of the kinds the LIF loop calls, where the
  arithmetic is negligible and what is left is PyTorch's per-operator cost
  (Python binding, dispatcher, TensorIterator set-up, output allocation).

:class:`RateProbe` takes one sample of each; callers interleave samples with
other work and reduce them with :meth:`MachineRates.from_samples` (medians).
"""

from __future__ import annotations

import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from h2learn.baselines.gpu import V100, GPUModelError, GPUSpec

MM_SIZE = 2048
STREAM_BYTES = 64 * 2**20  # per vector: 3 x 64 MiB, well above a 32 MiB L3 cache
TINY_ELEMENTS = 16
TINY_REPEATS = 200  # calls of each tiny operator per sample
ADD_BYTES_PER_ELEMENT = 12  # float32 add: read a, read b, write c


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


class RateProbe:
    """The three micro-benchmarks, one sample per call, on preallocated float32 tensors.

    ``mm_size`` and ``stream_bytes`` are parameters so that tests can run
    small versions; the defaults are what a validation uses.
    """

    def __init__(self, mm_size: int = MM_SIZE, stream_bytes: int = STREAM_BYTES) -> None:
        if mm_size < 1 or stream_bytes < 4:
            raise GPUModelError(
                f"RateProbe needs mm_size >= 1 and stream_bytes >= 4, got {mm_size}, {stream_bytes}"
            )
        gen = torch.Generator().manual_seed(0)
        self.mm_size = mm_size
        self._a = torch.randn(mm_size, mm_size, generator=gen)
        self._b = torch.randn(mm_size, mm_size, generator=gen)
        self._c = torch.empty(mm_size, mm_size)
        elements = stream_bytes // 4
        self.stream_elements = elements
        self._x = torch.rand(elements, generator=gen)
        self._y = torch.rand(elements, generator=gen)
        self._z = torch.empty(elements)
        self._t = [torch.rand(TINY_ELEMENTS, generator=gen) for _ in range(3)]

    def flop_rate(self) -> float:
        """FLOP/s of one float32 ``n x n`` matrix product."""
        start = time.perf_counter()
        torch.mm(self._a, self._b, out=self._c)
        return 2.0 * self.mm_size**3 / (time.perf_counter() - start)

    def bandwidth(self) -> float:
        """Bytes/s of one large float32 ``add`` (12 bytes moved per element)."""
        start = time.perf_counter()
        torch.add(self._x, self._y, out=self._z)
        seconds = time.perf_counter() - start
        return ADD_BYTES_PER_ELEMENT * self.stream_elements / seconds

    def dispatch_seconds(self) -> float:
        """Seconds per call of tiny element-wise operators (9 calls of the LIF loop's kinds)."""
        a, b, c = self._t
        start = time.perf_counter()
        for _ in range(TINY_REPEATS):
            torch.add(a, b, out=c)
            torch.addcmul(a, b, c, value=0.5, out=c)
            torch.gt(a, 0.5, out=c)
            torch.le(a, 0.5, out=c)
            c.mul_(b)
            torch.sub(a, 0.5).abs_().lt_(0.5)  # 3 calls, one allocating
            c.copy_(a)
        return (time.perf_counter() - start) / (TINY_REPEATS * 9)


def _positive_finite(values: list[float], what: str) -> list[float]:
    if not values or any(not (v > 0 and v < float("inf")) for v in values):
        raise GPUModelError(f"{what} samples must be positive and finite, got {values[:5]}")
    return values


@dataclass(frozen=True)
class MachineRates:
    """Medians (and best samples) of the micro-benchmarks, with the conditions they ran in."""

    flops_per_s: float
    bandwidth_bytes_per_s: float
    dispatch_seconds: float
    flops_per_s_best: float
    bandwidth_bytes_per_s_best: float
    dispatch_seconds_best: float
    samples: int
    threads: int
    cpu: str
    mm_size: int
    stream_bytes_per_vector: int
    torch_version: str = field(default_factory=lambda: torch.__version__)

    @classmethod
    def from_samples(
        cls,
        flops: list[float],
        bandwidth: list[float],
        dispatch: list[float],
        probe: RateProbe,
    ) -> MachineRates:
        """Reduce samples taken with ``probe`` to medians (the figures used) and best samples."""
        flops = _positive_finite(flops, "FLOP-rate")
        bandwidth = _positive_finite(bandwidth, "bandwidth")
        dispatch = _positive_finite(dispatch, "dispatch")
        return cls(
            flops_per_s=statistics.median(flops),
            bandwidth_bytes_per_s=statistics.median(bandwidth),
            dispatch_seconds=statistics.median(dispatch),
            flops_per_s_best=max(flops),
            bandwidth_bytes_per_s_best=max(bandwidth),
            dispatch_seconds_best=min(dispatch),
            samples=min(len(flops), len(bandwidth), len(dispatch)),
            threads=torch.get_num_threads(),
            cpu=cpu_name(),
            mm_size=probe.mm_size,
            stream_bytes_per_vector=probe.stream_elements * 4,
        )

    def to_dict(self) -> dict[str, Any]:
        """Every figure and condition as a JSON-ready dictionary."""
        return asdict(self)


def measure_rates(
    repeats: int = 5, mm_size: int = MM_SIZE, stream_bytes: int = STREAM_BYTES
) -> MachineRates:
    """Run the three micro-benchmarks ``repeats`` times (after one untimed round); medians."""
    if repeats < 1:
        raise GPUModelError(f"repeats={repeats} must be at least 1")
    probe = RateProbe(mm_size, stream_bytes)
    probe.flop_rate(), probe.bandwidth(), probe.dispatch_seconds()  # warm-up: pages, caches
    flops, bandwidth, dispatch = [], [], []
    for _ in range(repeats):
        flops.append(probe.flop_rate())
        bandwidth.append(probe.bandwidth())
        dispatch.append(probe.dispatch_seconds())
    return MachineRates.from_samples(flops, bandwidth, dispatch, probe)


def cpu_device_spec(rates: MachineRates) -> GPUSpec:
    """This CPU in the GPU model's device type: the measured rates, efficiencies of 1.

    The measured GEMM rate and add bandwidth *are* the achievable rates, so
    the efficiency fields are 1 and ``peak_*`` hold the measurements; the
    launch overhead is the measured per-operator dispatch time.  Only time is
    validated: the area, power and energy fields keep the V100's values and
    mean nothing for a CPU (they are never read by this validation), and the
    FP64 and tensor-core rates, which float32 training does not use, are set
    to the measured FP32 rate only because the type needs positive numbers.
    """
    return V100.replace(
        name=f"{rates.cpu} ({rates.threads} threads, measured)",
        process="n/a (time only)",
        sm_count=rates.threads,
        peak_fp32_flops=rates.flops_per_s,
        peak_fp64_flops=rates.flops_per_s,
        peak_tensor_flops=rates.flops_per_s,
        gemm_efficiency_cuda_cores=1.0,
        gemm_efficiency_tensor_cores=1.0,
        dram_bandwidth_bytes_per_s=rates.bandwidth_bytes_per_s,
        dram_bandwidth_efficiency=1.0,
        launch_overhead_seconds=rates.dispatch_seconds,
    )
