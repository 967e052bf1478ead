"""An analytical model of one BPTT training step on an NVIDIA V100, the way PyTorch runs it.

The model lists every GPU kernel of h2learn's PyTorch training step and
prices each with a roofline plus launch overhead (docs/gpu-baseline.md).
Counting and pricing are separate steps (Accelergy style), one module each:

* :mod:`~h2learn.baselines.gpu.device` -- :class:`GPUSpec` (every hardware
  number with its source), :data:`V100`, and the roofline
  :func:`kernel_cost` that prices one :class:`Kernel`;
* :mod:`~h2learn.baselines.gpu.software` -- what the software launches
  besides the GEMMs: :class:`ElementwiseOp`, :class:`StepImplementation`,
  :data:`PYTORCH_EAGER`, :data:`FUSED_LIF`;
* :mod:`~h2learn.baselines.gpu.numerics` -- which dtype each tensor is in:
  :class:`Numerics`, :data:`FP32` (default), :data:`FP16_TENSOR_CORE`
  (PyTorch automatic mixed precision on the tensor cores);
* :mod:`~h2learn.baselines.gpu.kernels` -- :func:`training_step_kernels`,
  the kernel list of one step of a :class:`~h2learn.spec.NetworkSpec`;
* :mod:`~h2learn.baselines.gpu.result` -- :class:`GPUResult`;
* :mod:`~h2learn.baselines.gpu.step` -- :func:`v100_training_step`, the
  composition of the above.

To apply the method to another device, price the same kernel list on
another spec: ``v100_training_step(spec, gpu=GPUSpec(name=..., ...))``, or
``[kernel_cost(k, gpu) for k in training_step_kernels(spec)]`` step by step.
"""

from h2learn.baselines.gpu.device import (
    DTYPE_BYTES,
    HOROWITZ_FP32_ADD_PJ,
    HOROWITZ_FP32_MULT_PJ,
    STILLMAKER_ENERGY_POLY,
    V100,
    Bound,
    Engine,
    GPUModelError,
    GPUSpec,
    Kernel,
    KernelCost,
    arithmetic_floor_fp32_flop_energy_pj,
    check_dtype,
    kernel_cost,
    stillmaker_energy_factor,
)
from h2learn.baselines.gpu.kernels import (
    COMPACT_INDEX_PLANE,
    INDEX_BYTES,
    PHASES,
    Phase,
    training_step_kernels,
)
from h2learn.baselines.gpu.numerics import (
    FP16_TENSOR_CORE,
    FP32,
    NUMERICS,
    Numerics,
    TensorClass,
    resolve_numerics,
)
from h2learn.baselines.gpu.result import GPUResult
from h2learn.baselines.gpu.software import (
    BOOL_BYTES,
    FUSED_LIF,
    PYTORCH_EAGER,
    ElementwiseOp,
    StepImplementation,
    elementwise_op,
)
from h2learn.baselines.gpu.step import v100_training_step

__all__ = [
    "BOOL_BYTES",
    "COMPACT_INDEX_PLANE",
    "DTYPE_BYTES",
    "FP16_TENSOR_CORE",
    "FP32",
    "FUSED_LIF",
    "HOROWITZ_FP32_ADD_PJ",
    "HOROWITZ_FP32_MULT_PJ",
    "INDEX_BYTES",
    "NUMERICS",
    "PHASES",
    "PYTORCH_EAGER",
    "STILLMAKER_ENERGY_POLY",
    "V100",
    "Bound",
    "ElementwiseOp",
    "Engine",
    "GPUModelError",
    "GPUResult",
    "GPUSpec",
    "Kernel",
    "KernelCost",
    "Numerics",
    "Phase",
    "StepImplementation",
    "TensorClass",
    "arithmetic_floor_fp32_flop_energy_pj",
    "check_dtype",
    "elementwise_op",
    "kernel_cost",
    "resolve_numerics",
    "stillmaker_energy_factor",
    "training_step_kernels",
    "v100_training_step",
]
