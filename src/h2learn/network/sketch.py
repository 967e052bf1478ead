"""A compact layer language, expanded into layer specs with inferred shapes.

A sketch is a list of :class:`Conv`, :class:`FC`, :class:`Pool` and
:class:`Flatten` items that name only what a layer adds (channels, kernel,
stride, ...); :func:`expand` infers every layer's input and output shapes,
inserts the flatten before the first fully connected layer that follows a
feature map, marks the encoding layer and returns the network with its run
sizes as a :class:`~h2learn.network.layers.Workload`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from h2learn.network.layers import RUN_FIELDS, LayerSpec, NetworkSpec, SpecError, Workload


@dataclass(frozen=True)
class Conv:
    channels: int
    kernel: int = 3
    stride: int = 1
    padding: int | None = None  # None: "same" padding kernel // 2
    batch_norm: bool = True
    fires: bool = True
    source: int | None = None
    residual: int | None = None


@dataclass(frozen=True)
class FC:
    features: int
    batch_norm: bool = False
    fires: bool = True


@dataclass(frozen=True)
class Pool:
    kind: Literal["avgpool", "maxpool"]
    kernel: int = 2
    stride: int | None = None
    padding: int = 0


@dataclass(frozen=True)
class Flatten:
    pass


LayerSketch = Conv | FC | Pool | Flatten


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def expand(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    sketch: Sequence[LayerSketch],
    **network_fields: Any,
) -> Workload:
    """Infer every layer's shapes from a sketch and return the network with its run sizes.

    ``network_fields`` are :class:`NetworkSpec` fields (``lif``,
    ``input_kind``) and the run sizes ``time_steps`` and ``batch_size``
    (defaults 6 and 32), which go to the returned :class:`Workload`.

    A ``Flatten`` is inserted automatically before the first ``FC`` that
    follows a feature map.  The first weighted layer becomes the encoding
    layer.
    """
    layers: list[LayerSpec] = []
    shapes: list[tuple[int, ...]] = []  # output shape of each layer
    current = tuple(int(s) for s in input_shape)
    encoded = False
    counters: dict[str, int] = {}

    def add(layer: LayerSpec) -> None:
        nonlocal current
        if layer.source >= 0:
            binary = layers[layer.source].binary_output
        else:  # the network input: binary only when it is spike-coded
            binary = network_fields.get("input_kind") == "spikes"
        layer = dataclasses.replace(layer, binary_input=binary)
        layers.append(layer)
        shapes.append(layer.out_shape)
        current = layer.out_shape

    def label(kind: str) -> str:
        counters[kind] = counters.get(kind, 0) + 1
        return f"{kind}{counters[kind]}"

    for item in sketch:
        if isinstance(item, FC) and len(current) > 1:
            flat = (math.prod(current),)
            add(LayerSpec(label("flatten"), "flatten", current, flat, source=len(layers) - 1))
        if isinstance(item, Conv):
            src = len(layers) - 1 if item.source is None else item.source
            in_shape = tuple(input_shape) if src < 0 else shapes[src]
            if len(in_shape) != 3:
                raise SpecError(f"{name}: conv layer needs a (C, H, W) input, got {in_shape}")
            pad = item.kernel // 2 if item.padding is None else item.padding
            c, h, w = in_shape
            out = (
                item.channels,
                _conv_out(h, item.kernel, item.stride, pad),
                _conv_out(w, item.kernel, item.stride, pad),
            )
            if min(out) < 1:
                raise SpecError(f"{name}: conv layer {len(layers)} shrinks the map below 1x1")
            if item.residual is not None and shapes[item.residual] != out:
                raise SpecError(f"{name}: residual from layer {item.residual} has the wrong shape")
            add(
                LayerSpec(
                    label("conv"),
                    "conv",
                    in_shape,
                    out,
                    kernel=item.kernel,
                    stride=item.stride,
                    padding=pad,
                    batch_norm=item.batch_norm,
                    fires=item.fires,
                    encoding=not encoded,
                    source=src,
                    residual=item.residual,
                )
            )
            encoded = True
        elif isinstance(item, FC):
            add(
                LayerSpec(
                    label("fc"),
                    "fc",
                    current,
                    (item.features,),
                    batch_norm=item.batch_norm,
                    fires=item.fires,
                    encoding=not encoded,
                    source=len(layers) - 1,
                )
            )
            encoded = True
        elif isinstance(item, Pool):
            if len(current) != 3:
                raise SpecError(f"{name}: pooling needs a (C, H, W) input, got {current}")
            stride = item.kernel if item.stride is None else item.stride
            c, h, w = current
            out = (
                c,
                _conv_out(h, item.kernel, stride, item.padding),
                _conv_out(w, item.kernel, stride, item.padding),
            )
            if min(out) < 1:
                raise SpecError(
                    f"{name}: {item.kind} layer {len(layers)} shrinks {current} below 1x1"
                )
            add(
                LayerSpec(
                    label(item.kind),
                    item.kind,
                    current,
                    out,
                    kernel=item.kernel,
                    stride=stride,
                    padding=item.padding,
                    source=len(layers) - 1,
                )
            )
        elif isinstance(item, Flatten):
            flat = (math.prod(current),)
            add(LayerSpec(label("flatten"), "flatten", current, flat, source=len(layers) - 1))
        else:  # pragma: no cover - sketch types are closed
            raise SpecError(f"unknown layer sketch {item!r}")
    if current != (num_classes,):
        raise SpecError(f"{name}: the last layer gives {current}, expected ({num_classes},)")
    run = {key: int(network_fields.pop(key)) for key in RUN_FIELDS if key in network_fields}
    network = NetworkSpec(
        name=name,
        input_shape=tuple(int(s) for s in input_shape),
        num_classes=num_classes,
        layers=tuple(layers),
        **network_fields,
    )
    return Workload(network, **run)
