"""Interoperability with other spiking-network tools.

:mod:`h2learn.interop.nir` reads and writes networks in the Neuromorphic
Intermediate Representation (NIR, the ``nir`` package), so that a network
built and trained elsewhere (snnTorch, Norse, ...) can be simulated on H2Learn
and an h2learn network can be run elsewhere.  :mod:`h2learn.interop.neurons`
translates NIR's continuous-time neuron parameters to h2learn's iterative LIF.
See ``docs/nir.md``.
"""

from h2learn.interop.export import export_network, load_weights_file, save_weights, write_nir
from h2learn.interop.neurons import DEFAULT_DT, NeuronTranslation, translate_neuron
from h2learn.interop.nir import Imported, NIRError, build_model, import_graph, read_nir

__all__ = [
    "DEFAULT_DT",
    "Imported",
    "NIRError",
    "NeuronTranslation",
    "build_model",
    "export_network",
    "import_graph",
    "load_weights_file",
    "read_nir",
    "save_weights",
    "translate_neuron",
    "write_nir",
]
