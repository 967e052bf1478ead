"""Baselines H2Learn is compared against: the NVIDIA V100 GPU (modelled, or measured on a GPU).

``measure_training_step`` is imported lazily from :mod:`h2learn.baselines.gpu_measure`
so that ``python -m h2learn.baselines.gpu_measure`` runs that module only once.
"""

from typing import Any

from h2learn.baselines.gpu import (
    FUSED_LIF,
    PYTORCH_EAGER,
    V100,
    ElementwiseOp,
    GPUModelError,
    GPUResult,
    GPUSpec,
    Kernel,
    KernelCost,
    StepImplementation,
    kernel_cost,
    training_step_kernels,
    v100_training_step,
)

__all__ = [
    "FUSED_LIF",
    "PYTORCH_EAGER",
    "V100",
    "ElementwiseOp",
    "GPUModelError",
    "GPUResult",
    "GPUSpec",
    "Kernel",
    "KernelCost",
    "StepImplementation",
    "kernel_cost",
    "measure_training_step",
    "training_step_kernels",
    "v100_training_step",
]


def __getattr__(name: str) -> Any:
    if name == "measure_training_step":
        from h2learn.baselines.gpu_measure import measure_training_step

        return measure_training_step
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
