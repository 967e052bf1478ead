"""Energy per (component, action) and area per component, each with its source (Accelergy style).

Counting actions and pricing them are separate steps: :mod:`h2learn.arch.activity`
and :mod:`h2learn.arch.memory` count actions; :func:`price` multiplies the
counts by a :class:`CostTable`; swapping the table changes no model code.

Reference data (all at 45 nm, scaled to the configured node):

* Arithmetic energy and area: M. Horowitz, "Computing's energy problem (and
  what we can do about it)", ISSCC 2014, energy/area table, 45 nm, 0.9 V.
* SRAM access energy: the same table's memory rows (64-bit access of an 8 KB,
  32 KB and 1 MB SRAM: 10, 20 and 100 pJ), fitted with a power law in the
  capacity (:func:`sram_energy_pj_per_64bit`).
* SRAM area: Intel's 45 nm 6T bit cell, 0.346 um^2 (K. Mistry et al., "A 45nm
  logic technology with high-k + metal gate transistors ...", IEDM 2007),
  divided by an array efficiency [ours].
* Technology scaling: A. Stillmaker and B. Baas, "Scaling equations for the
  accurate prediction of CMOS device performance from 180 nm to 7 nm",
  Integration 58 (2017) 74-81: area factors and the energy polynomials
  ``a*V^2 + b*V + c`` per node (transcribed below).
* DRAM: energy per bit from the configuration (default: HBM2 3.9 pJ/bit,
  O'Connor et al., MICRO 2017, the figure the V100 model uses too).
* Leakage: a static power density per mm^2 of silicon from the configuration
  (default: the V100 model's static power over its die area, so that both
  designs pay the same static power density; see docs/cost-model.md).

Components are named ``<unit>.<part>`` (``forward_engine.lut``,
``backward_engine.multiplier``, ``weight_buffer``, ``dram``); every component
belongs to a category (logic, lut, sram, dram) for the energy breakdown.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from h2learn.arch.config import HardwareConfig
from h2learn.arch.numerics import NumberFormat
from h2learn.errors import H2LearnError

Action = tuple[str, str]
"""``(component, action)``, e.g. ``("forward_engine.lut", "read")``."""


class CostModelError(H2LearnError, ValueError):
    """An action has no price in the cost table (a model bug or an incomplete table)."""


# --------------------------------------------------------------------------
# Reference data, 45 nm
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

SRAM_BITCELL_UM2_45NM = 0.346
"""Intel 45 nm 6T SRAM cell (Mistry et al., IEDM 2007)."""
SRAM_ARRAY_EFFICIENCY = 0.5
"""[ours] bit-cell area / macro area (decoders, sense amplifiers, I/O); cross-check in the docs."""

# Stillmaker & Baas 2017: area relative to 45 nm (their area-scaling table, the 45 nm row).
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
# Stillmaker & Baas 2017: energy per operation = a*V^2 + b*V + c (their energy fits; HP rows
# for 45 nm and below, the single row of the older nodes; LP45 for Horowitz's 45 nm source,
# the row the V100 model's arithmetic floor uses too, so both scale by the same factor).
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
STILLMAKER = (
    "Stillmaker & Baas, 'Scaling equations for the accurate prediction of CMOS device "
    "performance from 180 nm to 7 nm', Integration 58 (2017) 74-81"
)
SOURCE_ENERGY_ROW = "LP45"


def _energy_row(node_nm: int) -> str:
    """The Stillmaker & Baas row of a node: 45 nm is the source row, so 45 nm at 0.9 V is 1x."""
    if node_nm == HOROWITZ_NODE_NM:
        return SOURCE_ENERGY_ROW
    return str(node_nm) if node_nm >= 65 else f"HP{node_nm}"


def energy_scale(node_nm: int, vdd: float) -> float:
    """Energy factor from Horowitz's 45 nm / 0.9 V to ``node_nm`` at ``vdd`` (Stillmaker & Baas)."""
    a, b, c = STILLMAKER_ENERGY_POLY[_energy_row(node_nm)]
    a0, b0, c0 = STILLMAKER_ENERGY_POLY[SOURCE_ENERGY_ROW]
    target = a * vdd * vdd + b * vdd + c
    source = a0 * HOROWITZ_VDD**2 + b0 * HOROWITZ_VDD + c0
    if target <= 0:
        raise CostModelError(f"vdd={vdd} V is outside the {node_nm} nm energy fit; raise vdd")
    return target / source


def area_scale(node_nm: int) -> float:
    """Area factor from 45 nm to ``node_nm`` (Stillmaker & Baas 2017)."""
    return STILLMAKER_AREA_FROM_45NM[node_nm]


# --------------------------------------------------------------------------
# Primitive costs at 45 nm
# --------------------------------------------------------------------------


def _interpolate_linear(points: dict[int, tuple[float, float]], bits: int) -> tuple[float, float]:
    """Linear in the width through the two published widths (adders, comparators)."""
    (w0, (e0, a0)), (w1, (e1, a1)) = sorted(points.items())
    t = (bits - w0) / (w1 - w0)
    return max(e0 + t * (e1 - e0), 1e-4), max(a0 + t * (a1 - a0), 1.0)


def _interpolate_quadratic(
    points: dict[int, tuple[float, float]], bits: int
) -> tuple[float, float]:
    """Quadratic in the width from the widest published point (array multipliers)."""
    width, (energy, area) = max(points.items())
    scale = (bits / width) ** 2
    return energy * scale, area * scale


def adder_45nm(fmt: NumberFormat) -> tuple[float, float]:
    """``(pJ, um^2)`` of one add in ``fmt`` at 45 nm.

    Floating formats: Horowitz's FP16/FP32 adders (bfloat16 priced as FP16,
    float64 as twice FP32 [ours]); fixed point: integer adders, linear in the width.
    """
    if fmt.is_fixed:
        return _interpolate_linear(HOROWITZ_INT_ADD, fmt.total_bits)
    if fmt.total_bits <= 16:
        return HOROWITZ_FP_ADD[16]
    if fmt.total_bits == 32:
        return HOROWITZ_FP_ADD[32]
    energy, area = HOROWITZ_FP_ADD[32]
    return 2 * energy, 2 * area


def multiplier_45nm(fmt: NumberFormat) -> tuple[float, float]:
    """``(pJ, um^2)`` of one multiply in ``fmt`` at 45 nm (float64: 4x FP32 [ours])."""
    if fmt.is_fixed:
        return _interpolate_quadratic(HOROWITZ_INT_MULT, fmt.total_bits)
    if fmt.total_bits <= 16:
        return HOROWITZ_FP_MULT[16]
    if fmt.total_bits == 32:
        return HOROWITZ_FP_MULT[32]
    energy, area = HOROWITZ_FP_MULT[32]
    return 4 * energy, 4 * area


def comparator_45nm(bits: int) -> tuple[float, float]:
    """A compare (or a select) priced as an integer add of the word width [ours: a subtract]."""
    return _interpolate_linear(HOROWITZ_INT_ADD, bits)


def _sram_fit() -> tuple[float, float]:
    """Least-squares fit ``log E = log a + b log S`` through Horowitz's three SRAM points."""
    xs = [math.log(size) for size in HOROWITZ_SRAM_64BIT_PJ]
    ys = [math.log(energy) for energy in HOROWITZ_SRAM_64BIT_PJ.values()]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / sum(
        (x - mean_x) ** 2 for x in xs
    )
    return math.exp(mean_y - slope * mean_x), slope


SRAM_FIT_PJ_AT_1KIB, SRAM_FIT_EXPONENT = _sram_fit()


def sram_energy_pj_per_64bit(bank_kib: float) -> float:
    """Energy of a 64-bit access to an SRAM bank of ``bank_kib`` KiB at 45 nm.

    Power law fitted to Horowitz's 8 KB / 32 KB / 1 MB points (exponent about
    0.47: energy grows with the square root of the capacity, the bit-line and
    word-line lengths).  Below 8 KB (LUT banks, register files) it is an
    extrapolation [ours].
    """
    return SRAM_FIT_PJ_AT_1KIB * max(bank_kib, 1.0 / 64) ** SRAM_FIT_EXPONENT


def sram_access_pj(bank_kib: float, width_bits: int) -> float:
    """Energy of a ``width_bits`` access to a ``bank_kib`` KiB bank, 45 nm (linear in width)."""
    return sram_energy_pj_per_64bit(bank_kib) * width_bits / 64.0


def sram_area_um2_per_bit_45nm() -> float:
    """Macro area per bit at 45 nm: bit cell / array efficiency."""
    return SRAM_BITCELL_UM2_45NM / SRAM_ARRAY_EFFICIENCY


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class CostEntry:
    """One priced item: value, units, the node it applies to and where it comes from."""

    value: float
    units: str
    node_nm: int
    source: str


COMPONENT_CATEGORY: dict[str, str] = {
    "adder": "logic",
    "multiplier": "logic",
    "comparator": "logic",
    "special": "logic",
    "lut": "lut",
    "register_file": "lut",
    "weight_buffer": "sram",
    "activation_buffer": "sram",
    "gradient_buffer": "sram",
    "membrane_buffer": "sram",
    "dram": "dram",
}
"""Energy categories: logic, lut (PE-local SRAM/RF), sram (global buffers), dram."""

BUFFERS = ("weight_buffer", "activation_buffer", "gradient_buffer", "membrane_buffer")


def category(component: str) -> str:
    """The energy category of a component (``forward_engine.lut`` -> ``lut``)."""
    return COMPONENT_CATEGORY[component.rsplit(".", 1)[-1]]


def engine_of(component: str) -> str:
    """The unit a component belongs to (``forward_engine.lut`` -> ``forward_engine``)."""
    if "." in component:
        return component.split(".", 1)[0]
    return "memory"


@dataclass
class CostTable:
    """Energy per (component, action) in pJ, area per component in mm^2, leakage density."""

    node_nm: int
    energy: dict[Action, CostEntry] = field(default_factory=dict)
    area: dict[str, CostEntry] = field(default_factory=dict)
    leakage: CostEntry | None = None

    def energy_pj(self, component: str, action: str) -> float:
        try:
            return self.energy[(component, action)].value
        except KeyError:
            raise CostModelError(
                f"no energy for ({component}, {action}) in the cost table; add an entry"
            ) from None

    @property
    def area_mm2(self) -> float:
        return sum(entry.value for entry in self.area.values())

    @property
    def leakage_w(self) -> float:
        """Static power of the whole chip (density x area)."""
        return (self.leakage.value if self.leakage else 0.0) * self.area_mm2 * 1e-3

    def entries(self) -> Iterable[tuple[str, CostEntry]]:
        """Every entry with a label (for documentation and the source check)."""
        for (component, action), entry in self.energy.items():
            yield f"{component}.{action}", entry
        for component, entry in self.area.items():
            yield f"{component} area", entry
        if self.leakage is not None:
            yield "leakage", self.leakage

    def to_dict(self) -> dict[str, Any]:
        return {label: asdict(entry) for label, entry in self.entries()}


class _TableBuilder:
    """Fills a :class:`CostTable` with entries scaled from 45 nm to the configured node."""

    def __init__(self, config: HardwareConfig):
        self.config = config
        self.node = config.technology_nm
        self.energy_factor = energy_scale(self.node, config.vdd)
        self.area_factor = area_scale(self.node)
        self.scaling = (
            f"scaled 45 nm/0.9 V -> {self.node} nm/{config.vdd} V: energy x"
            f"{self.energy_factor:.3f}, area x{self.area_factor:.3f} ({STILLMAKER})"
        )
        self.table = CostTable(node_nm=self.node)

    def energy(self, component: str, action: str, pj_45nm: float, units: str, source: str):
        self.table.energy[(component, action)] = CostEntry(
            pj_45nm * self.energy_factor, units, self.node, f"{source}; {self.scaling}"
        )

    def area(self, component: str, um2_45nm: float, source: str) -> None:
        mm2 = um2_45nm * self.area_factor * 1e-6
        self.table.area[component] = CostEntry(mm2, "mm^2", self.node, f"{source}; {self.scaling}")


def _sram_source(bank_kib: float, width: int) -> str:
    return (
        f"{HOROWITZ} SRAM rows (8 KB/32 KB/1 MB: 10/20/100 pJ per 64 bit), power-law fit "
        f"(exponent {SRAM_FIT_EXPONENT:.3f}) at a {bank_kib:.4g} KiB bank, x{width}/64 bits"
    )


def _add_datapath(builder: _TableBuilder, unit: str, units: int, fmt: NumberFormat) -> None:
    """An adder array of ``units`` adders in the datapath format."""
    add_pj, add_um2 = adder_45nm(fmt)
    src = f"{HOROWITZ} ({fmt.name} add)"
    builder.energy(f"{unit}.adder", "add", add_pj, "pJ/add", src)
    builder.area(f"{unit}.adder", units * add_um2, f"{src}; {units} adders")


def _add_multipliers(builder: _TableBuilder, unit: str, units: int, fmt: NumberFormat) -> None:
    mult_pj, mult_um2 = multiplier_45nm(fmt)
    src = f"{HOROWITZ} ({fmt.name} multiply)"
    builder.energy(f"{unit}.multiplier", "multiply", mult_pj, "pJ/multiply", src)
    builder.area(f"{unit}.multiplier", units * mult_um2, f"{src}; {units} multipliers")


def _add_local_sram(
    builder: _TableBuilder, component: str, banks: int, bank_bytes: float, width: int
) -> None:
    """PE-local storage (LUT banks, register files): reads and writes of one word."""
    bank_kib = bank_bytes / 1024
    pj = sram_access_pj(bank_kib, width)
    src = _sram_source(bank_kib, width) + " [ours: extrapolated below 8 KB]"
    builder.energy(component, "read", pj, f"pJ/{width}-bit read", src)
    builder.energy(component, "write", pj, f"pJ/{width}-bit write", src + "; write = read [ours]")
    bits = banks * bank_bytes * 8
    builder.area(
        component,
        bits * sram_area_um2_per_bit_45nm(),
        f"{banks} banks x {bank_bytes:.0f} B; {SRAM_BITCELL_UM2_45NM} um^2 cell (Mistry et al., "
        f"IEDM 2007) / array efficiency {SRAM_ARRAY_EFFICIENCY} [ours]",
    )


def _add_lut_engine(builder: _TableBuilder, unit: str, engine, fmt: NumberFormat) -> None:
    lanes = engine.pe_count * engine.lanes_per_pe
    _add_datapath(builder, unit, lanes, fmt)
    bank_bytes = engine.lut_entries_per_lane * fmt.total_bits / 8
    _add_local_sram(builder, f"{unit}.lut", lanes, bank_bytes, fmt.total_bits)


def _add_elementwise(builder: _TableBuilder, config: HardwareConfig, fmt: NumberFormat) -> None:
    lanes = config.elementwise.lanes
    _add_datapath(builder, "elementwise", lanes, fmt)
    _add_multipliers(builder, "elementwise", lanes, fmt)
    cmp_pj, cmp_um2 = comparator_45nm(fmt.total_bits)
    src = f"{HOROWITZ} ({fmt.total_bits}-bit integer add as a compare or select [ours])"
    builder.energy("elementwise.comparator", "compare", cmp_pj, "pJ/compare", src)
    builder.area("elementwise.comparator", lanes * cmp_um2, f"{src}; {lanes} comparators")
    mult_pj, mult_um2 = multiplier_45nm(fmt)
    specials = max(1, lanes // 16)
    src = f"{HOROWITZ} ({fmt.name} multiply) x4 for a divide, sqrt, exp or log [ours]"
    builder.energy("elementwise.special", "op", 4 * mult_pj, "pJ/op", src)
    builder.area("elementwise.special", specials * 4 * mult_um2, f"{src}; {specials} units")


def _add_buffers(builder: _TableBuilder, config: HardwareConfig) -> None:
    for name in BUFFERS:
        buffer = getattr(config.buffers, name.removesuffix("_buffer"))
        pj = sram_access_pj(buffer.bank_kib, buffer.width_bits)
        src = _sram_source(buffer.bank_kib, buffer.width_bits)
        units = f"pJ/{buffer.width_bits}-bit access"
        builder.energy(name, "read", pj, units, src)
        builder.energy(name, "write", pj, units, src + "; write = read [ours]")
        bits = buffer.size_bytes * 8
        builder.area(
            name,
            bits * sram_area_um2_per_bit_45nm(),
            f"{buffer.size_kib:g} KiB; {SRAM_BITCELL_UM2_45NM} um^2 cell (Mistry et al., IEDM "
            f"2007) / array efficiency {SRAM_ARRAY_EFFICIENCY} [ours]",
        )


def _add_dram(table: CostTable, config: HardwareConfig) -> None:
    src = f"config dram.energy_pj_per_bit ({config.dram.kind}); see docs/cost-model.md"
    for action in ("read", "write"):
        table.energy[("dram", action)] = CostEntry(
            config.dram.energy_pj_per_bit, "pJ/bit", config.technology_nm, src
        )


def build_cost_table(config: HardwareConfig, mac_array_units: int = 0) -> CostTable:
    """The energy/area table of ``config`` (and of a dense MAC array, if ``mac_array_units``).

    Actions priced (units in each entry): ``<engine>.adder.add``,
    ``<engine>.multiplier.multiply``, ``<engine>.lut.read/write`` and
    ``backward_engine.register_file.read`` (one datapath word),
    ``<buffer>.read/write`` (one buffer word of ``width_bits``),
    ``dram.read/write`` (one bit), ``elementwise.comparator.compare``,
    ``elementwise.special.op``.
    """
    fmt = config.number_format
    builder = _TableBuilder(config)
    _add_lut_engine(builder, "forward_engine", config.forward_engine, fmt)
    _add_lut_engine(builder, "update_engine", config.update_engine, fmt)
    backward = config.backward_engine
    _add_mac_array(builder, "backward_engine", config.backward_mac_units, backward, fmt)
    if mac_array_units:
        _add_mac_array(builder, "mac_array", mac_array_units, backward, fmt)
    _add_elementwise(builder, config, fmt)
    _add_buffers(builder, config)
    table = builder.table
    _add_dram(table, config)
    table.leakage = CostEntry(
        config.leakage_mw_per_mm2,
        "mW/mm^2",
        config.technology_nm,
        "config leakage_mw_per_mm2: the V100 model's static power density "
        "(static_power_w / die_area_mm2 = 40 W / 815 mm^2) [ours]; docs/cost-model.md",
    )
    return table


def _add_mac_array(builder: _TableBuilder, unit: str, units: int, backward, fmt) -> None:
    """``units`` multiply-accumulate units with one register file per 16 units [ours]."""
    _add_multipliers(builder, unit, units, fmt)
    _add_datapath(builder, unit, units, fmt)
    register_files = max(1, math.ceil(units / backward.macs_per_pe))
    _add_local_sram(
        builder,
        f"{unit}.register_file",
        register_files,
        backward.register_file_bytes,
        fmt.total_bits,
    )


def mac_unit_area_mm2(config: HardwareConfig) -> float:
    """Area of one MAC unit (multiplier + adder + its share of a register file), scaled."""
    fmt = config.number_format
    _, mult_um2 = multiplier_45nm(fmt)
    _, add_um2 = adder_45nm(fmt)
    rf_um2 = (
        config.backward_engine.register_file_bytes
        * 8
        * sram_area_um2_per_bit_45nm()
        / config.backward_engine.macs_per_pe
    )
    return (mult_um2 + add_um2 + rf_um2) * area_scale(config.technology_nm) * 1e-6


# --------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------


def price_actions(actions: Mapping[Action, float], table: CostTable) -> dict[Action, float]:
    """Energy in pJ of every ``(component, action) -> count``."""
    return {key: count * table.energy_pj(*key) for key, count in actions.items() if count}


def price(actions: Mapping[Action, float], table: CostTable) -> dict[str, float]:
    """Energy in pJ per component of ``(component, action) -> count`` (the Accelergy step)."""
    energy: dict[str, float] = {}
    for (component, _action), pj in price_actions(actions, table).items():
        energy[component] = energy.get(component, 0.0) + pj
    return energy
