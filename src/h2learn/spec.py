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

from h2learn import network as _network
from h2learn.network import *  # noqa: F403  (the names listed in network.__all__)

__all__ = list(_network.__all__)
