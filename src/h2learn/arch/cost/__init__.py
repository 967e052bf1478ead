"""Energy per (component, action) and area per component, each with its source (Accelergy style).

* :mod:`~h2learn.arch.cost.reference` -- the published data (Horowitz, Mistry,
  Stillmaker & Baas) and the node/voltage scaling, shared with the GPU model;
* :mod:`~h2learn.arch.cost.estimators` -- energy and area of one adder,
  multiplier, comparator, special unit or SRAM access at 45 nm;
* :mod:`~h2learn.arch.cost.table` -- :class:`CostTable` (the ERT/ART) built
  for a configured design, and :func:`price`.

Counting actions and pricing them are separate steps: :mod:`h2learn.arch.actions`
and :mod:`h2learn.arch.memory` count actions; :func:`price` multiplies the
counts by a :class:`CostTable`; swapping the table changes no model code.
Components are named ``<unit>.<part>`` (``forward_engine.lut``,
``backward_engine.multiplier``, ``weight_buffer``, ``dram``) by
:mod:`h2learn.arch.names`; every component belongs to a category (logic, lut,
sram, dram) for the energy breakdown.
"""

from h2learn.arch.cost.estimators import (
    SRAM_FIT_EXPONENT,
    SRAM_FIT_PJ_AT_1KIB,
    adder_45nm,
    comparator_45nm,
    multiplier_45nm,
    special_45nm,
    sram_access_pj,
    sram_area_um2_per_bit_45nm,
    sram_energy_pj_per_64bit,
)
from h2learn.arch.cost.reference import (
    HOROWITZ,
    HOROWITZ_FP_ADD,
    HOROWITZ_FP_MULT,
    HOROWITZ_INT_ADD,
    HOROWITZ_INT_MULT,
    HOROWITZ_NODE_NM,
    HOROWITZ_SRAM_64BIT_PJ,
    HOROWITZ_VDD,
    SOURCE_ENERGY_ROW,
    SRAM_ARRAY_EFFICIENCY,
    SRAM_BITCELL_UM2_45NM,
    STILLMAKER,
    STILLMAKER_AREA_FROM_45NM,
    STILLMAKER_ENERGY_POLY,
    CostModelError,
    area_scale,
    energy_scale,
)
from h2learn.arch.cost.table import (
    ActionKey,
    CostEntry,
    CostTable,
    build_cost_table,
    mac_unit_area_mm2,
    price,
    price_actions,
)
from h2learn.arch.names import BUFFERS, CATEGORY, category

Action = ActionKey
"""``(component, action)``; the name the single-module cost model used."""
COMPONENT_CATEGORY = CATEGORY
"""Energy categories by part or component (defined in :mod:`h2learn.arch.names`)."""

__all__ = [
    "BUFFERS",
    "COMPONENT_CATEGORY",
    "HOROWITZ",
    "HOROWITZ_FP_ADD",
    "HOROWITZ_FP_MULT",
    "HOROWITZ_INT_ADD",
    "HOROWITZ_INT_MULT",
    "HOROWITZ_NODE_NM",
    "HOROWITZ_SRAM_64BIT_PJ",
    "HOROWITZ_VDD",
    "SOURCE_ENERGY_ROW",
    "SRAM_ARRAY_EFFICIENCY",
    "SRAM_BITCELL_UM2_45NM",
    "SRAM_FIT_EXPONENT",
    "SRAM_FIT_PJ_AT_1KIB",
    "STILLMAKER",
    "STILLMAKER_AREA_FROM_45NM",
    "STILLMAKER_ENERGY_POLY",
    "Action",
    "ActionKey",
    "CostEntry",
    "CostModelError",
    "CostTable",
    "adder_45nm",
    "area_scale",
    "build_cost_table",
    "category",
    "comparator_45nm",
    "energy_scale",
    "mac_unit_area_mm2",
    "multiplier_45nm",
    "price",
    "price_actions",
    "special_45nm",
    "sram_access_pj",
    "sram_area_um2_per_bit_45nm",
    "sram_energy_pj_per_64bit",
]
