"""Network specifications: the stable import path of :mod:`h2learn.network`.

The code lives in :mod:`h2learn.network`: the layer and network types
(:class:`LayerSpec`, :class:`NetworkSpec`, :class:`LIFParams`,
:class:`Workload`) in :mod:`h2learn.network.layers`, the sketch language and
:func:`expand` in :mod:`h2learn.network.sketch`, the model zoo and
:func:`build_spec` in :mod:`h2learn.network.zoo`.  This module re-exports
every name it has always offered, the same objects (so ``isinstance`` and
identity checks hold whichever path imported them), and ``h2learn.spec``
stays the stable import path.
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
