"""Area and energy per action derived from the synthesized RTL (the ``synthesized`` cost table).

Pipeline (every constant below has its source; docs/rtl.md explains each step):

1. **Cells** -- each PE is synthesized by Yosys to a generic CMOS gate set
   (:mod:`h2learn.rtl.synth`), hierarchy kept, so every component (adder
   datapath, table bank, multiplier, comparators) has its own cell counts.
2. **Area** -- each generic cell is mapped to the matching cell of the NanGate
   45 nm Open Cell Library and takes its area (``CELL_AREA_UM2``); the sum is
   scaled from 45 nm to the configured node by Stillmaker & Baas's area factor
   (the same scaling :mod:`h2learn.arch.cost` uses).  Gate equivalents are that
   area over the NAND2_X1 area.
3. **Energy per action** -- switching energy ``1/2 C V^2`` per gate-output
   toggle, with ``C`` = (mean fanout + 1) NAND2 input capacitances plus the
   library's wire-load capacitance for that fanout, at 0.9 V (the 45 nm
   reference point of the published table); times the number of gate toggles
   per action = the activity measured in RTL simulation on a real training
   trace (:mod:`h2learn.rtl.activity`) x the component's cell count; scaled
   to the node and supply by Stillmaker & Baas's energy fit.  Clock-tree and
   leakage energy are not in the per-action figures (leakage stays the
   published per-area density).

The result uses the published table's ``(component, action)`` names; the
components the RTL does not cover are listed in :attr:`SynthesizedTable.uncovered`
(the caller keeps their published entries).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from h2learn.arch.config import HardwareConfig
from h2learn.arch.cost import CostEntry, area_scale, energy_scale
from h2learn.rtl import activity as act
from h2learn.rtl.datapath import RtlFormat, rtl_format
from h2learn.rtl.fixed import RtlError
from h2learn.rtl.lif_backward import LifBackwardUnit
from h2learn.rtl.lif_unit import LifUnit
from h2learn.rtl.pe_backward import MacPE
from h2learn.rtl.pe_forward import forward_pe
from h2learn.rtl.pe_update import update_pe
from h2learn.rtl.synth import SynthResult, synthesize

Action = tuple[str, str]

NANGATE = (
    "NanGate FreePDK45 Open Cell Library, typical corner (NangateOpenCellLibrary_typical.lib, "
    "Nangate Inc. 2011)"
)
CELL_AREA_UM2: dict[str, float] = {
    "$_NOT_": 0.532,  # INV_X1
    "$_NAND_": 0.798,  # NAND2_X1
    "$_NOR_": 0.798,  # NOR2_X1
    "$_AOI3_": 1.064,  # AOI21_X1
    "$_OAI3_": 1.064,  # OAI21_X1
    "$_AOI4_": 1.330,  # AOI22_X1
    "$_OAI4_": 1.330,  # OAI22_X1
    "$_MUX_": 1.862,  # MUX2_X1
    "$_NMUX_": 1.862 + 0.532,  # MUX2_X1 + INV_X1 (the library has no inverting mux) [ours]
    "$_XOR_": 1.596,  # XOR2_X1
    "$_XNOR_": 1.596,  # XNOR2_X1
    "$_DFF_P_": 4.522,  # DFF_X1
}
"""Area (um^2) of the NanGate 45 nm X1 cell each Yosys generic cell maps to."""
CMOS_TRANSISTORS: dict[str, int] = {
    "$_NOT_": 2,
    "$_NAND_": 4,
    "$_NOR_": 4,
    "$_AOI3_": 6,
    "$_OAI3_": 6,
    "$_AOI4_": 8,
    "$_OAI4_": 8,
    "$_NMUX_": 10,
    "$_MUX_": 12,
    "$_XOR_": 12,
    "$_XNOR_": 12,
    "$_DFF_P_": 16,
}
"""Static-CMOS transistors per generic cell: the costs of Yosys's ``stat -tech cmos``
(its per-module estimates equal these sums; tests/rtl/test_synth.py checks it)."""
NAND2_AREA_UM2 = 0.798
"""NAND2_X1 area: one gate equivalent (NanGate 45 nm)."""
NAND2_INPUT_CAP_FF = 1.599032
"""NAND2_X1 pin A1 capacitance in fF (NanGate 45 nm typical)."""
WIRE_CAP_FF_PER_UNIT = 0.1774
WIRE_FANOUT_LENGTH = {
    1: 1.7460,
    2: 3.9394,
    3: 6.4626,
    4: 9.2201,
    5: 11.9123,
    6: 14.8358,
    7: 18.6155,
    8: 22.6727,
    9: 25.4842,
    11: 27.0320,
}
"""The library's default wire-load model ``5K_hvratio_1_1``: capacitance per unit length and
length by fanout (NanGate 45 nm)."""
REFERENCE_NODE_NM, REFERENCE_VDD = 45, 0.9
"""Energies are computed at 45 nm / 0.9 V, the reference point :func:`energy_scale` scales from."""

UNCOVERED = (
    "backward_engine.register_file",
    "elementwise.special",
    "weight_buffer",
    "activation_buffer",
    "gradient_buffer",
    "membrane_buffer",
    "dram",
    "leakage",
)
"""Components (and leakage) the RTL does not cover: keep the published entries."""


def cells_area_um2(cells: dict[str, int]) -> float:
    """Area at 45 nm of a cell census (NanGate X1 cells)."""
    unknown = set(cells) - set(CELL_AREA_UM2)
    if unknown:
        raise RtlError(f"synthesis produced unmapped cell types {sorted(unknown)}")
    return sum(CELL_AREA_UM2[cell] * n for cell, n in cells.items())


def transistors(cells: dict[str, int]) -> int:
    """Static-CMOS transistor count of a cell census (Yosys's ``-tech cmos`` costs)."""
    return sum(CMOS_TRANSISTORS[cell] * n for cell, n in cells.items())


def gate_equivalents(cells: dict[str, int]) -> float:
    """NAND2 equivalents of a cell census."""
    return cells_area_um2(cells) / NAND2_AREA_UM2


def wire_cap_ff(fanout: float) -> float:
    """Wire-load capacitance for a (fractional) fanout, linear between the table's fanouts."""
    points = sorted(WIRE_FANOUT_LENGTH.items())
    if fanout <= points[0][0]:
        return WIRE_CAP_FF_PER_UNIT * points[0][1] * max(fanout, 0.0)
    for (f0, l0), (f1, l1) in zip(points, points[1:], strict=False):
        if fanout <= f1:
            return WIRE_CAP_FF_PER_UNIT * (l0 + (l1 - l0) * (fanout - f0) / (f1 - f0))
    (f0, l0), (f1, l1) = points[-2], points[-1]
    return WIRE_CAP_FF_PER_UNIT * (l1 + (l1 - l0) * (fanout - f1) / (f1 - f0))


def toggle_energy_fj(fanout: float) -> float:
    """``1/2 C V^2`` of one gate-output toggle at 45 nm / 0.9 V, ``C`` from the fanout."""
    capacitance = (fanout + 1.0) * NAND2_INPUT_CAP_FF + wire_cap_ff(fanout)
    return 0.5 * capacitance * REFERENCE_VDD**2


def _minus(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {cell: a.get(cell, 0) - b.get(cell, 0) for cell in a if a.get(cell, 0) - b.get(cell, 0)}


def _scale(cells: dict[str, int], factor: float) -> dict[str, float]:
    return {cell: n * factor for cell, n in cells.items()}


@dataclass
class Part:
    """One priced component of a synthesized PE: its cells, fanout and measured activities."""

    cells: dict[str, float]
    fanout: float
    activity: dict[str, float] = field(default_factory=dict)  # action -> toggles/bit/cycle

    @property
    def count(self) -> float:
        return sum(self.cells.values())

    def energy_pj_45nm(self, action: str) -> float:
        return self.activity[action] * self.count * toggle_energy_fj(self.fanout) * 1e-3


@dataclass
class SynthesizedTable:
    """Synthesized energy per ``(component, action)`` and area per component, with sources."""

    node_nm: int
    energy: dict[Action, CostEntry]
    area: dict[str, CostEntry]
    uncovered: tuple[str, ...]
    details: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "node_nm": self.node_nm,
            "energy": {f"{c}.{a}": vars(e) for (c, a), e in self.energy.items()},
            "area": {c: vars(e) for c, e in self.area.items()},
            "uncovered": list(self.uncovered),
            "details": self.details,
        }


def _fanout(result: SynthResult, module: str | None = None) -> float:
    """Cell-weighted mean fanout over ``module``'s subtree."""
    names = [module or result.top]
    total = weight = 0.0
    while names:
        name = names.pop()
        stats = result.modules[name]
        n = sum(stats.cells.values())
        total, weight = total + stats.fanout * n, weight + n
        names += list(stats.children)
    return total / weight if weight else 0.0


def _lut_parts(result: SynthResult, activity: dict) -> tuple[Part, Part]:
    bank = result.submodule("bank")
    bank_cells = result.subtree_cells(bank)
    datapath = Part(_minus(result.subtree_cells(), bank_cells), _fanout(result))
    storage = Part(dict(bank_cells), _fanout(result, bank))
    datapath.activity["add"] = act.activity_factor(activity, "datapath", "lookup")
    storage.activity["read"] = act.activity_factor(activity, "bank", "lookup")
    storage.activity["write"] = act.activity_factor(activity, "bank", "build")
    return datapath, storage


def pe_details(result: SynthResult) -> dict[str, Any]:
    """Cells, flip-flops, transistors, gate equivalents, area and fanout of a synthesized PE."""
    cells = result.subtree_cells()
    return {
        "cells": sum(cells.values()),
        "cells_by_type": cells,
        "flip_flops": cells.get("$_DFF_P_", 0),
        "transistors": transistors(cells),
        "gate_equivalents": round(gate_equivalents(cells), 1),
        "area_um2_45nm": round(cells_area_um2(cells), 2),
        "mean_fanout": round(_fanout(result), 3),
        "modules": {
            name: {"cells": stats.cells, "instances": stats.children}
            for name, stats in result.modules.items()
        },
    }


def synthesize_pes(
    fmt: RtlFormat,
    k_forward: int,
    k_update: int,
    block: int,
    workdir: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, SynthResult]:
    """Synthesize the PEs of one design point (files in ``workdir`` if given).

    The LIF backward unit is synthesized for its cell counts (``synthesis.json``);
    the element-wise prices come from the forward LIF lane.
    """
    designs = {
        f"forward_pe_k{k_forward}": forward_pe(k_forward, fmt, act.SYNTH_TABLES),
        f"update_pe_k{k_update}": update_pe(
            k_update, fmt, act.SYNTH_TABLES, block, max_points=2**20
        ),
        "backward_mac": MacPE(fmt, act.BACKWARD_MAX_TERMS),
        "lif_unit": LifUnit(fmt),
        "lif_backward": LifBackwardUnit(fmt),
    }
    results = {}
    for name, design in designs.items():
        if progress:
            progress(f"synthesize {name}")
        results[name] = synthesize(design, name, design.ports(), workdir)
    return results


def measure_parts(
    fmt: RtlFormat,
    k_forward: int,
    k_update: int,
    block: int,
    workdir: str | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[dict[str, Part], dict[str, Any]]:
    """Synthesize and simulate the PEs on the trace: the priced parts and per-PE details."""
    results = synthesize_pes(fmt, k_forward, k_update, block, workdir, progress)
    data = act.default_operands()
    if progress:
        progress("measure switching activity")
    fwd, upd = results[f"forward_pe_k{k_forward}"], results[f"update_pe_k{k_update}"]
    mac, lif = results["backward_mac"], results["lif_unit"]
    parts: dict[str, Part] = {}
    parts["forward_engine.adder"], parts["forward_engine.lut"] = _lut_parts(
        fwd, act.forward_activity(k_forward, fmt, data)
    )
    parts["update_engine.adder"], parts["update_engine.lut"] = _lut_parts(
        upd, act.update_activity(k_update, fmt, block, data)
    )
    mac_act = act.backward_activity(fmt, data)
    mult_cells = mac.subtree_cells(mac.submodule("multiplier"))
    parts["backward_engine.multiplier"] = Part(
        dict(mult_cells),
        _fanout(mac, mac.submodule("multiplier")),
        {"multiply": act.activity_factor(mac_act, "multiplier", "mac")},
    )
    parts["backward_engine.adder"] = Part(
        _minus(mac.subtree_cells(), mult_cells),
        _fanout(mac),
        {"add": act.activity_factor(mac_act, "datapath", "mac")},
    )
    lif_act = act.lif_activity(fmt, data)
    lif_mult = lif.subtree_cells(lif.submodule("multiplier"))
    comparators: dict[str, int] = {}
    for name in ("threshold", "above_low", "below_high"):
        for cell, n in lif.subtree_cells(lif.submodule(name)).items():
            comparators[cell] = comparators.get(cell, 0) + n
    rest = _minus(_minus(lif.subtree_cells(), lif_mult), comparators)
    parts["elementwise.multiplier"] = Part(
        dict(lif_mult),
        _fanout(lif, lif.submodule("multiplier")),
        {"multiply": act.activity_factor(lif_act, "multiplier", "step")},
    )
    parts["elementwise.adder"] = Part(
        rest, _fanout(lif), {"add": act.activity_factor(lif_act, "adder", "step")}
    )
    parts["elementwise.comparator"] = Part(  # one of the lane's three comparators
        _scale(comparators, 1 / 3),
        _fanout(lif, lif.submodule("threshold")),
        {"compare": act.activity_factor(lif_act, "comparator", "step")},
    )
    details = {name: pe_details(result) for name, result in results.items()}
    details["activity_source"] = data.source
    return parts, details


@lru_cache(maxsize=8)
def _cached_parts(fmt: RtlFormat, k_forward: int, k_update: int, block: int):
    return measure_parts(fmt, k_forward, k_update, block)


ACTION_UNITS = {
    "add": "pJ/add",
    "read": "pJ/entry read",
    "write": "pJ/entry write",
    "multiply": "pJ/multiply",
    "compare": "pJ/compare",
}


def _units_per_component(config: HardwareConfig, fmt: RtlFormat) -> dict[str, tuple[float, str]]:
    """How many of each part the configured chip has (LUT banks: a bit-count ratio)."""
    fe, ue = config.forward_engine, config.update_engine
    lanes_f, lanes_u = fe.pe_count * fe.lanes_per_pe, ue.pe_count * ue.lanes_per_pe
    k_f, k_u = config.forward_group_size, config.update_group_size
    bank_f = act.SYNTH_TABLES * 2**k_f  # entries in the synthesized bank
    bank_u = act.SYNTH_TABLES * 2**k_u
    lanes = config.elementwise.lanes
    return {
        "forward_engine.adder": (lanes_f, f"{lanes_f} lanes"),
        "forward_engine.lut": (
            lanes_f * fe.lut_entries_per_lane / bank_f,
            f"{lanes_f} lanes x {fe.lut_entries_per_lane} entries, scaled per entry from a "
            f"synthesized {bank_f}-entry register-file bank",
        ),
        "update_engine.adder": (lanes_u, f"{lanes_u} lanes"),
        "update_engine.lut": (
            lanes_u * ue.lut_entries_per_lane / bank_u,
            f"{lanes_u} lanes x {ue.lut_entries_per_lane} entries, scaled per entry from a "
            f"synthesized {bank_u}-entry register-file bank",
        ),
        "backward_engine.multiplier": (
            config.backward_mac_units,
            f"{config.backward_mac_units} MACs",
        ),
        "backward_engine.adder": (config.backward_mac_units, f"{config.backward_mac_units} MACs"),
        "elementwise.multiplier": (lanes, f"{lanes} lanes"),
        "elementwise.adder": (lanes, f"{lanes} lanes"),
        "elementwise.comparator": (3 * lanes, f"{lanes} lanes x 3 comparators"),
    }


def table_from_parts(
    config: HardwareConfig, fmt: RtlFormat, parts: dict[str, Part], details: dict[str, Any]
) -> SynthesizedTable:
    """Price the measured parts for ``config``'s node, supply and unit counts."""
    node, vdd = config.technology_nm, config.vdd
    e_factor, a_factor = energy_scale(node, vdd), area_scale(node)
    scaling = (
        f"scaled {REFERENCE_NODE_NM} nm/{REFERENCE_VDD} V -> {node} nm/{vdd} V: energy "
        f"x{e_factor:.3f}, area x{a_factor:.3f} (Stillmaker & Baas 2017)"
    )
    energy: dict[Action, CostEntry] = {}
    area: dict[str, CostEntry] = {}
    counts = _units_per_component(config, fmt)
    for component, part in parts.items():
        ge = gate_equivalents({c: round(n) for c, n in part.cells.items()})
        base = (
            f"RTL {fmt.describe()} synthesized by Yosys: {part.count:.0f} cells, {ge:.0f} GE "
            f"({NANGATE} areas)"
        )
        for action, alpha in part.activity.items():
            per_toggle = toggle_energy_fj(part.fanout)
            energy[(component, action)] = CostEntry(
                part.energy_pj_45nm(action) * e_factor,
                ACTION_UNITS[action],
                node,
                f"{base}; activity {alpha:.3f} toggles/bit measured in RTL simulation of "
                f"{details['activity_source']}; {per_toggle:.2f} fJ/toggle (1/2 C V^2, fanout "
                f"{part.fanout:.2f}, NAND2 pin and wire-load caps); {scaling}",
            )
        units, what = counts[component]
        um2 = sum(CELL_AREA_UM2[c] * n for c, n in part.cells.items())
        area[component] = CostEntry(
            um2 * units * a_factor * 1e-6, "mm^2", node, f"{base}; {what}; {scaling}"
        )
    return SynthesizedTable(node, energy, area, UNCOVERED, details)


def synthesized_cost_table(config: HardwareConfig) -> SynthesizedTable:
    """The synthesized energy/area entries of ``config`` (fixed point, float16/bfloat16/float32).

    Runs Yosys and the RTL simulator once per (format, k, block) in a process
    (cached); every call after that only re-prices.  Raises
    :class:`~h2learn.rtl.fixed.RtlError` for float64, stochastic rounding, or
    when no Yosys is installed.
    """
    fmt = rtl_format(config.datapath_format)
    block = config.update_engine.partial_sum_groups
    parts, details = _cached_parts(fmt, config.forward_group_size, config.update_group_size, block)
    return table_from_parts(config, fmt, parts, details)


def ratio(synthesized: float, published: float) -> float:
    """``synthesized / published`` (inf when the published value is 0)."""
    return synthesized / published if published else math.inf
