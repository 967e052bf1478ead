"""The one description of a spiking network, read by the model builder and the cost model.

* :mod:`.layers`: the layer and network types (:class:`LayerSpec`,
  :class:`NetworkSpec`, :class:`LIFParams`, :class:`Workload`, the network and
  its run sizes) and :class:`SpecError`;
* :mod:`.sketch`: the compact layer language (:class:`Conv`, :class:`FC`,
  :class:`Pool`, :class:`Flatten`) and :func:`expand`, which infers every
  layer's shapes;
* :mod:`.zoo`: the model zoo (:data:`ZOO`) and :func:`build_spec` with its
  overrides.

The package imports nothing else of h2learn but the error types, so every
layer may import it; :mod:`h2learn.spec` re-exports all of it and stays the
stable import path.
"""

from h2learn.network.layers import (
    INPUT_KINDS,
    RUN_FIELDS,
    STBP_LIF,
    WEIGHTED_KINDS,
    AnyNetwork,
    LayerKind,
    LayerSpec,
    LIFParams,
    NetworkSpec,
    SpecError,
    Workload,
)
from h2learn.network.sketch import FC, Conv, Flatten, LayerSketch, Pool, expand
from h2learn.network.zoo import (
    LIF_FIELDS,
    OVERRIDABLE,
    READOUTS,
    ZOO,
    build_spec,
    model_names,
)

__all__ = [
    "FC",
    "INPUT_KINDS",
    "LIF_FIELDS",
    "OVERRIDABLE",
    "READOUTS",
    "RUN_FIELDS",
    "STBP_LIF",
    "WEIGHTED_KINDS",
    "ZOO",
    "AnyNetwork",
    "Conv",
    "Flatten",
    "LIFParams",
    "LayerKind",
    "LayerSketch",
    "LayerSpec",
    "NetworkSpec",
    "Pool",
    "SpecError",
    "Workload",
    "build_spec",
    "expand",
    "model_names",
]
