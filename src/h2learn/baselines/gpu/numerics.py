"""The step's numerics: which dtype each class of tensor is stored and computed in.

Two presets, picked by name with ``v100_training_step(spec, numerics=...)``:

* ``"fp32"`` (:data:`FP32`, the default): every tensor in float32, GEMMs on
  the FP32 CUDA cores -- the model as it has always been;
* ``"fp16-tensor-core"`` (:data:`FP16_TENSOR_CORE`): mixed precision as
  PyTorch's automatic mixed precision (``torch.autocast(device_type="cuda",
  dtype=torch.float16)`` with ``torch.amp.GradScaler``) runs the step.

Each choice of the mixed-precision preset rests on the PyTorch documentation,
"Automatic Mixed Precision package - torch.amp" ([amp]), section "Autocast
Op Reference", or on PyTorch's source:

* **GEMMs in float16 on the tensor cores.** ``conv2d``, ``linear`` and
  ``matmul`` are "CUDA Ops that can autocast to float16" [amp]; "if the
  forward pass for a particular op has float16 inputs, the backward pass for
  that op will produce float16 gradients" [amp, Gradient Scaling], so dgrad
  and wgrad run in float16 too.  Their operands are 2 bytes each; the unit is
  the tensor cores (125 TFLOP/s peak, :attr:`GPUSpec.peak_tensor_flops`).
* **Element-wise kernels on activations in float16.** The LIF's kernels,
  batch norm, bias and residual adds, pooling, gradient accumulation and the
  spike packing are on neither autocast list; "ops not listed run in the
  type of their inputs" [amp], and their inputs are the float16 outputs of
  the GEMMs (the LIF's ``out=`` ops are not autocast-eligible at all and
  write into buffers made like their float16 input).  ``addcmul`` is on the
  "promote to the widest input type" list, and all its inputs are float16.
  Batch norm reads float16 data with float32 affine parameters and running
  statistics (PyTorch's mixed-type batch norm, ``is_mixed_type`` in
  ``aten/src/ATen/native/cuda/Normalization.cu``): its per-channel kernels
  are priced in float32.
* **Parameters, their gradients and Adam in float32.** autocast does not
  change a model's parameters; it casts a float32 weight to float16 as the
  GEMM reads it (once per step: "cache_enabled ... the weight cache inside
  autocast" [amp, ``torch.autocast``]), and the cast's backward turns the
  float16 weight gradient into the float32 ``.grad`` the optimizer reads.
  The model adds those two casts per weight (and bias) tensor; a bias is
  taken as cast with its weight, as ``F.conv2d``/``F.linear`` do under
  autocast ([ours]: h2learn's explicit ``z + bias`` after a spike GEMM would
  promote to float32 with a float32 bias).
* **The network input in float32**, as the data loader hands it over; the
  first GEMM casts it to float16 (one cast kernel).
* **The loss in float32.** ``log_softmax`` and ``nll_loss`` are "CUDA Ops
  that can autocast to float32" [amp]: a cast of the read-out to float32
  before them, and of their gradient back to float16 after.  The read-out's
  mean over the time steps is not listed and stays in float16.
* **Loss scaling** (``torch.amp.GradScaler``, ``torch/amp/grad_scaler.py``):
  ``scale(loss)`` multiplies the loss by the scale (one kernel, and one in
  its backward); ``unscale_`` computes ``1 / scale`` in float64 (three
  one-element kernels), zero-fills ``found_inf`` (one) and runs
  ``_amp_foreach_non_finite_check_and_unscale_`` over all float32 gradients
  (a multi-tensor kernel, chunked like Adam's); ``update`` runs
  ``_amp_update_scale_`` (one).  The host's ``found_inf.item()`` check is
  host work, outside the step as ``loss.item()`` is.

h2learn's own step does not run under ``torch.autocast`` today: its custom
autograd Functions for spike GEMMs (``h2learn.snn.layers._SpikeLinear``,
``_SpikeConv2d``) compute their backward outside autocast with the float32
weight they saved, and fail on the float16 gradient.  The preset models the
step as it runs once those Functions follow autocast
(``torch.amp.custom_fwd`` / ``custom_bwd``), i.e. PyTorch AMP's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from h2learn.baselines.gpu.device import DTYPE_BYTES, GPUModelError, check_dtype

TensorClass = Literal["input", "activations", "loss", "parameters"]
"""The classes of tensor whose dtype :class:`Numerics` fixes (GEMM operands apart)."""

_SHORT = {"float16": "fp16", "float32": "fp32", "float64": "fp64"}


@dataclass(frozen=True)
class Numerics:
    """Which dtype each class of the training step's tensors is stored and computed in.

    ``gemm``: conv/linear operands, results and arithmetic (``float16``: the
    tensor cores).  ``activations``: the element-wise kernels on activations
    and their gradients; the GEMMs write them, so they must equal ``gemm``.
    ``input``: the network input as the data loader hands it over.
    ``loss``: ``log_softmax``/``nll_loss`` and their gradients.
    ``parameters``: weights, their gradients, batch-norm running statistics
    and the optimizer.  ``loss_scaling``: whether ``torch.amp.GradScaler``
    scales the loss and unscales the gradients.

    Where two classes differ the step gains the cast kernels between them
    (see the module docstring).
    """

    name: str
    gemm: str
    activations: str
    input: str
    loss: str
    parameters: str
    loss_scaling: bool = False

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise GPUModelError("Numerics.name must not be empty")
        for dtype in (self.gemm, self.activations, self.input, self.loss, self.parameters):
            check_dtype(dtype)
        if self.activations != self.gemm:
            raise GPUModelError(
                f"Numerics {self.name!r}: activations={self.activations} must equal "
                f"gemm={self.gemm} (the GEMMs write the activations)"
            )

    @classmethod
    def uniform(cls, dtype: str) -> Numerics:
        """One dtype for every tensor: no casts, no loss scaling (``fp32``, ``fp16``, ``fp64``)."""
        check_dtype(dtype)
        return cls(_SHORT[dtype], dtype, dtype, dtype, dtype, dtype)

    @property
    def is_uniform(self) -> bool:
        """Whether every tensor class has one dtype (then the step has no cast kernels)."""
        return len({self.gemm, self.input, self.loss, self.parameters}) == 1

    def dtype(self, tensors: TensorClass) -> str:
        """The dtype of one class of tensor."""
        return {
            "input": self.input,
            "activations": self.activations,
            "loss": self.loss,
            "parameters": self.parameters,
        }[tensors]

    def bytes(self, tensors: TensorClass) -> int:
        """Bytes per element of one class of tensor."""
        return DTYPE_BYTES[self.dtype(tensors)]

    @property
    def gemm_bytes(self) -> int:
        """Bytes per element of a GEMM operand."""
        return DTYPE_BYTES[self.gemm]


FP32 = Numerics.uniform("float32")
"""Every tensor in float32, GEMMs on the CUDA cores: the default, h2learn's step as it runs."""

FP16_TENSOR_CORE = Numerics(
    name="fp16-tensor-core",
    gemm="float16",
    activations="float16",
    input="float32",
    loss="float32",
    parameters="float32",
    loss_scaling=True,
)
"""PyTorch automatic mixed precision (autocast to float16, GradScaler); see the module doc."""

NUMERICS: dict[str, Numerics] = {FP32.name: FP32, FP16_TENSOR_CORE.name: FP16_TENSOR_CORE}
"""The named presets ``v100_training_step(numerics=...)`` accepts."""


def resolve_numerics(numerics: str | Numerics | None, dtype: str = "float32") -> Numerics:
    """The :class:`Numerics` of a step from the ``numerics`` and ``dtype`` arguments.

    ``numerics=None`` keeps the older one-dtype call: every tensor in
    ``dtype``.  A name picks a preset of :data:`NUMERICS`; a ``Numerics`` is
    used as given.  ``dtype`` other than ``float32`` together with
    ``numerics`` is ambiguous and refused.
    """
    if numerics is None:
        return Numerics.uniform(dtype)
    if dtype != "float32":
        raise GPUModelError(
            f"give either dtype={dtype!r} (one dtype throughout) or numerics={numerics!r}, not both"
        )
    if isinstance(numerics, Numerics):
        return numerics
    if not isinstance(numerics, str) or numerics not in NUMERICS:
        raise GPUModelError(
            f"numerics={numerics!r} is not known; choose one of: {', '.join(NUMERICS)}"
        )
    return NUMERICS[numerics]
