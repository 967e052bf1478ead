"""The GPU as the roofline and power model sees it, and the roofline that prices one kernel.

:class:`GPUSpec` holds every hardware number of the model as a field with
its source in the field's metadata (:meth:`GPUSpec.sources`); ``[ours]``
marks assumptions where no source fixes the value.  :data:`V100` is the
NVIDIA Tesla V100 SXM2.  :func:`kernel_cost` prices one :class:`Kernel`
(``launches`` identical GPU kernels, their FLOPs and DRAM bytes):

    seconds = max(flops / achievable_flops, bytes / achievable_bandwidth)
              + launches * launch_overhead_seconds
    energy  = static_power_w * seconds + flops * flop_energy + bytes * byte_energy
              (capped at tdp_w * seconds)

The Horowitz and Stillmaker & Baas data behind the arithmetic floor
(:func:`arithmetic_floor_fp32_flop_energy_pj`) come from
:mod:`h2learn.arch.cost.reference`, the one copy both hardware models use.

Nothing here knows about spiking networks: to apply the method to another
GPU, make a ``GPUSpec`` with that device's datasheet figures (or
``V100.replace(...)``) and price the same kernel list with it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal

from h2learn.arch.cost.reference import (
    HOROWITZ_FP32_ADD_PJ,
    HOROWITZ_FP32_MULT_PJ,
    STILLMAKER_ENERGY_POLY_BY_NODE,
    stillmaker_energy_factor,
)
from h2learn.errors import H2LearnError

Engine = Literal["gemm", "elementwise"]
"""``gemm``: conv/linear (cuDNN/cuBLAS); ``elementwise``: everything else."""
Bound = Literal["compute", "memory"]

STILLMAKER_ENERGY_POLY = STILLMAKER_ENERGY_POLY_BY_NODE
"""Stillmaker & Baas energy polynomials by node in nm, under the name this package had
before the split (the same object as the reference's, not a copy)."""

DTYPE_BYTES: dict[str, int] = {"float16": 2, "float32": 4, "float64": 8}
"""Bytes per element of each supported storage/compute dtype."""


class GPUModelError(H2LearnError, ValueError):
    """A GPU specification or model input is invalid; the message names the field and the fix."""


_OPTIONAL_FIELDS = ("fp32_flop_energy_pj", "fp64_flop_energy_pj", "tensor_flop_energy_pj")


def _src(text: str) -> dict[str, str]:
    return {"source": text}


@dataclass(frozen=True)
class GPUSpec:
    """A GPU as the roofline and power model sees it; defaults are the V100 SXM2.

    Datasheet fields come from NVIDIA, "NVIDIA Tesla V100 GPU Architecture"
    whitepaper WP-08608-001 v1.1 (2017), Table 1, and the Tesla V100 datasheet
    (2017/2018).  Efficiency, overhead and power fields are cited measurements
    or ``[ours]`` assumptions; ``sources()`` returns the source of each field.

    Energy per FLOP left as ``None`` is *derived*: the dynamic power budget
    ``tdp_w - static_power_w`` divided by the unit's peak rate, i.e. a kernel
    issuing FLOPs at the peak rate of that unit would draw exactly TDP
    (see :meth:`flop_energy_pj`).
    """

    name: str = field(
        default="NVIDIA Tesla V100 SXM2",
        metadata=_src("NVIDIA V100 whitepaper WP-08608-001 v1.1 (2017)"),
    )
    process: str = field(
        default="TSMC 12 nm FFN",
        metadata=_src("NVIDIA V100 whitepaper (2017), Table 1"),
    )
    die_area_mm2: float = field(
        default=815.0, metadata=_src("NVIDIA V100 whitepaper (2017), Table 1: 815 mm^2")
    )
    sm_count: int = field(default=80, metadata=_src("NVIDIA V100 whitepaper (2017), Table 1"))
    boost_clock_hz: float = field(
        default=1.530e9, metadata=_src("NVIDIA V100 whitepaper (2017), Table 1: 1530 MHz boost")
    )
    peak_fp32_flops: float = field(
        default=15.7e12,
        metadata=_src("NVIDIA V100 datasheet: 15.7 TFLOP/s (= 80 SM x 64 FMA x 2 x 1.53 GHz)"),
    )
    peak_fp64_flops: float = field(
        default=7.8e12, metadata=_src("NVIDIA V100 datasheet: 7.8 TFLOP/s")
    )
    peak_tensor_flops: float = field(
        default=125e12,
        metadata=_src("NVIDIA V100 datasheet: 125 TFLOP/s FP16 tensor (FP32 accumulate)"),
    )
    dram_bandwidth_bytes_per_s: float = field(
        default=900e9, metadata=_src("NVIDIA V100 datasheet: 900 GB/s HBM2")
    )
    dram_capacity_bytes: float = field(
        default=16e9, metadata=_src("NVIDIA V100 datasheet: 16 GB (a 32 GB part also exists)")
    )
    l2_cache_bytes: float = field(
        default=6 * 2**20, metadata=_src("NVIDIA V100 whitepaper (2017), Table 1: 6144 KB L2")
    )
    tdp_w: float = field(default=300.0, metadata=_src("NVIDIA V100 datasheet: 300 W (SXM2)"))
    static_power_w: float = field(
        default=40.0,
        metadata=_src(
            "[ours] board power at P0 with no kernel running (leakage, clocks, HBM refresh); "
            "idle V100 boards read about 35-55 W in nvidia-smi; low end chosen (favours the GPU)"
        ),
    )
    gemm_efficiency_cuda_cores: float = field(
        default=0.76,
        metadata=_src(
            "Markidis et al., 'NVIDIA Tensor Core Programmability, Performance & Precision', "
            "IPDPSW 2018: SGEMM reaches 83/7 = 11.9 TFLOP/s on V100, 11.9/15.7 = 0.76"
        ),
    )
    gemm_efficiency_tensor_cores: float = field(
        default=0.66,
        metadata=_src(
            "Markidis et al., IPDPSW 2018: tensor-core GEMM reaches 83 of 125 TFLOP/s = 0.66"
        ),
    )
    dram_bandwidth_efficiency: float = field(
        default=0.85,
        metadata=_src(
            "[ours] 0.85 x 900 = 765 GB/s, between Jia et al., 'Dissecting the NVIDIA Volta GPU "
            "Architecture via Microbenchmarking', arXiv:1804.06826 (2018), global-memory "
            "throughput (~750 GB/s) and STREAM-like copy kernels (~790-850 GB/s)"
        ),
    )
    launch_overhead_seconds: float = field(
        default=5e-6,
        metadata=_src(
            "[ours] per kernel launch (host submission + GPU front end); published figures "
            "are 5-20 us (NVIDIA Developer Blog, 'Understanding the Visualization of Overhead "
            "and Latency in Nsight Systems', 2021: ~20 us launch latency of a PyTorch element-"
            "wise kernel on a V100-SXM); low end chosen (favours the GPU)"
        ),
    )
    dram_energy_pj_per_byte: float = field(
        default=31.2,
        metadata=_src(
            "O'Connor et al., 'Fine-Grained DRAM: Energy-Efficient DRAM for Extreme Bandwidth "
            "Systems', MICRO 2017: HBM2 ~3.9 pJ/bit x 8 bit"
        ),
    )
    onchip_energy_pj_per_dram_byte: float = field(
        default=0.0,
        metadata=_src(
            "[ours] extra L2/crossbar/L1 energy per DRAM byte; 0 = lower bound (favours the "
            "GPU); partly covered by static_power_w; see docs/gpu-baseline.md for sensitivity"
        ),
    )
    fp32_flop_energy_pj: float | None = field(
        default=None,
        metadata=_src("[ours] None: derived, (tdp_w - static_power_w) / peak_fp32_flops"),
    )
    fp64_flop_energy_pj: float | None = field(
        default=None,
        metadata=_src("[ours] None: derived, (tdp_w - static_power_w) / peak_fp64_flops"),
    )
    tensor_flop_energy_pj: float | None = field(
        default=None,
        metadata=_src("[ours] None: derived, (tdp_w - static_power_w) / peak_tensor_flops"),
    )

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise GPUModelError("GPUSpec.name must not be empty")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in ("name", "process") or (value is None and f.name in _OPTIONAL_FIELDS):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise GPUModelError(f"GPUSpec.{f.name}={value!r} must be a number")
            if not math.isfinite(value) or value < 0:
                raise GPUModelError(f"GPUSpec.{f.name}={value} must be a finite number >= 0")
            zero_ok = f.name in ("onchip_energy_pj_per_dram_byte", "launch_overhead_seconds")
            if value == 0 and not zero_ok:
                raise GPUModelError(f"GPUSpec.{f.name}=0 must be positive")
        for name in (
            "gemm_efficiency_cuda_cores",
            "gemm_efficiency_tensor_cores",
            "dram_bandwidth_efficiency",
        ):
            if getattr(self, name) > 1:
                raise GPUModelError(
                    f"GPUSpec.{name}={getattr(self, name)} is a fraction of peak; "
                    "use a value in (0, 1]"
                )
        if self.static_power_w >= self.tdp_w:
            raise GPUModelError(
                f"GPUSpec.static_power_w={self.static_power_w} must be below tdp_w={self.tdp_w}"
            )

    # -- derived rates ---------------------------------------------------------------------

    @staticmethod
    def unit(engine: Engine, dtype: str) -> str:
        """The unit that runs ``engine`` kernels in ``dtype``: ``tensor``, ``fp32`` or ``fp64``.

        GEMM-like kernels (conv, linear) use tensor cores in float16 and the
        CUDA cores otherwise; element-wise kernels always use the CUDA cores
        (float16 element-wise work is priced at the FP32 rate, which would only
        matter if such a kernel were compute-bound; they are bandwidth-bound).
        """
        check_dtype(dtype)
        if dtype == "float64":
            return "fp64"
        if dtype == "float16" and engine == "gemm":
            return "tensor"
        return "fp32"

    def peak_flops(self, engine: Engine, dtype: str) -> float:
        """Peak FLOP/s of the unit that runs ``engine`` kernels in ``dtype`` (datasheet)."""
        return {
            "fp64": self.peak_fp64_flops,
            "tensor": self.peak_tensor_flops,
            "fp32": self.peak_fp32_flops,
        }[self.unit(engine, dtype)]

    def achievable_flops(self, engine: Engine, dtype: str) -> float:
        """FLOP/s a well-tuned kernel sustains: peak x measured GEMM efficiency.

        Element-wise kernels get the GEMM efficiency of the CUDA cores too; they
        are never compute-bound in this workload, so the choice does not matter.
        """
        if self.unit(engine, dtype) == "tensor":
            efficiency = self.gemm_efficiency_tensor_cores
        else:
            efficiency = self.gemm_efficiency_cuda_cores
        return self.peak_flops(engine, dtype) * efficiency

    @property
    def achievable_bandwidth_bytes_per_s(self) -> float:
        """Sustained DRAM bandwidth of a streaming kernel (see ``dram_bandwidth_efficiency``)."""
        return self.dram_bandwidth_bytes_per_s * self.dram_bandwidth_efficiency

    @property
    def dynamic_power_budget_w(self) -> float:
        """Watts above static power that kernels may draw: ``tdp_w - static_power_w``."""
        return self.tdp_w - self.static_power_w

    def flop_energy_pj(self, engine: Engine, dtype: str) -> float:
        """Chip-level energy of one FLOP on the unit running ``engine`` in ``dtype``.

        Unless set explicitly, derived from the datasheet: a kernel issuing FLOPs
        at the unit's *peak* rate would draw exactly TDP, so one FLOP costs
        ``(tdp_w - static_power_w) / peak_flops``.  This includes register-file,
        operand-delivery and scheduling energy, which on a GPU dwarf the
        arithmetic itself (compare :func:`arithmetic_floor_fp32_flop_energy_pj`).
        """
        override = {
            "fp64": self.fp64_flop_energy_pj,
            "tensor": self.tensor_flop_energy_pj,
            "fp32": self.fp32_flop_energy_pj,
        }[self.unit(engine, dtype)]
        if override is not None:
            return override
        peak = self.peak_flops(engine, dtype)
        return self.dynamic_power_budget_w / peak * 1e12

    @property
    def byte_energy_pj(self) -> float:
        """Energy of moving one byte between DRAM and the SMs (HBM2 device + on-chip path)."""
        return self.dram_energy_pj_per_byte + self.onchip_energy_pj_per_dram_byte

    # -- plumbing ------------------------------------------------------------------------------

    def replace(self, **changes: Any) -> GPUSpec:
        """A copy with ``changes`` applied (validated like a new spec)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise GPUModelError(
                f"GPUSpec has no field {', '.join(sorted(unknown))}; see GPUSpec.sources()"
            )
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-ready dictionary."""
        return dataclasses.asdict(self)

    @classmethod
    def sources(cls) -> dict[str, str]:
        """``field name -> source`` for every field (``[ours]`` marks assumptions)."""
        return {f.name: f.metadata.get("source", "") for f in dataclasses.fields(cls)}


V100 = GPUSpec()
"""The NVIDIA Tesla V100 SXM2 with this project's documented defaults."""


def check_dtype(dtype: str) -> int:
    """Bytes per element of ``dtype``; a one-line error if it is not supported."""
    if dtype not in DTYPE_BYTES:
        raise GPUModelError(
            f"dtype={dtype!r} is not supported; choose one of: {', '.join(DTYPE_BYTES)}"
        )
    return DTYPE_BYTES[dtype]


def arithmetic_floor_fp32_flop_energy_pj(node_nm: int = 16, vdd: float = 0.8) -> float:
    """Energy of the FP32 arithmetic alone per FLOP, scaled from 45 nm to ``node_nm``.

    Horowitz (ISSCC 2014) FP32 multiply + add = 4.6 pJ per FMA (2 FLOPs) at
    45 nm, 0.9 V, scaled with Stillmaker & Baas (2017) -- the data and scaling
    the H2Learn cost model prices with (:mod:`h2learn.arch.cost.reference`).
    TSMC 12 nm FFN is a 16 nm-class process, hence the 16 nm / 0.8 V default
    [ours].  About 0.33 pJ: a floor that omits register files, operand
    delivery, control and clocks, so it is not used for pricing; it bounds
    the derived chip-level figure from below.
    """
    fma_pj = HOROWITZ_FP32_ADD_PJ + HOROWITZ_FP32_MULT_PJ
    return fma_pj / 2 * stillmaker_energy_factor(45, 0.9, node_nm, vdd)


# ---------------------------------------------------------------------------------------------
# The roofline: one kernel priced on a GPU
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """``launches`` identical GPU kernels: their total FLOPs and DRAM bytes.

    ``engine`` is ``"gemm"`` (conv/linear, cuDNN/cuBLAS) or ``"elementwise"``;
    ``dtype`` is the dtype the kernel computes in, which with ``engine``
    picks the unit that runs it (:meth:`GPUSpec.unit`: tensor cores for a
    float16 GEMM).  ``bytes`` already counts each operand in its own dtype.
    """

    layer: str
    phase: str
    kernel: str
    engine: str
    flops: float
    bytes: float
    launches: int = 1
    dtype: str = "float32"


@dataclass(frozen=True)
class KernelCost:
    """A :class:`Kernel` priced on a GPU: roofline time, launch overhead, energy."""

    layer: str
    phase: str
    kernel: str
    engine: str
    flops: float
    bytes: float
    launches: int
    compute_seconds: float
    memory_seconds: float
    overhead_seconds: float
    seconds: float
    bound: str
    energy_j: float
    dtype: str = "float32"

    @property
    def launch_dominated(self) -> bool:
        """Whether launch overhead exceeds the kernel's roofline time."""
        return self.overhead_seconds > max(self.compute_seconds, self.memory_seconds)

    def to_dict(self) -> dict[str, Any]:
        """Every field as a JSON-ready dictionary."""
        return dataclasses.asdict(self)


def kernel_cost(kernel: Kernel, gpu: GPUSpec, dtype: str | None = None) -> KernelCost:
    """Price ``kernel`` with a roofline plus launch overhead, and its energy.

    Time: the kernel runs at whichever of the achievable FLOP rate and the
    achievable DRAM bandwidth limits it (no overlap with other kernels), plus
    ``launch_overhead_seconds`` per launch.  Energy: static power over that
    time plus the chip-level energy of its FLOPs and DRAM bytes, capped at
    TDP over that time (the board's power limiter).

    ``dtype`` picks the unit (with ``kernel.engine``); ``None``, the default,
    takes the kernel's own ``dtype``.  Passing it prices the kernel as if it
    computed in that dtype (its byte count is left as it is).
    """
    dtype = kernel.dtype if dtype is None else dtype
    check_dtype(dtype)
    compute_s = kernel.flops / gpu.achievable_flops(kernel.engine, dtype)  # type: ignore[arg-type]
    memory_s = kernel.bytes / gpu.achievable_bandwidth_bytes_per_s
    overhead_s = kernel.launches * gpu.launch_overhead_seconds
    seconds = max(compute_s, memory_s) + overhead_s
    dynamic_pj = (
        kernel.flops * gpu.flop_energy_pj(kernel.engine, dtype)  # type: ignore[arg-type]
        + kernel.bytes * gpu.byte_energy_pj
    )
    energy_j = min(gpu.static_power_w * seconds + dynamic_pj * 1e-12, gpu.tdp_w * seconds)
    return KernelCost(
        layer=kernel.layer,
        phase=kernel.phase,
        kernel=kernel.kernel,
        engine=kernel.engine,
        flops=kernel.flops,
        bytes=kernel.bytes,
        launches=kernel.launches,
        compute_seconds=compute_s,
        memory_seconds=memory_s,
        overhead_seconds=overhead_s,
        seconds=seconds,
        bound="compute" if compute_s >= memory_s else "memory",
        energy_j=energy_j,
        dtype=dtype,
    )
