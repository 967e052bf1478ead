"""The energy reference table: energy per (component, action), area per component, leakage.

Accelergy's ERT/ART step: :func:`build_cost_table` asks the estimators
(:mod:`h2learn.arch.cost.estimators`) for every part of a configured design,
scales them from 45 nm to the configured node (:mod:`h2learn.arch.cost.reference`)
and records where each number comes from (:attr:`CostEntry.source`).
:func:`price` multiplies ``(component, action)`` counts by the table; swapping
the table changes no model code.  Component and action names come from
:mod:`h2learn.arch.names`, the same names :mod:`h2learn.arch.actions` counts.

* DRAM: energy per bit from the configuration (default: HBM2 3.9 pJ/bit,
  O'Connor et al., MICRO 2017, the figure the V100 model uses too).
* Leakage: a static power density per mm^2 of silicon from the configuration
  (default: the V100 model's static power over its die area, so that both
  designs pay the same static power density; see docs/cost-model.md).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from h2learn.arch.config import ConfigError, HardwareConfig
from h2learn.arch.cost.estimators import (
    LANES_PER_SPECIAL_UNIT,
    SPECIAL_OP_MULTIPLIES,
    SRAM_FIT_EXPONENT,
    adder_45nm,
    comparator_45nm,
    multiplier_45nm,
    special_45nm,
    sram_access_pj,
    sram_area_um2_per_bit_45nm,
)
from h2learn.arch.cost.reference import (
    HOROWITZ,
    SRAM_ARRAY_EFFICIENCY,
    SRAM_BITCELL_UM2_45NM,
    STILLMAKER,
    CostModelError,
    area_scale,
    energy_scale,
)
from h2learn.arch.names import (
    BUFFERS,
    DRAM,
    Action,
    Engine,
    Part,
    component,
)
from h2learn.arch.numerics import NumberFormat

if TYPE_CHECKING:  # the RTL (and Yosys) load only when a synthesized table is asked for
    from h2learn.rtl.cost_table import SynthesizedTable

ActionKey = tuple[str, str]
"""``(component, action)``, e.g. ``("forward_engine.lut", "read")``."""


@dataclass(frozen=True)
class CostEntry:
    """One priced item: value, units, the node it applies to and where it comes from."""

    value: float
    units: str
    node_nm: int
    source: str


@dataclass
class CostTable:
    """Energy per (component, action) in pJ, area per component in mm^2, leakage density."""

    node_nm: int
    energy: dict[ActionKey, CostEntry] = field(default_factory=dict)
    area: dict[str, CostEntry] = field(default_factory=dict)
    leakage: CostEntry | None = None

    def energy_pj(self, component: str, action: str) -> float:
        """The energy of one action; a :class:`CostModelError` if the table has no price."""
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
        for (name, action), entry in self.energy.items():
            yield f"{name}.{action}", entry
        for name, entry in self.area.items():
            yield f"{name} area", entry
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

    def energy(self, name: str, action: str, pj_45nm: float, units: str, source: str) -> None:
        self.table.energy[(name, action)] = CostEntry(
            pj_45nm * self.energy_factor, units, self.node, f"{source}; {self.scaling}"
        )

    def area(self, name: str, um2_45nm: float, source: str) -> None:
        mm2 = um2_45nm * self.area_factor * 1e-6
        self.table.area[name] = CostEntry(mm2, "mm^2", self.node, f"{source}; {self.scaling}")


def _sram_source(bank_kib: float, width: int) -> str:
    return (
        f"{HOROWITZ} SRAM rows (8 KB/32 KB/1 MB: 10/20/100 pJ per 64 bit), power-law fit "
        f"(exponent {SRAM_FIT_EXPONENT:.3f}) at a {bank_kib:.4g} KiB bank, x{width}/64 bits"
    )


def _cell_source(capacity: str) -> str:
    return (
        f"{capacity}; {SRAM_BITCELL_UM2_45NM} um^2 cell (Mistry et al., IEDM 2007) / "
        f"array efficiency {SRAM_ARRAY_EFFICIENCY} [ours]"
    )


def _add_adders(builder: _TableBuilder, unit: str, units: int, fmt: NumberFormat) -> None:
    """An adder array of ``units`` adders in the datapath format."""
    add_pj, add_um2 = adder_45nm(fmt)
    src = f"{HOROWITZ} ({fmt.name} add)"
    builder.energy(component(unit, Part.ADDER), Action.ADD, add_pj, "pJ/add", src)
    builder.area(component(unit, Part.ADDER), units * add_um2, f"{src}; {units} adders")


def _add_multipliers(builder: _TableBuilder, unit: str, units: int, fmt: NumberFormat) -> None:
    mult_pj, mult_um2 = multiplier_45nm(fmt)
    src = f"{HOROWITZ} ({fmt.name} multiply)"
    name = component(unit, Part.MULTIPLIER)
    builder.energy(name, Action.MULTIPLY, mult_pj, "pJ/multiply", src)
    builder.area(name, units * mult_um2, f"{src}; {units} multipliers")


def _add_local_sram(
    builder: _TableBuilder, name: str, banks: int, bank_bytes: float, width: int
) -> None:
    """PE-local storage (LUT banks, register files): reads and writes of one word."""
    bank_kib = bank_bytes / 1024
    pj = sram_access_pj(bank_kib, width)
    src = _sram_source(bank_kib, width) + " [ours: extrapolated below 8 KB]"
    builder.energy(name, Action.READ, pj, f"pJ/{width}-bit read", src)
    builder.energy(name, Action.WRITE, pj, f"pJ/{width}-bit write", src + "; write = read [ours]")
    bits = banks * bank_bytes * 8
    builder.area(
        name,
        bits * sram_area_um2_per_bit_45nm(),
        _cell_source(f"{banks} banks x {bank_bytes:.0f} B"),
    )


def _add_lut_engine(builder: _TableBuilder, unit: str, engine, fmt: NumberFormat) -> None:
    lanes = engine.pe_count * engine.lanes_per_pe
    _add_adders(builder, unit, lanes, fmt)
    bank_bytes = engine.lut_entries_per_lane * fmt.total_bits / 8
    _add_local_sram(builder, component(unit, Part.LUT), lanes, bank_bytes, fmt.total_bits)


def _add_mac_array(builder: _TableBuilder, unit: str, units: int, backward, fmt) -> None:
    """``units`` multiply-accumulate units with one register file per ``macs_per_pe`` units."""
    _add_multipliers(builder, unit, units, fmt)
    _add_adders(builder, unit, units, fmt)
    register_files = max(1, math.ceil(units / backward.macs_per_pe))
    _add_local_sram(
        builder,
        component(unit, Part.REGISTER_FILE),
        register_files,
        backward.register_file_bytes,
        fmt.total_bits,
    )


def _add_elementwise(builder: _TableBuilder, config: HardwareConfig, fmt: NumberFormat) -> None:
    lanes = config.elementwise.lanes
    unit = Engine.ELEMENTWISE
    _add_adders(builder, unit, lanes, fmt)
    _add_multipliers(builder, unit, lanes, fmt)
    cmp_pj, cmp_um2 = comparator_45nm(fmt.total_bits)
    src = f"{HOROWITZ} ({fmt.total_bits}-bit integer add as a compare or select [ours])"
    name = component(unit, Part.COMPARATOR)
    builder.energy(name, Action.COMPARE, cmp_pj, "pJ/compare", src)
    builder.area(name, lanes * cmp_um2, f"{src}; {lanes} comparators")
    special_pj, special_um2 = special_45nm(fmt)
    specials = max(1, lanes // LANES_PER_SPECIAL_UNIT)
    src = (
        f"{HOROWITZ} ({fmt.name} multiply) x{SPECIAL_OP_MULTIPLIES} for a divide, sqrt, exp or "
        f"log [ours]"
    )
    name = component(unit, Part.SPECIAL)
    builder.energy(name, Action.OP, special_pj, "pJ/op", src)
    builder.area(name, specials * special_um2, f"{src}; {specials} units (1 per 16 lanes [ours])")


def _add_buffers(builder: _TableBuilder, config: HardwareConfig) -> None:
    for name in BUFFERS:
        buffer = getattr(config.buffers, name.section)
        pj = sram_access_pj(buffer.bank_kib, buffer.width_bits)
        src = _sram_source(buffer.bank_kib, buffer.width_bits)
        units = f"pJ/{buffer.width_bits}-bit access"
        builder.energy(name, Action.READ, pj, units, src)
        builder.energy(name, Action.WRITE, pj, units, src + "; write = read [ours]")
        bits = buffer.size_bytes * 8
        builder.area(
            name, bits * sram_area_um2_per_bit_45nm(), _cell_source(f"{buffer.size_kib:g} KiB")
        )


def _add_dram(table: CostTable, config: HardwareConfig) -> None:
    src = f"config dram.energy_pj_per_bit ({config.dram.kind}); see docs/cost-model.md"
    for action in (Action.READ, Action.WRITE):
        table.energy[(DRAM, action)] = CostEntry(
            config.dram.energy_pj_per_bit, "pJ/bit", config.technology_nm, src
        )


def _use_synthesized(table: CostTable, config: HardwareConfig, mac_array_units: int) -> None:
    """Replace the entries the RTL covers by the synthesized ones (``cost_table: synthesized``).

    :func:`h2learn.rtl.cost_table.synthesized_cost_table` derives them from the
    Yosys cell counts of this project's RTL and switching activity measured in
    its simulation (docs/rtl.md); SRAM buffers, DRAM, the register file, the
    special-function units and leakage keep their published entries.  The RTL
    implements fixed point, float16, bfloat16 and float32; a format it does
    not (float64, stochastic rounding), or a machine without Yosys, is refused
    in one line (a :class:`~h2learn.arch.config.ConfigError`: the config asks
    for what cannot be priced).
    """
    synthesized = _synthesized(config)
    table.energy.update(synthesized.energy)
    table.area.update(synthesized.area)
    if mac_array_units:
        _dense_array_as_synthesized(table, config, synthesized, mac_array_units)


def _synthesized(config: HardwareConfig) -> SynthesizedTable:
    """The synthesized table of ``config``, its refusals as one-line :class:`ConfigError`."""
    from h2learn.rtl.cost_table import synthesized_cost_table  # Yosys runs only on demand
    from h2learn.rtl.fixed import RtlError

    try:
        return synthesized_cost_table(config)
    except RtlError as exc:
        raise ConfigError(f"cost_table 'synthesized': {exc}") from None


def _dense_array_as_synthesized(
    table: CostTable, config: HardwareConfig, synthesized: SynthesizedTable, units: int
) -> None:
    """The dense baseline's MAC array priced as the Backward Engine's synthesized MAC.

    The dense array's unit is the same multiply-accumulate unit without the
    sparsity gating [ours]: its multiply and add take the synthesized
    Backward Engine prices, and its area the synthesized area per MAC unit
    times its unit count (the gating logic, a few gates per MAC, stays in:
    a slight over-estimate).  Its register file stays published, as the
    Backward Engine's does.
    """
    for part, action in ((Part.MULTIPLIER, Action.MULTIPLY), (Part.ADDER, Action.ADD)):
        dense_name = component(Engine.MAC_ARRAY, part)
        source_name = component(Engine.BACKWARD, part)
        energy = synthesized.energy[(source_name, action)]
        table.energy[(dense_name, action)] = CostEntry(
            energy.value, energy.units, energy.node_nm, f"as {source_name}: {energy.source}"
        )
        area = synthesized.area[source_name]
        table.area[dense_name] = CostEntry(
            _per_mac_unit(synthesized, config, part) * units,
            area.units,
            area.node_nm,
            f"{units} units x the synthesized area per {source_name} unit: {area.source}",
        )


def _per_mac_unit(synthesized: SynthesizedTable, config: HardwareConfig, part: Part) -> float:
    """Synthesized area (mm^2) of one Backward Engine MAC unit's multiplier or adder."""
    area = synthesized.area[component(Engine.BACKWARD, part)].value
    return area / config.backward_mac_units


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
    _add_lut_engine(builder, Engine.FORWARD, config.forward_engine, fmt)
    _add_lut_engine(builder, Engine.UPDATE, config.update_engine, fmt)
    backward = config.backward_engine
    _add_mac_array(builder, Engine.BACKWARD, config.backward_mac_units, backward, fmt)
    if mac_array_units:
        _add_mac_array(builder, Engine.MAC_ARRAY, mac_array_units, backward, fmt)
    _add_elementwise(builder, config, fmt)
    _add_buffers(builder, config)
    table = builder.table
    _add_dram(table, config)
    if config.cost_table == "synthesized":
        _use_synthesized(table, config, mac_array_units)
    table.leakage = CostEntry(
        config.leakage_mw_per_mm2,
        "mW/mm^2",
        config.technology_nm,
        "config leakage_mw_per_mm2: the V100 model's static power density "
        "(static_power_w / die_area_mm2 = 40 W / 815 mm^2) [ours]; docs/cost-model.md",
    )
    return table


def mac_unit_area_mm2(config: HardwareConfig) -> float:
    """Area of one MAC unit (multiplier + adder + its share of a register file), scaled.

    With ``cost_table: synthesized`` the multiplier and adder are the
    synthesized Backward Engine MAC's, per unit (the register file stays published).
    """
    fmt = config.number_format
    rf_um2 = (
        config.backward_engine.register_file_bytes
        * 8
        * sram_area_um2_per_bit_45nm()
        / config.backward_engine.macs_per_pe
    )
    rf_mm2 = rf_um2 * area_scale(config.technology_nm) * 1e-6
    if config.cost_table == "synthesized":
        synthesized = _synthesized(config)
        parts = (Part.MULTIPLIER, Part.ADDER)
        return sum(_per_mac_unit(synthesized, config, part) for part in parts) + rf_mm2
    _, mult_um2 = multiplier_45nm(fmt)
    _, add_um2 = adder_45nm(fmt)
    return (mult_um2 + add_um2) * area_scale(config.technology_nm) * 1e-6 + rf_mm2


# --------------------------------------------------------------------------
# Pricing
# --------------------------------------------------------------------------


def price_actions(actions: Mapping[ActionKey, float], table: CostTable) -> dict[ActionKey, float]:
    """Energy in pJ of every ``(component, action) -> count``."""
    return {key: count * table.energy_pj(*key) for key, count in actions.items() if count}


def price(actions: Mapping[ActionKey, float], table: CostTable) -> dict[str, float]:
    """Energy in pJ per component of ``(component, action) -> count`` (the Accelergy step)."""
    energy: dict[str, float] = {}
    for (name, _action), pj in price_actions(actions, table).items():
        energy[name] = energy.get(name, 0.0) + pj
    return energy
