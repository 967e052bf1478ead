"""Published reference data for pricing silicon, and the node/voltage scaling (one copy).

This module is the single home of the numbers both hardware models price with:
the H2Learn cost table (:mod:`h2learn.arch.cost.table`) and the V100 model's
arithmetic floor (:mod:`h2learn.baselines.gpu`).  It holds data and the scaling
functions only; estimators and the table live next to it.

Sources:

* Arithmetic energy and area: M. Horowitz, "Computing's energy problem (and
  what we can do about it)", ISSCC 2014, energy/area table, 45 nm, 0.9 V.
* SRAM access energy: the same table's memory rows (64-bit access of an 8 KB,
  32 KB and 1 MB SRAM: 10, 20 and 100 pJ).
* SRAM area: Intel's 45 nm 6T bit cell, 0.346 um^2 (K. Mistry et al., "A 45nm
  logic technology with high-k + metal gate transistors ...", IEDM 2007).
* Technology scaling: A. Stillmaker and B. Baas, "Scaling equations for the
  accurate prediction of CMOS device performance from 180 nm to 7 nm",
  Integration 58 (2017) 74-81: area factors and the energy polynomials
  ``a*V^2 + b*V + c`` per node (Table 5, rows as corrected by the authors'
  erratum).

Two lookups of the energy polynomials exist because two callers name nodes
differently: :data:`STILLMAKER_ENERGY_POLY` is keyed by the paper's row label
(``"LP45"``, ``"HP16"``, ``"90"``), :data:`STILLMAKER_ENERGY_POLY_BY_NODE` by the
node in nm (the row :func:`energy_row` picks for it).  Both hold the same tuple
objects, so either gives bit-identical results.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from h2learn.errors import H2LearnError


class CostModelError(H2LearnError, ValueError):
    """An action has no price, or a node/voltage is outside the published data."""


# --------------------------------------------------------------------------
# Horowitz, ISSCC 2014 (45 nm, 0.9 V)
# --------------------------------------------------------------------------

HOROWITZ = "Horowitz, 'Computing's energy problem', ISSCC 2014, 45 nm, 0.9 V"
HOROWITZ_NODE_NM = 45
HOROWITZ_VDD = 0.9

# (energy pJ, area um^2) of one operation / one unit at 45 nm (Horowitz ISSCC 2014 table).
HOROWITZ_INT_ADD = {8: (0.03, 36.0), 32: (0.1, 137.0)}
HOROWITZ_INT_MULT = {8: (0.2, 282.0), 32: (3.1, 3495.0)}
HOROWITZ_FP_ADD = {16: (0.4, 1360.0), 32: (0.9, 4184.0)}
HOROWITZ_FP_MULT = {16: (1.1, 1640.0), 32: (3.7, 7700.0)}
HOROWITZ_SRAM_64BIT_PJ = {8.0: 10.0, 32.0: 20.0, 1024.0: 100.0}
"""Energy of a 64-bit access by SRAM capacity in KiB (Horowitz ISSCC 2014 memory rows)."""

HOROWITZ_FP32_ADD_PJ = HOROWITZ_FP_ADD[32][0]
"""Energy of one FP32 add at 45 nm, 0.9 V (pJ)."""
HOROWITZ_FP32_MULT_PJ = HOROWITZ_FP_MULT[32][0]
"""Energy of one FP32 multiply at 45 nm, 0.9 V (pJ)."""

# --------------------------------------------------------------------------
# Mistry et al., IEDM 2007
# --------------------------------------------------------------------------

SRAM_BITCELL_UM2_45NM = 0.346
"""Intel 45 nm 6T SRAM cell (Mistry et al., IEDM 2007)."""
SRAM_ARRAY_EFFICIENCY = 0.5
"""[ours] bit-cell area / macro area (decoders, sense amplifiers, I/O); cross-check in the docs."""

# --------------------------------------------------------------------------
# Stillmaker & Baas, Integration 2017
# --------------------------------------------------------------------------

STILLMAKER = (
    "Stillmaker & Baas, 'Scaling equations for the accurate prediction of CMOS device "
    "performance from 180 nm to 7 nm', Integration 58 (2017) 74-81"
)

STILLMAKER_AREA_FROM_45NM: dict[int, float] = {
    180: 19.0,
    130: 6.4,
    90: 2.8,
    65: 1.5,
    45: 1.0,
    32: 0.46,
    20: 0.21,
    16: 0.19,
    14: 0.17,
    10: 0.10,
    7: 0.059,
}
"""Area relative to 45 nm (Stillmaker & Baas 2017, area-scaling table, the 45 nm row)."""

STILLMAKER_ENERGY_POLY: dict[str, tuple[float, float, float]] = {
    "180": (0.0, 24.64, -17.98),
    "130": (7.171, -6.709, 2.904),
    "90": (4.762, -4.781, 2.092),
    "65": (3.755, -4.398, 1.975),
    "HP45": (1.018, -0.3107, 0.1539),
    "LP45": (1.103, -0.362, 0.2767),
    "HP32": (0.8367, -0.4341, 0.1701),
    "HP20": (0.373, -0.1582, 0.04104),
    "HP16": (0.2958, -0.1241, 0.03024),
    "HP14": (0.2363, -0.09675, 0.02239),
    "HP10": (0.2068, -0.09311, 0.02375),
    "HP7": (0.1776, -0.09097, 0.02447),
}
"""Energy per operation ``a*V^2 + b*V + c`` by the paper's row label (Table 5).

HP rows for 45 nm and below, the single row of the older nodes; LP45 for
Horowitz's 45 nm source, the row the V100 model's arithmetic floor uses too, so
both models scale by the same factor."""

SOURCE_ENERGY_ROW = "LP45"
"""The row of Horowitz's 45 nm / 0.9 V source data."""


def energy_row(node_nm: int) -> str:
    """The Stillmaker & Baas row label of a node: 45 nm is the source row (LP45)."""
    if node_nm == HOROWITZ_NODE_NM:
        return SOURCE_ENERGY_ROW
    return str(node_nm) if node_nm >= 65 else f"HP{node_nm}"


STILLMAKER_ENERGY_POLY_BY_NODE: dict[int, tuple[float, float, float]] = {
    node: STILLMAKER_ENERGY_POLY[energy_row(node)] for node in STILLMAKER_AREA_FROM_45NM
}
"""The same polynomials keyed by node in nm (45 -> LP45, 16 -> HP16, 90 -> "90")."""


INTERPOLATED_NODES_NM: dict[int, tuple[int, int]] = {28: (32, 20)}
"""Nodes between two tabulated Stillmaker & Baas nodes, with the two they lie between.

[ours: interpolated, not tabulated] Stillmaker & Baas give 32 and 20 nm but not
28 nm, a common planar node.  Its area and energy factors are interpolated
geometrically in the feature size between the two neighbours' factors
(:func:`interpolate_node`): a power law ``factor ~ L^n`` through both, which
is how area and switching energy scale with the feature size.  No factor is
fitted to anything; the docs and every step that uses 28 nm say so."""


def interpolate_node(node_nm: int, factor_at: Callable[[int], float]) -> float:
    """``factor_at`` at an interpolated node: ``f(up) * (f(low) / f(up)) ** w``.

    ``w = ln(up / node) / ln(up / low)`` is the node's position between its
    neighbours on a log scale (0.284 for 28 nm between 32 and 20 nm).
    """
    upper, lower = INTERPOLATED_NODES_NM[node_nm]
    weight = math.log(upper / node_nm) / math.log(upper / lower)
    high, low = factor_at(upper), factor_at(lower)
    return high * (low / high) ** weight


def _require_row(node_nm: int) -> None:
    """Refuse, in one line, a node with neither a tabulated nor an interpolated row."""
    if node_nm not in STILLMAKER_AREA_FROM_45NM:
        known = sorted({*STILLMAKER_AREA_FROM_45NM, *INTERPOLATED_NODES_NM}, reverse=True)
        nodes = ", ".join(map(str, known))
        raise CostModelError(f"node {node_nm} nm has no scaling row; use one of {nodes}")


def stillmaker_energy(node_nm: int, vdd: float) -> float:
    """Relative energy per operation at ``node_nm`` and ``vdd``: ``a*V*V + b*V + c``."""
    if node_nm in INTERPOLATED_NODES_NM:
        return interpolate_node(node_nm, lambda node: stillmaker_energy(node, vdd))
    _require_row(node_nm)
    a, b, c = STILLMAKER_ENERGY_POLY_BY_NODE[node_nm]
    return a * vdd * vdd + b * vdd + c


def stillmaker_energy_factor(
    from_node_nm: int, from_vdd: float, to_node_nm: int, to_vdd: float
) -> float:
    """Energy-per-operation factor from one node/voltage to another (Stillmaker & Baas 2017)."""
    return stillmaker_energy(to_node_nm, to_vdd) / stillmaker_energy(from_node_nm, from_vdd)


def energy_scale(node_nm: int, vdd: float) -> float:
    """Energy factor from Horowitz's 45 nm / 0.9 V to ``node_nm`` at ``vdd`` (Stillmaker & Baas)."""
    if node_nm in INTERPOLATED_NODES_NM:
        return interpolate_node(node_nm, lambda node: energy_scale(node, vdd))
    _require_row(node_nm)
    a, b, c = STILLMAKER_ENERGY_POLY[energy_row(node_nm)]
    a0, b0, c0 = STILLMAKER_ENERGY_POLY[SOURCE_ENERGY_ROW]
    target = a * vdd * vdd + b * vdd + c
    source = a0 * HOROWITZ_VDD**2 + b0 * HOROWITZ_VDD + c0
    if target <= 0:
        raise CostModelError(f"vdd={vdd} V is outside the {node_nm} nm energy fit; raise vdd")
    return target / source


def area_scale(node_nm: int) -> float:
    """Area factor from 45 nm to ``node_nm`` (Stillmaker & Baas 2017)."""
    if node_nm in INTERPOLATED_NODES_NM:
        return interpolate_node(node_nm, area_scale)
    _require_row(node_nm)
    return STILLMAKER_AREA_FROM_45NM[node_nm]
