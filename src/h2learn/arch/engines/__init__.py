"""Functional, event-counting models of H2Learn's engines.

* :func:`forward_engine` -- Forward Engine, LUT-based PEs for ``W (*) spikes``.
* :func:`backward_engine` -- Backward Engine, ``W^T (*) du`` with input and output sparsity.
* :func:`update_engine` -- Weight Update Engine, LUT-based PEs for ``du (x) spikes``.
* :mod:`~h2learn.arch.engines.lif` and :mod:`~h2learn.arch.engines.elementwise` --
  LIF, batch-norm, pooling and loss units.
* :mod:`~h2learn.arch.engines.lut` -- the LUT mechanism both LUT engines share;
  :mod:`~h2learn.arch.engines.common` -- result type, count schemas, plumbing.

Every unit returns an :class:`EngineResult` (output tensor + exact event
counts); the count names of each engine are listed in ``*_COUNT_KEYS``.
Every unit's counts come from a data-free ``*_counts`` function exported next
to it, which the activity model (:mod:`h2learn.arch.activity`) calls too: each
count formula has exactly one home.
"""

from h2learn.arch.engines.backward import (
    backward_counts,
    backward_counts_from_links,
    backward_engine,
)
from h2learn.arch.engines.common import (
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
    batchnorm_backward_counts,
    batchnorm_forward,
    batchnorm_forward_counts,
    bias_add_counts,
    bias_gradient_counts,
    lif_backward_counts,
    lif_backward_unit,
    lif_forward_counts,
    lif_forward_unit,
    loss_counts,
    loss_unit,
    optimizer_counts,
    pool_backward,
    pool_backward_counts,
    pool_forward,
    pool_forward_counts,
    residual_add_counts,
)
from h2learn.arch.engines.forward import dense_forward_counts, forward_engine
from h2learn.arch.engines.lut import lut_counts, table_build_costs
from h2learn.arch.engines.update import dense_update_counts, update_engine

__all__ = [
    "ARITH_COUNT_KEYS",
    "BACKWARD_COUNT_KEYS",
    "FORWARD_COUNT_KEYS",
    "LIF_BACKWARD_COUNT_KEYS",
    "LIF_FORWARD_COUNT_KEYS",
    "UPDATE_COUNT_KEYS",
    "EngineError",
    "EngineResult",
    "backward_counts",
    "backward_counts_from_links",
    "backward_engine",
    "batchnorm_backward",
    "batchnorm_backward_counts",
    "batchnorm_forward",
    "batchnorm_forward_counts",
    "bias_add_counts",
    "bias_gradient_counts",
    "dense_forward_counts",
    "dense_update_counts",
    "forward_engine",
    "lif_backward_counts",
    "lif_backward_unit",
    "lif_forward_counts",
    "lif_forward_unit",
    "loss_counts",
    "loss_unit",
    "lut_counts",
    "optimizer_counts",
    "pool_backward",
    "pool_backward_counts",
    "pool_forward",
    "pool_forward_counts",
    "residual_add_counts",
    "table_build_costs",
    "update_engine",
]
