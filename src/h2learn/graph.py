"""Queries over the layer graph of a :class:`~h2learn.spec.NetworkSpec` (the one graph walk).

A spec keeps its graph as plain indices: layer ``i`` reads the output of
``layers[i].source`` (``-1``: the network input) and may add the output of
``layers[i].residual``.  Every model that walks this graph (activity,
memory, pipeline, the densities, the trace recorder) asks these functions
instead of writing its own loop, so that "which layer produces this input"
or "does this layer need a gradient" has one definition.

The API is deliberately small:

* :func:`producer` -- the weighted layer whose output reaches a layer's input,
  and the pooling layers in between;
* :func:`consumers`, :func:`residual_users`, :func:`readers` -- who reads a
  layer's output;
* :func:`carries_gradient`, :func:`input_needs_gradient` -- which outputs and
  inputs need a gradient in BPTT;
* :func:`route` -- carry a per-layer value (a mask) forward through the
  non-weighted layers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from h2learn.spec import AnyNetwork, LayerSpec

NETWORK_INPUT = -1
"""The ``source`` of a layer that reads the network input."""

POOL_KINDS = ("avgpool", "maxpool")

T = TypeVar("T")


def producer(spec: AnyNetwork, index: int) -> tuple[int, list[LayerSpec]]:
    """The weighted layer whose output feeds layer ``index``, and the pooling layers between.

    Follows ``source`` through non-weighted layers (pooling, flatten).
    Returns ``(NETWORK_INPUT, pools)`` when the input comes from the network
    input.  Pools are listed nearest to ``index`` first.
    """
    pools: list[LayerSpec] = []
    source = spec.layers[index].source
    while source >= 0 and not spec.layers[source].weighted:
        if spec.layers[source].kind in POOL_KINDS:
            pools.append(spec.layers[source])
        source = spec.layers[source].source
    return source, pools


def consumers(spec: AnyNetwork) -> dict[int, list[int]]:
    """``{index: layers whose source is index}``; ``NETWORK_INPUT`` lists the input's readers."""
    out: dict[int, list[int]] = {}
    for index, layer in enumerate(spec.layers):
        out.setdefault(layer.source, []).append(index)
    return out


def residual_users(spec: AnyNetwork) -> dict[int, list[int]]:
    """``{index: layers that add index's output as their residual}``."""
    out: dict[int, list[int]] = {}
    for index, layer in enumerate(spec.layers):
        if layer.residual is not None:
            out.setdefault(layer.residual, []).append(index)
    return out


def readers(spec: AnyNetwork) -> list[list[int]]:
    """For each layer, the later layers that read its output (as source or residual)."""
    out: list[list[int]] = [[] for _ in spec.layers]
    for index, layer in enumerate(spec.layers):
        for source in (layer.source, layer.residual):
            if source is not None and source >= 0:
                out[source].append(index)
    return out


def carries_gradient(spec: AnyNetwork) -> list[bool]:
    """Whether each layer's output carries a gradient in BPTT.

    True when the layer is weighted or any layer it reads (source or
    residual) carries one: the loss gradient must then flow through it to
    reach some weight.
    """
    needs: list[bool] = []
    for layer in spec.layers:
        upstream = layer.source >= 0 and needs[layer.source]
        if layer.residual is not None:
            upstream = upstream or needs[layer.residual]
        needs.append(layer.weighted or upstream)
    return needs


def input_needs_gradient(spec: AnyNetwork, index: int) -> bool:
    """Whether the gradient w.r.t. layer ``index``'s inputs is needed (a weighted layer upstream).

    This is what decides whether a pooling layer runs a backward pass and
    whether a weighted layer's Backward Engine task exists.
    """
    layer = spec.layers[index]
    needs = carries_gradient(spec)
    upstream = layer.source >= 0 and needs[layer.source]
    if layer.residual is not None:
        upstream = upstream or needs[layer.residual]
    return upstream


def route(
    spec: AnyNetwork,
    own: list[T | None],
    through: Callable[[LayerSpec, T], T],
) -> list[T | None]:
    """Carry per-layer values forward through the non-weighted layers.

    A weighted layer's value is its own (``own[i]``); a non-weighted layer
    gets ``through(layer, value of its source)``, or ``None`` when it reads
    the network input or its source has no value.  Used to route surrogate
    masks through pooling and flatten layers to the layer that reads them.
    """
    routed: list[T | None] = []
    for layer, value in zip(spec.layers, own, strict=True):
        if layer.weighted:
            routed.append(value)
        elif layer.source < 0 or routed[layer.source] is None:
            routed.append(None)
        else:
            routed.append(through(layer, routed[layer.source]))
    return routed
