"""The H2Learn accelerator model: number formats, bit-accurate engines and their event counts.

:mod:`h2learn.arch.numerics` defines the number formats the datapaths compute
in; :mod:`h2learn.arch.engines` holds functional models of the Forward Engine
(LUT-based), the Backward Engine (dual sparsity), the Weight Update Engine
(LUT-based) and the element-wise units, each of which returns its result
together with an exact count of the hardware events it performed.
"""
