"""The model's entry point: one training step of a network on a GPU, counted and priced."""

from __future__ import annotations

from h2learn.baselines.gpu.device import V100, GPUModelError, GPUSpec, kernel_cost
from h2learn.baselines.gpu.kernels import training_step_kernels
from h2learn.baselines.gpu.numerics import Numerics, resolve_numerics
from h2learn.baselines.gpu.result import GPUResult
from h2learn.baselines.gpu.software import PYTORCH_EAGER, StepImplementation
from h2learn.spec import Workload


def v100_training_step(
    spec: Workload,
    gpu: GPUSpec = V100,
    dtype: str = "float32",
    implementation: StepImplementation = PYTORCH_EAGER,
    numerics: str | Numerics | None = None,
) -> GPUResult:
    """Model ``gpu`` (default: the V100) running one BPTT training iteration of ``spec``.

    The iteration is h2learn's PyTorch step: forward on the ``T * B`` merged
    batch with a per-step LIF loop, cross-entropy on the time-mean read-out,
    hand-written BPTT backward, cuDNN/cuBLAS input and weight gradients, and
    a multi-tensor Adam update.  Returns per-kernel rows and totals.

    Numerics: by default every tensor is float32 (``numerics="fp32"``);
    ``dtype`` runs the whole step in another dtype (``"float16"``: pure half
    precision), ``numerics="fp16-tensor-core"`` in PyTorch's automatic mixed
    precision (:mod:`h2learn.baselines.gpu.numerics`).  Give one of the two.
    """
    if not isinstance(spec, Workload):
        raise GPUModelError(
            f"v100_training_step needs a Workload (e.g. build_spec('cifar-vgg')), "
            f"got {type(spec).__name__}"
        )
    if not isinstance(gpu, GPUSpec):
        raise GPUModelError(f"gpu must be a GPUSpec, got {type(gpu).__name__}")
    step_numerics = resolve_numerics(numerics, dtype)
    kernels = training_step_kernels(spec, implementation=implementation, numerics=step_numerics)
    costs = tuple(kernel_cost(k, gpu) for k in kernels)
    return GPUResult(
        network=spec.name,
        time_steps=spec.time_steps,
        batch_size=spec.batch_size,
        dtype=dtype,
        implementation=implementation.name,
        gpu=gpu,
        kernels=costs,
        numerics=step_numerics.name,
    )
