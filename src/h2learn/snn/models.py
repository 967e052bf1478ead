"""The model zoo: spiking networks built from a :class:`~h2learn.spec.Workload`.

``build("cifar-vgg", num_classes=100)`` returns a :class:`SpikingNetwork`
whose layers are exactly ``build_spec("cifar-vgg", num_classes=100).layers``,
the same description the accelerator model reads.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from h2learn.snn.blocks import build_layer
from h2learn.snn.norm_fire import poolable
from h2learn.spec import ZOO, SpecError, Workload, build_spec, model_names


class SpikingNetwork(nn.Module):
    """A spiking network over time-major tensors with a rate read-out.

    Input: an analog image batch ``[B, *input_shape]`` (repeated over the
    spec's ``T`` steps by the encoding layer) or time-major event frames
    ``[T, B, *input_shape]``.  Output: the time-mean of the last layer,
    ``[B, num_classes]`` (its spike rate when the last layer fires).
    """

    def __init__(self, spec: Workload) -> None:
        super().__init__()
        self.spec = spec
        self.layers = nn.ModuleList(build_layer(layer, spec.lif) for layer in spec.layers)
        self._last_use = _last_uses(spec)
        self._pool_after = _fusable_pools(spec)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Bring the input to ``[T, B, *input_shape]``, checking its shape."""
        shape = tuple(self.spec.input_shape)
        if tuple(x.shape[-len(shape) :]) != shape or x.dim() not in (
            len(shape) + 1,
            len(shape) + 2,
        ):
            raise SpecError(
                f"model {self.spec.name} expects input [B, {', '.join(map(str, shape))}] or "
                f"[T, B, {', '.join(map(str, shape))}], got {list(x.shape)}; "
                "pick the model matching the dataset or override input_shape"
            )
        if not x.is_floating_point():
            x = x.float()
        if x.dim() == len(shape) + 1:
            return x.unsqueeze(0).expand(self.spec.time_steps, *x.shape)
        return x

    def forward(self, x: torch.Tensor, record: list[dict[str, Any]] | None = None) -> torch.Tensor:
        """Return the rate read-out; with ``record``, append each layer's tensors to it.

        Recorded per layer (time-major, autograd-connected so that ``.grad``
        is filled by ``backward`` when ``retain_grad`` applies): ``input``,
        ``output`` and, for weighted layers, ``current`` (what the neuron
        receives).
        """
        outputs: list[torch.Tensor | None] = []
        signal = self.encode(x)
        pooled = None  # the next layer's output, computed by a fused block + pooling kernel
        for index, (spec, layer) in enumerate(zip(self.spec.layers, self.layers, strict=True)):
            inp = signal if spec.source < 0 else outputs[spec.source]
            residual = outputs[spec.residual] if spec.residual is not None else None
            if pooled is not None:
                out, pooled = pooled, None
            elif record is not None and spec.weighted:
                out, entry = self._recorded(layer, inp, residual)
                record.append({"layer": spec.name, **entry})
            elif (
                index in self._pool_after
                and (pooled := layer.forward_pooled(inp, *self._pool_after[index])) is not None
            ):
                out = None  # only the pooling layer reads these spikes
            else:
                out = layer(inp, residual)
            outputs.append(out)
            # Drop outputs no later layer reads: what backward needs, autograd keeps
            # (often in a leaner form, e.g. spikes as bool), so the float copies go.
            for done in self._last_use[index]:
                outputs[done] = None
            del inp, residual, out
        return outputs[-1].mean(0)

    @staticmethod
    def _recorded(layer: nn.Module, inp: torch.Tensor, residual: torch.Tensor | None):
        current = layer.current(inp)
        if residual is not None:
            current = current + residual
        if current.requires_grad:
            current.retain_grad()
        out = layer.neuron(current) if layer.neuron is not None else current
        if out.requires_grad and out is not current:
            out.retain_grad()
        return out, {"input": inp, "current": current, "output": out}


def _last_uses(spec: Workload) -> list[list[int]]:
    """For each layer index ``i``: the earlier layers whose outputs are last read by layer ``i``.

    The last layer's output (the read-out) is never listed.
    """
    last = {index: index for index in range(len(spec.layers) - 1)}  # unread: drop at once
    for index, layer in enumerate(spec.layers):
        for source in (layer.source, layer.residual):
            if source is not None and source >= 0:
                last[source] = max(last.get(source, index), index)
    drops: list[list[int]] = [[] for _ in spec.layers]
    for source, reader in last.items():
        drops[reader].append(source)
    return drops


def _fusable_pools(spec: Workload) -> dict[int, tuple[int, bool, bool]]:
    """``{conv layer index: (kernel, planar, average)}`` where pooling can run inside the layer.

    The layer is a firing conv with no residual input whose spikes only the
    next layer reads, and that layer is a max or average pooling whose
    windows tile the map (:func:`~h2learn.snn.norm_fire.poolable`).  ``planar``
    when only a flatten reads the pooled spikes: they are then produced in
    NCHW order, which the flatten views without a copy.  Whether the fused
    kernel runs is decided per call (training mode, kernels built).
    """
    readers: dict[int, list[int]] = {}
    for index, layer in enumerate(spec.layers):
        for source in (layer.source, layer.residual):
            if source is not None and source >= 0:
                readers.setdefault(source, []).append(index)
    fusable = {}
    for index, layer in enumerate(spec.layers[:-1]):
        pool = spec.layers[index + 1]
        if (
            layer.kind == "conv"
            and layer.fires
            and layer.residual is None
            and pool.kind in ("maxpool", "avgpool")
            and readers.get(index) == [index + 1]
            and pool.source == index
            and poolable((1, *layer.out_shape), pool.kernel, pool.stride, pool.padding)
        ):
            after = spec.layers[index + 2] if index + 2 < len(spec.layers) else None
            planar = (
                after is not None
                and after.kind == "flatten"
                and after.source == index + 1
                and readers.get(index + 1) == [index + 2]
            )
            fusable[index] = (pool.kernel, planar, pool.kind == "avgpool")
    return fusable


def build(name: str, **overrides: Any) -> SpikingNetwork:
    """Build zoo model ``name``; ``overrides`` as for :func:`h2learn.spec.build_spec`."""
    return SpikingNetwork(build_spec(name, **overrides))


def describe() -> list[tuple[str, str]]:
    """``(name, description)`` of every zoo model."""
    return [(name, ZOO[name][2]) for name in model_names()]


__all__ = ["SpikingNetwork", "build", "describe", "model_names"]
