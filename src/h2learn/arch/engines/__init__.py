"""Functional, event-counting models of H2Learn's engines.

* :func:`forward_engine` -- Forward Engine, LUT-based PEs for ``W (*) spikes``.
* :func:`backward_engine` -- Backward Engine, ``W^T (*) du`` with input and output sparsity.
* :func:`update_engine` -- Weight Update Engine, LUT-based PEs for ``du (x) spikes``.
* :mod:`~h2learn.arch.engines.elementwise` -- LIF, batch-norm, pooling and loss units.

Every function returns an :class:`EngineResult` (output tensor + exact event
counts); the count names of each engine are listed in ``*_COUNT_KEYS``.
"""

from h2learn.arch.engines.backward import backward_engine
from h2learn.arch.engines.counts import (
    BACKWARD_COUNT_KEYS,
    FORWARD_COUNT_KEYS,
    UPDATE_COUNT_KEYS,
    EngineError,
    EngineResult,
)
from h2learn.arch.engines.elementwise import (
    ARITH_COUNT_KEYS,
    LIF_BACKWARD_COUNT_KEYS,
    LIF_FORWARD_COUNT_KEYS,
    batchnorm_backward,
    batchnorm_forward,
    lif_backward_unit,
    lif_forward_unit,
    loss_unit,
    pool_backward,
    pool_forward,
)
from h2learn.arch.engines.forward import forward_engine
from h2learn.arch.engines.update import update_engine

__all__ = [
    "ARITH_COUNT_KEYS",
    "BACKWARD_COUNT_KEYS",
    "FORWARD_COUNT_KEYS",
    "LIF_BACKWARD_COUNT_KEYS",
    "LIF_FORWARD_COUNT_KEYS",
    "UPDATE_COUNT_KEYS",
    "EngineError",
    "EngineResult",
    "backward_engine",
    "batchnorm_backward",
    "batchnorm_forward",
    "forward_engine",
    "lif_backward_unit",
    "lif_forward_unit",
    "loss_unit",
    "pool_backward",
    "pool_forward",
    "update_engine",
]
