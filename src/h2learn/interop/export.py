"""h2learn networks to NIR graphs, and the weights files the importer writes.

:func:`export_network` turns a :class:`~h2learn.snn.models.SpikingNetwork`
(built from a spec, with trained weights) into a ``nir.NIRGraph``: each
weighted layer becomes ``Conv2d`` or ``Affine``, each firing layer adds an
``LIF`` node (``IF`` when ``alpha = 1``) whose parameters the importer turns
back into the same ``alpha`` and ``V_th`` (see :mod:`h2learn.interop.neurons`),
average pooling becomes ``AvgPool2d`` and flatten ``Flatten``.  Batch norm has
no NIR node: its inference form (running statistics) is folded into the
weights and bias, so the exported graph computes what the model computes in
``eval()`` mode.  Max pooling (no NIR node), padded average pooling, branches
and residual sums are refused with one line naming the layer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from h2learn.interop.neurons import DEFAULT_DT, NIRError
from h2learn.interop.nir import META, build_model, weighted_op
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import LayerSpec, Workload

WEIGHTS_FORMAT = "h2learn-weights"
WEIGHTS_VERSION = 1


def export_network(model: SpikingNetwork, dt: float = DEFAULT_DT) -> nir.NIRGraph:
    """The NIR graph of ``model`` (its inference form), with ``dt`` seconds per step."""
    spec = model.spec
    if not dt > 0:
        raise NIRError(f"dt={dt} must be a positive number of seconds")
    nodes: dict[str, nir.NIRNode] = {
        "input": nir.Input(input_type={"input": np.array(spec.input_shape)})
    }
    for index, (layer, module) in enumerate(zip(spec.layers, model.layers, strict=True)):
        if layer.source != index - 1 or layer.residual is not None:
            raise NIRError(
                f"layer {layer.name!r} reads layer {layer.source}"
                + (f" and adds layer {layer.residual}" if layer.residual is not None else "")
                + "; NIR export supports chains of layers only"
            )
        if layer.weighted:
            weight, bias = _folded(layer, module)
            nodes[layer.name] = _weighted_node(layer, weight, bias)
            if layer.fires:
                nodes[f"{layer.name}_lif"] = _neuron_node(layer, spec, dt)
        else:
            nodes[layer.name] = _shape_node(layer)
    nodes["output"] = nir.Output(output_type={"output": np.array(spec.layers[-1].out_shape)})
    keys = list(nodes)
    edges = list(zip(keys[:-1], keys[1:], strict=True))
    try:
        return nir.NIRGraph(nodes=nodes, edges=edges, metadata=_metadata(spec, dt))
    except (ValueError, AssertionError) as exc:  # pragma: no cover - our graph type-checks
        raise NIRError(f"the exported graph does not type-check: {exc}") from None


def _metadata(spec: Workload, dt: float) -> dict[str, Any]:
    """What NIR cannot say but a round trip through h2learn needs (hints for the importer)."""
    lif = spec.lif
    values = {
        "name": spec.name,
        "time_steps": spec.time_steps,
        "batch_size": spec.batch_size,
        "input_kind": spec.input_kind,
        "dt": float(dt),
        "window": lif.window,
        "height": lif.height,
        "reset_grad": int(lif.reset_grad),
    }
    return {f"{META}{key}": value for key, value in values.items()}


def _folded(layer: LayerSpec, module: nn.Module) -> tuple[np.ndarray, np.ndarray]:
    """The layer's weight and bias, with its batch norm (running statistics) folded in."""
    op = weighted_op(module, layer.name)
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    dtype = op.weight.detach().numpy().dtype
    weight = op.weight.detach().double().numpy()
    bias = np.zeros(weight.shape[0]) if op.bias is None else op.bias.detach().double().numpy()
    if not norms:
        return weight.astype(dtype), bias.astype(dtype)
    norm = norms[0]
    if norm.running_mean is None or norm.running_var is None:
        raise NIRError(
            f"layer {layer.name!r}: batch norm without running statistics cannot be folded"
        )
    scale = 1.0 / np.sqrt(norm.running_var.detach().double().numpy() + norm.eps)
    if norm.weight is not None:
        scale = scale * norm.weight.detach().double().numpy()
    shift = -norm.running_mean.detach().double().numpy() * scale
    if norm.bias is not None:
        shift = shift + norm.bias.detach().double().numpy()
    weight = weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))
    return weight.astype(dtype), (bias * scale + shift).astype(dtype)


def _weighted_node(layer: LayerSpec, weight: np.ndarray, bias: np.ndarray) -> nir.NIRNode:
    if layer.kind == "conv":
        return nir.Conv2d(
            input_shape=tuple(layer.in_shape[1:]),
            weight=weight,
            stride=(layer.stride, layer.stride),
            padding=(layer.padding, layer.padding),
            dilation=(1, 1),
            groups=1,
            bias=bias,
        )
    return nir.Affine(weight=weight, bias=bias)


def _neuron_node(layer: LayerSpec, spec: Workload, dt: float) -> nir.NIRNode:
    """``LIF`` with ``tau = dt/(1-alpha)`` and ``r = tau/dt`` (unit gain); ``IF`` for alpha 1."""
    shape = layer.out_shape
    v_th, zero = np.full(shape, spec.lif.v_th), np.zeros(shape)
    if spec.lif.alpha >= 1.0:
        return nir.IF(r=np.full(shape, 1.0 / dt), v_threshold=v_th, v_reset=zero)
    tau = np.full(shape, dt / (1.0 - spec.lif.alpha))
    return nir.LIF(tau=tau, r=tau / dt, v_leak=zero, v_threshold=v_th, v_reset=zero)


def _shape_node(layer: LayerSpec) -> nir.NIRNode:
    if layer.kind == "avgpool":
        if layer.padding:
            raise NIRError(f"layer {layer.name!r}: padded average pooling has no NIR form")
        k, s = layer.kernel, layer.stride
        return nir.AvgPool2d(
            kernel_size=np.array([k, k]), stride=np.array([s, s]), padding=np.array([0, 0])
        )
    if layer.kind == "flatten":
        return nir.Flatten(input_type={"input": np.array(layer.in_shape)}, start_dim=0, end_dim=-1)
    raise NIRError(f"layer {layer.name!r} ({layer.kind}): NIR 1.0 has no {layer.kind} node")


def write_nir(graph: nir.NIRGraph, path: Path) -> None:
    """Write ``graph`` to ``path`` (HDF5), with one-line errors."""
    try:
        nir.write(Path(path), graph)
    except OSError as exc:
        raise NIRError(f"cannot write {path}: {exc.strerror or exc}") from None


def save_weights(path: Path, spec: Workload, state_dict: dict[str, torch.Tensor]) -> None:
    """Write the weights file ``import`` produces next to the spec (``export`` reads it back)."""
    state = {
        "version": WEIGHTS_VERSION,
        "format": WEIGHTS_FORMAT,
        "spec": spec.to_dict(),
        "model": state_dict,
    }
    try:
        torch.save(state, Path(path))
    except OSError as exc:
        raise NIRError(f"cannot write {path}: {exc.strerror or exc}") from None


def load_weights_file(path: Path) -> SpikingNetwork:
    """The network in a training checkpoint or an imported weights file, in ``eval()`` mode."""
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"no checkpoint or weights file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means corrupt
        raise NIRError(
            f"{path} is not a readable h2learn checkpoint ({type(exc).__name__})"
        ) from None
    if not isinstance(state, dict) or "spec" not in state or "model" not in state:
        raise NIRError(f"{path} holds no network (expected a checkpoint with a spec and weights)")
    spec = Workload.from_dict(state["spec"])
    return build_model(spec, state["model"], str(path))
