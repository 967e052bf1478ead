"""An analytical model of one BPTT training step on an NVIDIA V100, the way PyTorch runs it.

The model lists every GPU kernel that h2learn's PyTorch implementation
(:mod:`h2learn.snn`) launches for one training iteration -- forward pass,
BPTT backward pass, weight gradients and the Adam update -- and prices each
with a roofline:

    seconds = max(flops / achievable_flops, bytes / achievable_bandwidth)
              + launches * launch_overhead_seconds
    energy  = static_power_w * seconds + flops * flop_energy + bytes * byte_energy
              (capped at tdp_w * seconds)

Counting and pricing are separate steps (Accelergy style):
:func:`training_step_kernels` counts kernels, FLOPs and DRAM bytes from a
:class:`~h2learn.spec.NetworkSpec` and a :class:`StepImplementation` (which
element-wise kernels the software launches); :func:`kernel_cost` prices one
kernel on a :class:`GPUSpec`.  Every hardware number is a field of
:class:`GPUSpec` with its source in the field's metadata
(:meth:`GPUSpec.sources`); ``[ours]`` marks assumptions where no source
fixes the value.  docs/gpu-baseline.md explains each choice and its
sensitivity.

What is modelled is h2learn's own training step, not a generic GPU SNN
framework: the kernel list follows :mod:`h2learn.snn` (including its
time-invariant first layer and compact max-pooling indices, below), and
:data:`FUSED_LIF` swaps in the fused LIF kernels of the first author's GPU
library.

Conventions: tensors are time-major, ``N = T * B`` is the merged batch that
conv, linear and batch norm run on, ``M = B * neurons`` is one time step of a
layer.  A layer fed an image repeated over the ``T`` steps (the encoding
layer of an image model) computes its conv/linear and batch norm once per
sample, on ``B`` rows instead of ``N`` (``WeightedBlock._runs_once`` in
:mod:`h2learn.snn.layers`).  Byte counts are DRAM traffic (each operand read
once, each result written once; L2 reuse between kernels is not modelled).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from h2learn.errors import H2LearnError
from h2learn.spec import LayerSpec, NetworkSpec

Phase = Literal["forward", "backward", "weight_gradient", "optimizer"]
PHASES: tuple[str, ...] = ("forward", "backward", "weight_gradient", "optimizer")
Engine = Literal["gemm", "elementwise"]
Bound = Literal["compute", "memory"]

DTYPE_BYTES: dict[str, int] = {"float16": 2, "float32": 4, "float64": 8}
"""Bytes per element of each supported storage/compute dtype."""
BOOL_BYTES = 1  # torch.bool and torch.uint8 (saved spikes and masks)
INDEX_BYTES = 8  # torch.int64: the max-pooling indices PyTorch's kernels write and read
COMPACT_INDEX_PLANE = 2**15  # h2learn keeps int16 indices up to this H*W plane, int32 above

# Horowitz, "Computing's energy problem", ISSCC 2014: 45 nm, 0.9 V.
HOROWITZ_FP32_ADD_PJ = 0.9
HOROWITZ_FP32_MULT_PJ = 3.7
# Stillmaker & Baas, Integration 58 (2017) 74-81, Table 5 (energy per operation as a
# polynomial in Vdd, a*V^2 + b*V + c, per node; rows as corrected by the authors' erratum).
STILLMAKER_ENERGY_POLY: dict[int, tuple[float, float, float]] = {
    45: (1.103, -0.362, 0.2767),
    16: (0.2958, -0.1241, 0.03024),
    14: (0.2363, -0.09675, 0.02239),
}


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


def stillmaker_energy_factor(
    from_node_nm: int, from_vdd: float, to_node_nm: int, to_vdd: float
) -> float:
    """Energy-per-operation scaling between two nodes (Stillmaker & Baas 2017, Table 5)."""
    for node in (from_node_nm, to_node_nm):
        if node not in STILLMAKER_ENERGY_POLY:
            raise GPUModelError(
                f"node {node} nm has no scaling row here; use one of "
                f"{', '.join(map(str, STILLMAKER_ENERGY_POLY))}"
            )

    def poly(node: int, vdd: float) -> float:
        a, b, c = STILLMAKER_ENERGY_POLY[node]
        return a * vdd * vdd + b * vdd + c

    return poly(to_node_nm, to_vdd) / poly(from_node_nm, from_vdd)


def arithmetic_floor_fp32_flop_energy_pj(node_nm: int = 16, vdd: float = 0.8) -> float:
    """Energy of the FP32 arithmetic alone per FLOP, scaled from 45 nm to ``node_nm``.

    Horowitz (ISSCC 2014) FP32 multiply + add = 4.6 pJ per FMA (2 FLOPs) at
    45 nm, 0.9 V, scaled with Stillmaker & Baas (2017).  TSMC 12 nm FFN is a
    16 nm-class process, hence the 16 nm / 0.8 V default [ours].  About 0.33
    pJ: a floor that omits register files, operand delivery, control and
    clocks, so it is not used for pricing; it bounds the derived chip-level
    figure from below.
    """
    fma_pj = HOROWITZ_FP32_ADD_PJ + HOROWITZ_FP32_MULT_PJ
    return fma_pj / 2 * stillmaker_energy_factor(45, 0.9, node_nm, vdd)


# ---------------------------------------------------------------------------------------------
# What the software launches
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ElementwiseOp:
    """One element-wise kernel: per element, how many values it reads and writes.

    ``float_*`` count elements of the run's dtype, ``byte_*`` one-byte elements
    (bool spikes, uint8 masks); ``flops`` are arithmetic operations per element
    (compares count as one).
    """

    name: str
    float_reads: float = 0.0
    float_writes: float = 0.0
    byte_reads: float = 0.0
    byte_writes: float = 0.0
    flops: float = 0.0

    def bytes_per_element(self, dtype_bytes: int) -> float:
        floats = (self.float_reads + self.float_writes) * dtype_bytes
        return floats + (self.byte_reads + self.byte_writes) * BOOL_BYTES


def _op(name: str, fr: float = 0, fw: float = 0, br: float = 0, bw: float = 0, fl: float = 0):
    return ElementwiseOp(name, fr, fw, br, bw, fl)


@dataclass(frozen=True)
class StepImplementation:
    """Which element-wise kernels the training software launches, as data.

    The LIF neuron's kernels are grouped by how often they run in one layer's
    call.  Groups named ``*_whole`` run once on all ``T`` steps (``N *
    neurons`` elements); every other LIF group runs on one time step (``M``
    elements):

    - forward: ``lif_forward_setup`` once per call; ``lif_forward_first_step``
      at ``t = 0``; ``lif_forward_step`` at each ``t >= 1`` (``T - 1`` times);
      ``lif_forward_every_step_no_reset_grad`` at every step (``T`` times)
      when the reset-path gradient is off;
    - backward (``t = T-1`` down to ``0``): ``lif_backward_surrogate_*`` and
      ``lif_backward_height`` (surrogate height other than 1) at every step;
      ``lif_backward_last_step`` at ``t = T-1`` only; ``lif_backward_step``
      and ``lif_backward_step_*`` at each ``t < T-1`` (``T - 1`` times);
      ``lif_backward_repeated_*`` in addition when the layer's input is one
      current repeated over the steps (``lif(x, p, steps=T)``), which sums
      ``du`` over the steps.

    Replace a tuple to model another implementation.
    ``batch_norm_running_stats_once`` runs on the ``C`` channels of a batch
    norm computed once per sample (time-invariant input), next to
    ``batch_norm_forward``.
    """

    name: str
    lif_forward_setup: tuple[ElementwiseOp, ...]
    lif_forward_first_step: tuple[ElementwiseOp, ...]
    lif_forward_step: tuple[ElementwiseOp, ...]
    lif_forward_whole_reset_grad: tuple[ElementwiseOp, ...]
    lif_forward_whole_no_reset_grad: tuple[ElementwiseOp, ...]
    lif_backward_whole_reset_grad: tuple[ElementwiseOp, ...]
    lif_backward_whole_no_reset_grad: tuple[ElementwiseOp, ...]
    lif_backward_height: tuple[ElementwiseOp, ...]
    lif_backward_step: tuple[ElementwiseOp, ...]
    batch_norm_forward: tuple[ElementwiseOp, ...]
    batch_norm_backward: tuple[ElementwiseOp, ...]
    adam: tuple[ElementwiseOp, ...]
    batch_norm_running_stats_once: tuple[ElementwiseOp, ...] = ()
    lif_forward_every_step_no_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_surrogate_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_surrogate_no_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_last_step: tuple[ElementwiseOp, ...] = ()
    lif_backward_step_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_step_no_reset_grad: tuple[ElementwiseOp, ...] = ()
    lif_backward_repeated_last_step: tuple[ElementwiseOp, ...] = ()
    lif_backward_repeated_step: tuple[ElementwiseOp, ...] = ()
    gemm_kernels_per_call: int = 1
    foreach_tensors_per_launch: int = 64
    foreach_elements_per_launch: int = 65536 * 320

    def __post_init__(self) -> None:
        for name in ("gemm_kernels_per_call", "foreach_tensors_per_launch"):
            if getattr(self, name) < 1:
                raise GPUModelError(f"StepImplementation.{name} must be at least 1")
        if self.foreach_elements_per_launch < 1:
            raise GPUModelError("StepImplementation.foreach_elements_per_launch must be >= 1")

    def lif_forward_groups(
        self, reset_grad: bool = True
    ) -> list[tuple[str, tuple[ElementwiseOp, ...]]]:
        """The forward LIF groups of one call as ``(schedule, ops)``.

        ``schedule`` is ``"once"`` (one step's elements, once), ``"first"``
        (``t = 0``), ``"later"`` (``t >= 1``), ``"every"`` (all ``T`` steps)
        or ``"whole"`` (all ``T`` steps' elements, once).
        """
        if reset_grad:
            whole, every = self.lif_forward_whole_reset_grad, ()
        else:
            whole = self.lif_forward_whole_no_reset_grad
            every = self.lif_forward_every_step_no_reset_grad
        return [
            ("once", self.lif_forward_setup),
            ("first", self.lif_forward_first_step),
            ("later", self.lif_forward_step),
            ("every", every),
            ("whole", whole),
        ]

    def lif_backward_groups(
        self, reset_grad: bool = True, repeated: bool = False, height: float = 1.0
    ) -> list[tuple[str, tuple[ElementwiseOp, ...]]]:
        """The backward LIF groups of one call as ``(schedule, ops)``.

        Schedules as in :meth:`lif_forward_groups`; in backward ``"first"`` is
        the first step processed (``t = T-1``) and ``"later"`` the other
        ``T - 1`` steps.
        """
        if reset_grad:
            whole = self.lif_backward_whole_reset_grad
            surrogate = self.lif_backward_surrogate_reset_grad
            step = self.lif_backward_step_reset_grad
        else:
            whole = self.lif_backward_whole_no_reset_grad
            surrogate = self.lif_backward_surrogate_no_reset_grad
            step = self.lif_backward_step_no_reset_grad
        groups = [
            ("whole", whole),
            ("every", surrogate),
            ("every", self.lif_backward_height if height != 1.0 else ()),
            ("first", self.lif_backward_last_step),
            ("later", step + self.lif_backward_step),
        ]
        if repeated:
            groups += [
                ("first", self.lif_backward_repeated_last_step),
                ("later", self.lif_backward_repeated_step),
            ]
        return groups

    def replace(self, **changes: Any) -> StepImplementation:
        return dataclasses.replace(self, **changes)


_BN_FORWARD = (
    _op("bn_collect_stats", fr=1, fl=3),  # mean and variance per channel
    _op("bn_normalize", fr=1, fw=1, fl=2),
)
# h2learn.snn.layers.WeightedBlock._current_once: batch norm of a time-invariant input
# runs on B rows with zeroed buffers and momentum 1, then rescales the variance to
# T * B samples and updates the running statistics itself: 7 small per-channel kernels.
_BN_RUNNING_STATS_ONCE = (
    _op("bn_once_zeros_mean", fw=1),
    _op("bn_once_zeros_var", fw=1),
    _op("bn_once_rescale_var", fr=1, fw=1, fl=1),
    _op("bn_once_running_mean_mul", fr=1, fw=1, fl=1),
    _op("bn_once_running_mean_add", fr=2, fw=1, fl=2),
    _op("bn_once_running_var_mul", fr=1, fw=1, fl=1),
    _op("bn_once_running_var_add", fr=2, fw=1, fl=2),
)
_BN_BACKWARD = (
    _op("bn_backward_reduce", fr=2, fl=4),  # dgamma, dbeta and the two reductions for dx
    _op("bn_backward_elemt", fr=2, fw=1, fl=4),
)
_ADAM_FOREACH = (  # torch.optim.Adam's multi-tensor path (one foreach op each)
    _op("adam_lerp_exp_avg", fr=2, fw=1, fl=3),
    _op("adam_mul_exp_avg_sq", fr=1, fw=1, fl=1),
    _op("adam_addcmul_exp_avg_sq", fr=3, fw=1, fl=3),
    _op("adam_sqrt", fr=1, fw=1, fl=1),
    _op("adam_div_bias_correction", fr=1, fw=1, fl=1),
    _op("adam_add_eps", fr=1, fw=1, fl=1),
    _op("adam_addcdiv_param", fr=3, fw=1, fl=3),
)

# h2learn.snn.neuron._LIFFunction, kernel by kernel, as torch.profiler lists its ATen ops
# (one lif(...) forward + backward per setting, CPU, T = 4; docs/gpu-baseline.md).  Every
# kernel runs on one step's slice (M elements); the [T, ...] buffers and the per-call
# scratch tensors are allocations (empty_strided, empty_like), not kernels.  Spikes,
# surrogates and keep = 1 - o are floats in the run's dtype; the packed state (no reset
# path) is uint8.  FLOPs: one per arithmetic op or compare; addcmul a + v * b * c is 3.
_LIF_SUB_ABS_LT = (  # torch.sub(u, v_th, out=scratch).abs_().lt_(window): |u - v_th| < a
    _op("lif_sub_vth", fr=1, fw=1, fl=1),
    _op("lif_abs", fr=1, fw=1, fl=1),
    _op("lif_lt_window", fr=1, fw=1, fl=1),
)
_LIF_GT_SPIKE = _op("lif_gt_spike", fr=1, fw=1, fl=1)  # gt(u, v_th, out=spikes[t])
# le(u, v_th, out=keep): runs after step t's spike for t < T-1, making keep for
# step t+1, so it is counted with the step that reads it (T - 1 launches either way).
_LIF_LE_KEEP = _op("lif_le_keep", fr=1, fw=1, fl=1)
_LIF_MUL_GRAD_SURROGATE = _op("lif_mul_grad_surrogate", fr=2, fw=1, fl=1)  # mul(g, h, out=)

PYTORCH_EAGER = StepImplementation(
    name="pytorch-eager (h2learn.snn)",
    # -- _LIFFunction.forward (neuron.py) --
    lif_forward_setup=(),  # buffers only
    lif_forward_first_step=(
        _op("lif_copy_u0", fr=1, fw=1),  # u.copy_(x_t)
        _LIF_GT_SPIKE,
    ),
    lif_forward_step=(
        _LIF_LE_KEEP,  # keep from u[t-1]
        # _charge: addcmul(x_t, u[t-1], keep, value=alpha, out=u)
        _op("lif_addcmul_charge", fr=3, fw=1, fl=3),
        _LIF_GT_SPIKE,
    ),
    # reset_grad off: the one-byte state (bit 0 spike, bit 1 mask) at every step
    lif_forward_every_step_no_reset_grad=(
        *_LIF_SUB_ABS_LT,
        _op("lif_mul_mask_bit", fr=1, fw=1, fl=1),  # scratch.mul_(MASK_BIT)
        _op("lif_add_spike_bit", fr=2, fw=1, fl=1),  # .add_(spikes[t])
        _op("lif_copy_state_to_uint8", fr=1, bw=1),  # state[t].copy_(...)
    ),
    lif_forward_whole_reset_grad=(),
    lif_forward_whole_no_reset_grad=(),
    # -- _LIFFunction.backward (neuron.py), t = T-1 down to 0 --
    lif_backward_whole_reset_grad=(),
    lif_backward_whole_no_reset_grad=(),
    lif_backward_surrogate_reset_grad=_LIF_SUB_ABS_LT,  # h(u[t]) from u
    # ge(bits, MASK_BIT, out=surrogate): uint8 in, float out.  One kernel on CUDA;
    # on CPU TensorIterator adds a bool temporary and a copy_ (not modelled).
    lif_backward_surrogate_no_reset_grad=(_op("lif_ge_mask_bit", br=1, fw=1, fl=1),),
    lif_backward_height=(_op("lif_mul_height", fr=1, fw=1, fl=1),),  # every step
    lif_backward_last_step=(_LIF_MUL_GRAD_SURROGATE,),  # du[T] = h * g
    lif_backward_step_reset_grad=(
        _op("lif_addcmul_reset", fr=3, fw=1, fl=3),  # addcmul(g, u, du[t+1], value=-alpha)
        _op("lif_mul_surrogate", fr=2, fw=1, fl=1),  # .mul_(surrogate)
        _LIF_LE_KEEP,  # le(u, v_th, out=keep)
    ),
    lif_backward_step_no_reset_grad=(
        _LIF_MUL_GRAD_SURROGATE,  # mul(g, surrogate, out=scratch)
        _op("lif_and_spike_bit", br=1, bw=1, fl=1),  # bitwise_and(bits, SPIKE_BIT, out=)
        _op("lif_copy_spike_bit_to_float", br=1, fw=1),  # keep.copy_(spike_bit)
        _op("lif_neg_spike", fr=1, fw=1, fl=1),  # .neg_()
        _op("lif_add_one", fr=1, fw=1, fl=1),  # .add_(1)
    ),
    # du[t] = addcmul(scratch, keep, du[t+1], value=alpha, out=du[t])
    lif_backward_step=(_op("lif_addcmul_carry", fr=3, fw=1, fl=3),),
    # lif(x, p, steps=T): sum_t du[t] kept in `total`
    lif_backward_repeated_last_step=(_op("lif_copy_total", fr=1, fw=1),),  # out.copy_(total)
    lif_backward_repeated_step=(_op("lif_add_total", fr=2, fw=1, fl=1),),  # total.add_(out)
    batch_norm_forward=_BN_FORWARD,
    batch_norm_backward=_BN_BACKWARD,
    batch_norm_running_stats_once=_BN_RUNNING_STATS_ONCE,
    adam=_ADAM_FOREACH,
)
"""h2learn's PyTorch implementation: the kernels of ``h2learn.snn.neuron`` op by op."""

FUSED_LIF = PYTORCH_EAGER.replace(
    name="fused-lif (one kernel per layer and direction)",
    lif_forward_setup=(),
    lif_forward_first_step=(),
    lif_forward_step=(),
    lif_forward_every_step_no_reset_grad=(),
    # reads x, writes u (kept for the backward pass) and the float spikes
    lif_forward_whole_reset_grad=(_op("lif_fused_forward", fr=1, fw=2, fl=4),),
    lif_forward_whole_no_reset_grad=(_op("lif_fused_forward", fr=1, fw=1, bw=1, fl=4),),
    # reads u (or the packed state) and dL/do, writes dL/dx, looping over T inside
    lif_backward_whole_reset_grad=(_op("lif_fused_backward", fr=2, fw=1, fl=8),),
    lif_backward_whole_no_reset_grad=(_op("lif_fused_backward", fr=1, br=1, fw=1, fl=6),),
    lif_backward_surrogate_reset_grad=(),
    lif_backward_surrogate_no_reset_grad=(),
    lif_backward_height=(),
    lif_backward_last_step=(),
    lif_backward_step_reset_grad=(),
    lif_backward_step_no_reset_grad=(),
    lif_backward_step=(),
    lif_backward_repeated_last_step=(),
    lif_backward_repeated_step=(),
)
"""A custom-CUDA LIF (as in the first author's GPU library): the time loop inside one kernel."""


# ---------------------------------------------------------------------------------------------
# Kernels and their costs
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """``launches`` identical GPU kernels: their total FLOPs and DRAM bytes."""

    layer: str
    phase: str
    kernel: str
    engine: str
    flops: float
    bytes: float
    launches: int = 1


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

    @property
    def launch_dominated(self) -> bool:
        """Whether launch overhead exceeds the kernel's roofline time."""
        return self.overhead_seconds > max(self.compute_seconds, self.memory_seconds)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def kernel_cost(kernel: Kernel, gpu: GPUSpec, dtype: str) -> KernelCost:
    """Price ``kernel`` with a roofline plus launch overhead, and its energy.

    Time: the kernel runs at whichever of the achievable FLOP rate and the
    achievable DRAM bandwidth limits it (no overlap with other kernels), plus
    ``launch_overhead_seconds`` per launch.  Energy: static power over that
    time plus the chip-level energy of its FLOPs and DRAM bytes, capped at
    TDP over that time (the board's power limiter).
    """
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
    )


# ---------------------------------------------------------------------------------------------
# Counting the kernels of one training step
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Ctx:
    """What every counting function needs: network, element size, software, once-per-sample layers.

    ``once`` names the layers that compute once per sample (:func:`_once_per_sample`).
    """

    spec: NetworkSpec
    dtype_bytes: int
    impl: StepImplementation
    once: frozenset[str] = frozenset()

    @property
    def merged(self) -> int:  # N = T * B
        return self.spec.time_steps * self.spec.batch_size

    def rows(self, layer: LayerSpec) -> int:
        """Samples ``layer`` computes on: ``B`` if it runs once per sample, else ``N = T * B``."""
        return self.spec.batch_size if layer.name in self.once else self.merged


def _once_per_sample(spec: NetworkSpec) -> tuple[frozenset[str], list[bool]]:
    """``(layers computing once per sample, whether each layer's input is time-invariant)``.

    Mirrors :mod:`h2learn.snn.layers`: an image model's input is one image
    repeated over ``T > 1`` steps (an ``expand``, stride 0 along time).  Pooling
    and flatten then run once per sample and stay time-invariant; a weighted
    layer runs its conv/linear and batch norm once per sample unless batch norm
    would see a single value per channel (``B * out_positions == 1``,
    ``WeightedBlock._runs_once``).  Its output stays time-invariant only if it
    neither fires nor adds a residual; the LIF neuron turns it into ``[T, B]``
    spikes.
    """
    network_input = spec.input_kind == "image" and spec.time_steps > 1
    once: set[str] = set()
    invariant_in: list[bool] = []
    invariant_out: list[bool] = []
    for layer in spec.layers:
        invariant = network_input if layer.source < 0 else invariant_out[layer.source]
        invariant_in.append(invariant)
        if layer.weighted:
            runs_once = invariant and (
                not layer.batch_norm or spec.batch_size * layer.out_positions > 1
            )
            stays = runs_once and not layer.fires and layer.residual is None
        else:  # TimeDistributed: once per sample while the input is time-invariant
            runs_once = stays = invariant
        if runs_once:
            once.add(layer.name)
        invariant_out.append(stays)
    return frozenset(once), invariant_in


def _elementwise(
    ctx: _Ctx, layer: str, phase: str, op: ElementwiseOp, elements: float, launches: int = 1
) -> Kernel:
    """``launches`` runs of element-wise ``op`` over ``elements`` elements each."""
    return Kernel(
        layer=layer,
        phase=phase,
        kernel=op.name,
        engine="elementwise",
        flops=op.flops * elements * launches,
        bytes=op.bytes_per_element(ctx.dtype_bytes) * elements * launches,
        launches=launches,
    )


def _ops(
    ctx: _Ctx, layer: str, phase: str, ops: Iterable[ElementwiseOp], elements: float, times: int
) -> list[Kernel]:
    if times <= 0:
        return []
    return [_elementwise(ctx, layer, phase, op, elements, times) for op in ops]


def _layer_elements(ctx: _Ctx, shape: tuple[int, ...], rows: int | None = None) -> int:
    """Elements of a ``[rows, *shape]`` activation (default ``rows``: ``N = T * B``)."""
    return (ctx.merged if rows is None else rows) * math.prod(shape)


def _gemm(ctx: _Ctx, layer: LayerSpec, phase: str, name: str, operands: float) -> Kernel:
    """A conv/linear GEMM on the layer's rows: ``2 * rows * macs_per_step`` FLOPs.

    ``rows`` is the merged batch ``N``, or ``B`` for a layer computing once per
    sample.  Forward ``W (*) x``, input gradient ``W^T (*) dz`` and weight
    gradient ``dz (x) x`` all perform the same multiply-accumulates.
    ``operands`` is the number of dtype elements moved (minimum traffic: each
    operand read once, the result written once).
    """
    return Kernel(
        layer=layer.name,
        phase=phase,
        kernel=name,
        engine="gemm",
        flops=2.0 * ctx.rows(layer) * layer.macs_per_step,
        bytes=operands * ctx.dtype_bytes,
        launches=ctx.impl.gemm_kernels_per_call,
    )


def _input_copy_kernels(ctx: _Ctx, layer: LayerSpec, invariant_input: bool) -> list[Kernel]:
    """The copy a layer makes of a network input (or of a time-invariant input).

    Event frames arrive batch-major and are transposed, so ``merge_time``
    copies them into a contiguous ``[T*B, ...]`` tensor.  An image repeated
    over T is never copied to ``[T*B, ...]`` by a layer that runs once per
    sample: a conv copies its ``[B, ...]`` input to channels-last (the layout
    its kernels use), a linear layer reads it in place, as do pooling and
    flatten.  A weighted layer that gets a time-invariant input but cannot
    run once (see :func:`_once_per_sample`) materialises the ``T`` copies.
    """
    runs_once = layer.name in ctx.once
    if invariant_input and runs_once:
        if layer.kind != "conv":
            return []
        copy = _op("input_to_channels_last", fr=1, fw=1)
        elements = _layer_elements(ctx, layer.in_shape, ctx.rows(layer))
        return [_elementwise(ctx, layer.name, "forward", copy, elements)]
    if layer.source >= 0 and not invariant_input:
        return []
    copy = _op("input_to_time_major", fr=1, fw=1)
    return [_elementwise(ctx, layer.name, "forward", copy, _layer_elements(ctx, layer.in_shape))]


def _weighted_forward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """Conv/linear (+ bias) (+ batch norm) (+ residual add), on the layer's rows.

    A layer that runs once per sample does all of it on ``B`` rows; its
    batch norm then also keeps the running statistics with a few per-channel
    kernels (``batch_norm_running_stats_once``).
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    kernels: list[Kernel] = []
    if layer.binary_input:  # _SpikeConv2d / _SpikeLinear keep the spikes as bool
        pack = _op("spikes_to_bool", fr=1, bw=1)
        kernels.append(_elementwise(ctx, layer.name, "forward", pack, n_in))
    kernels.append(
        _gemm(ctx, layer, "forward", f"{layer.kind}_forward", n_in + layer.num_weights + n_out)
    )
    if _has_bias(layer) and (layer.binary_input or layer.kind == "conv"):
        bias = _op("bias_add", fr=1, fw=1, fl=1)
        kernels.append(_elementwise(ctx, layer.name, "forward", bias, n_out))
    if layer.batch_norm:
        kernels += _ops(ctx, layer.name, "forward", ctx.impl.batch_norm_forward, n_out, 1)
        if layer.name in ctx.once:
            stats = ctx.impl.batch_norm_running_stats_once
            kernels += _ops(ctx, layer.name, "forward", stats, layer.out_channels, 1)
    if layer.residual is not None:  # materialises [T*B] even when the current ran once
        add = _op("residual_add", fr=2, fw=1, fl=1)
        kernels.append(
            _elementwise(ctx, layer.name, "forward", add, _layer_elements(ctx, layer.out_shape))
        )
    return kernels


def _has_bias(layer: LayerSpec) -> bool:
    return layer.weighted and not layer.batch_norm


def _lif_kernels(
    ctx: _Ctx, layer: LayerSpec, phase: str, groups: list[tuple[str, tuple[ElementwiseOp, ...]]]
) -> list[Kernel]:
    """The kernels of LIF ``groups`` (see :meth:`StepImplementation.lif_forward_groups`)."""
    steps = ctx.spec.time_steps
    per_step = ctx.spec.batch_size * layer.neurons
    whole = ctx.merged * layer.neurons
    times = {"once": 1, "first": 1, "later": steps - 1, "every": steps}
    kernels: list[Kernel] = []
    for schedule, ops in groups:
        if schedule == "whole":
            kernels += _ops(ctx, layer.name, phase, ops, whole, 1)
        else:
            kernels += _ops(ctx, layer.name, phase, ops, per_step, times[schedule])
    return kernels


def _lif_forward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """The multi-step LIF forward loop (h2learn.snn.neuron) as separate kernels per step."""
    groups = ctx.impl.lif_forward_groups(ctx.spec.lif.reset_grad)
    return _lif_kernels(ctx, layer, "forward", groups)


def _lif_backward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """The hand-written BPTT of the LIF, one step at a time.

    A layer computed once per sample (and not adding a residual) passes its
    one-step current with ``steps=T``; the backward loop then also sums
    ``du`` over the steps (``lif_backward_repeated_*``).
    """
    lif = ctx.spec.lif
    repeated = layer.name in ctx.once and layer.residual is None
    groups = ctx.impl.lif_backward_groups(lif.reset_grad, repeated, lif.height)
    return _lif_kernels(ctx, layer, "backward", groups)


def _compact_index_bytes(layer: LayerSpec, input_needs_grad: bool) -> int | None:
    """Bytes per max-pooling index that h2learn keeps for backward, or ``None`` if none.

    ``h2learn.snn.layers.MaxPool2d`` keeps the argmax indices as int16 (int32
    for an ``H x W`` plane above 2**15) instead of int64 when the windows do
    not overlap (``stride >= kernel``) and the input needs a gradient;
    otherwise PyTorch's own max pooling keeps int64 indices (``None``).
    """
    if layer.kind != "maxpool" or not input_needs_grad or layer.stride < layer.kernel:
        return None
    return 2 if math.prod(layer.in_shape[1:]) <= COMPACT_INDEX_PLANE else 4


def _index_conversion(name: str, read_bytes: int, write_bytes: int) -> ElementwiseOp:
    """A dtype conversion of integer indices, its bytes counted as one-byte elements."""
    return _op(name, br=read_bytes, bw=write_bytes)


def _pool_forward(ctx: _Ctx, layer: LayerSpec, input_needs_grad: bool) -> list[Kernel]:
    """Average or max pooling on the layer's rows; max pooling also writes int64 indices.

    PyTorch's CUDA max pooling always writes int64 indices.  Where h2learn
    keeps compact indices (:func:`_compact_index_bytes`), a second kernel
    narrows them to int16/int32.  That cuts the memory *held* until backward
    to a quarter (or half), but it adds DRAM traffic: 8 bytes read and 2 (or 4)
    written per output here, and the reverse in backward.
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    window = layer.kernel * layer.kernel
    if layer.kind == "avgpool":
        op = _op("avgpool_forward", fr=n_in / n_out, fw=1, fl=window)
        return [_elementwise(ctx, layer.name, "forward", op, n_out)]
    kernel = _elementwise(
        ctx, layer.name, "forward", _op("maxpool_forward", fr=n_in / n_out, fw=1, fl=window), n_out
    )
    kernels = [dataclasses.replace(kernel, bytes=kernel.bytes + n_out * INDEX_BYTES)]
    compact = _compact_index_bytes(layer, input_needs_grad)
    if compact is not None:  # index.to(torch.int16 or torch.int32), saved for backward
        narrow = _index_conversion("maxpool_indices_to_compact", INDEX_BYTES, compact)
        kernels.append(_elementwise(ctx, layer.name, "forward", narrow, n_out))
    return kernels


def _pool_backward(ctx: _Ctx, layer: LayerSpec) -> list[Kernel]:
    """Pooling backward: avg spreads the gradient; max zero-fills then scatters by index.

    Max pooling scatters with int64 indices either way: PyTorch's backward
    kernel reads them, and h2learn's compact indices are widened first
    (``index.long()``) for ``scatter_``.
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    if layer.kind == "avgpool":
        op = _op("avgpool_backward", fr=1, fw=n_in / n_out, fl=1)
        return [_elementwise(ctx, layer.name, "backward", op, n_out)]
    kernels: list[Kernel] = []
    compact = _compact_index_bytes(layer, input_needs_grad=True)  # backward: the input needs it
    if compact is not None:
        widen = _index_conversion("maxpool_indices_to_int64", compact, INDEX_BYTES)
        kernels.append(_elementwise(ctx, layer.name, "backward", widen, n_out))
    zero = _elementwise(ctx, layer.name, "backward", _op("maxpool_grad_zero", fw=1), n_in)
    scatter = _elementwise(ctx, layer.name, "backward", _op("maxpool_backward", fr=1, fw=1), n_out)
    return kernels + [zero, dataclasses.replace(scatter, bytes=scatter.bytes + n_out * INDEX_BYTES)]


def _weighted_backward(ctx: _Ctx, layer: LayerSpec, input_needs_grad: bool) -> list[Kernel]:
    """Batch-norm and bias gradients, the input gradient (dgrad) and weight gradient (wgrad).

    A layer that ran once per sample gets the gradient of its ``[B, ...]``
    current: from the LIF neuron directly (``sum_t du[t]``, computed in its
    BPTT loop), otherwise from autograd summing the ``[T, B, ...]`` gradient of
    the expanded current over T (one reduction kernel).  Everything after
    that runs on ``B`` rows.
    """
    rows = ctx.rows(layer)
    n_in = _layer_elements(ctx, layer.in_shape, rows)
    n_out = _layer_elements(ctx, layer.out_shape, rows)
    name = layer.name
    kernels: list[Kernel] = []
    if name in ctx.once and not (layer.fires and layer.residual is None):
        steps = ctx.spec.time_steps
        total = _op("expand_backward_sum_over_t", fr=steps, fw=1, fl=steps - 1)
        kernels.append(_elementwise(ctx, name, "backward", total, n_out))
    if layer.batch_norm:
        kernels += _ops(ctx, name, "backward", ctx.impl.batch_norm_backward, n_out, 1)
    if _has_bias(layer):
        reduce = _op("bias_grad_reduce", fr=1, fl=1)
        kernels.append(_elementwise(ctx, name, "weight_gradient", reduce, n_out))
    if layer.binary_input:  # the saved bool spikes back to the dtype for cuDNN/cuBLAS
        unpack = _op("bool_spikes_to_float", br=1, fw=1)
        kernels.append(_elementwise(ctx, name, "weight_gradient", unpack, n_in))
    if input_needs_grad:
        operands = n_out + layer.num_weights + n_in
        kernels.append(_gemm(ctx, layer, "backward", f"{layer.kind}_dgrad", operands))
    operands = n_out + n_in + layer.num_weights
    kernels.append(_gemm(ctx, layer, "weight_gradient", f"{layer.kind}_wgrad", operands))
    return kernels


def _readout_and_loss(ctx: _Ctx) -> list[Kernel]:
    """Time-mean read-out, cross-entropy forward and backward (all tiny, launch-bound)."""
    classes = ctx.spec.num_classes
    per_batch = ctx.spec.batch_size * classes
    whole = ctx.merged * classes
    fwd = [
        _elementwise(
            ctx,
            "loss",
            "forward",
            _op("readout_mean_over_t", fr=ctx.spec.time_steps, fw=1, fl=ctx.spec.time_steps),
            per_batch,
        ),
        _elementwise(ctx, "loss", "forward", _op("log_softmax", fr=1, fw=1, fl=4), per_batch),
        _elementwise(ctx, "loss", "forward", _op("nll_loss", fr=1, fl=1), per_batch),
    ]
    bwd = [
        _elementwise(ctx, "loss", "backward", _op("loss_grad_seed", fw=1), 1),
        _elementwise(ctx, "loss", "backward", _op("nll_loss_grad_zero", fw=1), per_batch),
        _elementwise(ctx, "loss", "backward", _op("nll_loss_backward", fr=1, fw=1), per_batch),
        _elementwise(
            ctx, "loss", "backward", _op("log_softmax_backward", fr=2, fw=1, fl=3), per_batch
        ),
        _elementwise(
            ctx, "loss", "backward", _op("readout_mean_backward", fr=1, fw=1, fl=1), whole
        ),
    ]
    return fwd + bwd


def _parameter_tensors(spec: NetworkSpec) -> tuple[int, int]:
    """``(tensors, elements)`` of the trainable parameters (weights, biases, BN affine)."""
    tensors = elements = 0
    for layer in spec.weighted_layers:
        tensors += 1
        elements += layer.num_weights
        if _has_bias(layer):
            tensors += 1
            elements += layer.out_channels
        if layer.batch_norm:
            tensors += 2
            elements += 2 * layer.out_channels
    return tensors, elements


def _optimizer(ctx: _Ctx) -> list[Kernel]:
    """Adam's multi-tensor update: each foreach op covers many tensors per launch."""
    tensors, elements = _parameter_tensors(ctx.spec)
    if tensors == 0:
        return []
    impl = ctx.impl
    launches = max(
        math.ceil(tensors / impl.foreach_tensors_per_launch),
        math.ceil(elements / impl.foreach_elements_per_launch),
    )
    kernels = []
    for op in impl.adam:
        one = _elementwise(ctx, "optimizer", "optimizer", op, elements)
        kernels.append(dataclasses.replace(one, launches=launches))
    return kernels


def _needs_grad(spec: NetworkSpec) -> list[bool]:
    """Whether each layer's output carries a gradient (some weighted layer at or before it)."""
    needs: list[bool] = []
    for layer in spec.layers:
        upstream = layer.source >= 0 and needs[layer.source]
        if layer.residual is not None:
            upstream = upstream or needs[layer.residual]
        needs.append(layer.weighted or upstream)
    return needs


def _consumers(spec: NetworkSpec) -> list[int]:
    """How many layers (or the read-out) read each layer's output."""
    count = [0] * len(spec.layers)
    for layer in spec.layers:
        if layer.source >= 0:
            count[layer.source] += 1
        if layer.residual is not None:
            count[layer.residual] += 1
    count[-1] += 1
    return count


def training_step_kernels(
    spec: NetworkSpec, dtype: str = "float32", implementation: StepImplementation = PYTORCH_EAGER
) -> list[Kernel]:
    """Every kernel of one training iteration, in launch order.

    Forward through all layers, read-out and loss, backward in reverse
    layer order (LIF BPTT, batch norm, dgrad, wgrad, gradient accumulation
    where a layer feeds several), then the optimizer.
    """
    once, invariant_input = _once_per_sample(spec)
    ctx = _Ctx(spec, check_dtype(dtype), implementation, once)
    needs = _needs_grad(spec)
    forward: list[Kernel] = []
    for index, layer in enumerate(spec.layers):
        if layer.weighted or layer.source < 0:
            forward += _input_copy_kernels(ctx, layer, invariant_input[index])
        if layer.weighted:
            forward += _weighted_forward(ctx, layer)
            if layer.fires:
                forward += _lif_forward(ctx, layer)
        elif layer.kind in ("avgpool", "maxpool"):
            input_needs_grad = layer.source >= 0 and needs[layer.source]
            forward += _pool_forward(ctx, layer, input_needs_grad)
    loss = _readout_and_loss(ctx)
    backward: list[Kernel] = []
    consumers = _consumers(spec)
    for index in range(len(spec.layers) - 1, -1, -1):
        layer = spec.layers[index]
        if not needs[index]:
            continue
        if consumers[index] > 1:
            add = _op("grad_accumulate", fr=2, fw=1, fl=1)
            elements = _layer_elements(ctx, layer.out_shape)
            backward.append(
                _elementwise(ctx, layer.name, "backward", add, elements, consumers[index] - 1)
            )
        input_needs_grad = layer.source >= 0 and needs[layer.source]
        if layer.weighted:
            if layer.fires:
                backward += _lif_backward(ctx, layer)
            backward += _weighted_backward(ctx, layer, input_needs_grad)
        elif layer.kind in ("avgpool", "maxpool") and input_needs_grad:
            backward += _pool_backward(ctx, layer)
    return forward + loss + backward + _optimizer(ctx)


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

_SUMMED = ("seconds", "energy_j", "flops", "bytes", "launches", "overhead_seconds")


@dataclass(frozen=True)
class GPUResult:
    """One modelled training step: a row per kernel group, totals and aggregations."""

    network: str
    time_steps: int
    batch_size: int
    dtype: str
    implementation: str
    gpu: GPUSpec
    kernels: tuple[KernelCost, ...]

    @property
    def seconds(self) -> float:
        return sum(k.seconds for k in self.kernels)

    @property
    def energy_j(self) -> float:
        return sum(k.energy_j for k in self.kernels)

    @property
    def power_w(self) -> float:
        """Average board power over the step."""
        return self.energy_j / self.seconds if self.seconds > 0 else 0.0

    @property
    def flops(self) -> float:
        return sum(k.flops for k in self.kernels)

    @property
    def bytes(self) -> float:
        return sum(k.bytes for k in self.kernels)

    @property
    def launches(self) -> int:
        return sum(k.launches for k in self.kernels)

    @property
    def overhead_seconds(self) -> float:
        return sum(k.overhead_seconds for k in self.kernels)

    @property
    def area_mm2(self) -> float:
        return self.gpu.die_area_mm2

    @property
    def compute_floor_seconds(self) -> float:
        """All FLOPs at the *peak* rate of their unit: a hard lower bound on the step time."""
        return sum(k.flops / self.gpu.peak_flops(k.engine, self.dtype) for k in self.kernels)  # type: ignore[arg-type]

    def _aggregate(self, key: Callable[[KernelCost], Any]) -> dict[Any, dict[str, float]]:
        groups: dict[Any, dict[str, float]] = {}
        for k in self.kernels:
            totals = groups.setdefault(key(k), dict.fromkeys(_SUMMED, 0.0))
            for name in _SUMMED:
                totals[name] += getattr(k, name)
        return groups

    def by_layer(self) -> dict[str, dict[str, float]]:
        """Totals per layer (plus ``loss`` and ``optimizer``), in launch order."""
        return self._aggregate(lambda k: k.layer)

    def by_phase(self) -> dict[str, dict[str, float]]:
        """Totals per phase: forward, backward, weight_gradient, optimizer."""
        return self._aggregate(lambda k: k.phase)

    def by_layer_phase(self) -> dict[str, dict[str, float]]:
        """Totals per ``"layer/phase"``."""
        return self._aggregate(lambda k: f"{k.layer}/{k.phase}")

    def by_bound(self) -> dict[str, dict[str, float]]:
        """Totals of compute-bound and memory-bound kernels."""
        return self._aggregate(lambda k: k.bound)

    def totals(self) -> dict[str, float]:
        return {
            "seconds": self.seconds,
            "energy_j": self.energy_j,
            "power_w": self.power_w,
            "flops": self.flops,
            "bytes": self.bytes,
            "launches": self.launches,
            "overhead_seconds": self.overhead_seconds,
            "compute_floor_seconds": self.compute_floor_seconds,
            "area_mm2": self.area_mm2,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "time_steps": self.time_steps,
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "implementation": self.implementation,
            "gpu": self.gpu.to_dict(),
            "totals": self.totals(),
            "by_phase": self.by_phase(),
            "by_layer": self.by_layer(),
            "kernels": [k.to_dict() for k in self.kernels],
        }


def v100_training_step(
    spec: NetworkSpec,
    gpu: GPUSpec = V100,
    dtype: str = "float32",
    implementation: StepImplementation = PYTORCH_EAGER,
) -> GPUResult:
    """Model ``gpu`` (default: the V100) running one BPTT training iteration of ``spec``.

    The iteration is h2learn's PyTorch step: forward on the ``T * B`` merged
    batch with a per-step LIF loop, cross-entropy on the time-mean read-out,
    hand-written BPTT backward, cuDNN/cuBLAS input and weight gradients, and
    a multi-tensor Adam update.  Returns per-kernel rows and totals.
    """
    if not isinstance(spec, NetworkSpec):
        raise GPUModelError(
            f"v100_training_step needs a NetworkSpec (e.g. build_spec('cifar-vgg')), "
            f"got {type(spec).__name__}"
        )
    if not isinstance(gpu, GPUSpec):
        raise GPUModelError(f"gpu must be a GPUSpec, got {type(gpu).__name__}")
    kernels = training_step_kernels(spec, dtype, implementation)
    costs = tuple(kernel_cost(k, gpu, dtype) for k in kernels)
    return GPUResult(
        network=spec.name,
        time_steps=spec.time_steps,
        batch_size=spec.batch_size,
        dtype=dtype,
        implementation=implementation.name,
        gpu=gpu,
        kernels=costs,
    )
