"""The layer-graph queries (``h2learn.graph``) against hand-written walks on every zoo spec."""

from __future__ import annotations

import pytest

from h2learn.graph import (
    NETWORK_INPUT,
    carries_gradient,
    consumers,
    input_needs_gradient,
    producer,
    readers,
    residual_users,
    route,
)
from h2learn.spec import FC, Conv, Pool, build_spec, expand, model_names

ZOO = [build_spec(name) for name in model_names()]


def source_walk_needs_gradient(spec, index: int) -> bool:
    """The activity model's former definition: a weighted layer on the ``source`` chain."""
    source = spec.layers[index].source
    while source >= 0:
        if spec.layers[source].weighted:
            return True
        source = spec.layers[source].source
    return False


def residual_aware_needs_gradient(spec) -> list[bool]:
    """The GPU model's former definition: recursion over ``source`` and ``residual``."""

    def needs(i: int) -> bool:
        layer = spec.layers[i]
        sources = [s for s in (layer.source, layer.residual) if s is not None and s >= 0]
        return layer.weighted or any(needs(s) for s in sources)

    return [needs(i) for i in range(len(spec.layers))]


@pytest.mark.parametrize("spec", ZOO, ids=[spec.name for spec in ZOO])
def test_the_two_definitions_of_needs_a_gradient_agree_on_the_zoo(spec):
    assert carries_gradient(spec) == residual_aware_needs_gradient(spec)
    for index in range(len(spec.layers)):
        assert input_needs_gradient(spec, index) == source_walk_needs_gradient(spec, index)


def test_a_residual_branch_alone_makes_a_gradient_needed():
    """Where the definitions could differ: a layer reading the input, with a residual from a
    weighted layer.  The gradient then flows through the residual (the source walk misses it)."""
    spec = expand("r", (2, 6, 6), 3, [Conv(2), Conv(2, source=-1, residual=0), FC(3)])
    assert carries_gradient(spec)[1]
    assert input_needs_gradient(spec, 1)
    assert not source_walk_needs_gradient(spec, 1)


@pytest.mark.parametrize("spec", ZOO, ids=[spec.name for spec in ZOO])
def test_producer_consumers_and_readers_agree_with_the_indices(spec):
    users = consumers(spec)
    shortcuts = residual_users(spec)
    read_by = readers(spec)
    for index, layer in enumerate(spec.layers):
        assert index in users[layer.source]
        if layer.residual is not None:
            assert index in shortcuts[layer.residual] and index in read_by[layer.residual]
        if layer.source >= 0:
            assert index in read_by[layer.source]
        source, pools = producer(spec, index)
        assert source == NETWORK_INPUT or spec.layers[source].weighted
        assert all(pool.kind in ("avgpool", "maxpool") for pool in pools)
    assert sum(len(v) for v in users.values()) == len(spec.layers)


def test_producer_skips_pooling_and_flatten_nearest_first():
    spec = expand("p", (1, 8, 8), 2, [Conv(2), Pool("maxpool", 2), Pool("avgpool", 2), FC(2)])
    kinds = [layer.kind for layer in spec.layers]
    fc = kinds.index("fc")
    source, pools = producer(spec, fc)
    assert source == 0
    assert [p.kind for p in pools] == ["avgpool", "maxpool"]


def test_route_carries_values_through_non_weighted_layers():
    spec = expand("p", (1, 8, 8), 2, [Conv(2), Pool("maxpool", 2), FC(2)])
    own = [10 if layer.weighted else None for layer in spec.layers]
    routed = route(spec, own, lambda layer, value: value + 1)
    kinds = [layer.kind for layer in spec.layers]
    assert routed[kinds.index("maxpool")] == 11
    assert routed[kinds.index("flatten")] == 12
    assert routed[kinds.index("fc")] == 10
