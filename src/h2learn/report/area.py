"""Sizing a design to a target chip area: engines scaled by a factor, buffers solved to fit.

The paper gives one area figure (7.38x less than the V100's 815 mm^2, so about
110.4 mm^2) and no PE counts or buffer sizes.  :func:`size_to_area` builds the
design of that area from ours: the engines (PE counts and element-wise lanes)
at ``pe_scale`` times our default, the four global buffers at one common
factor times our default, that factor solved by bisection on the cost model's
area.  Which ``pe_scale`` is best is a sweep's question
(:func:`h2learn.report.waterfall.choose_pe_scale`).
"""

from __future__ import annotations

from h2learn.arch.config import ConfigError, HardwareConfig, get_field, set_fields

PE_FIELDS: tuple[str, ...] = (
    "forward_engine.pe_count",
    "backward_engine.pe_count",
    "update_engine.pe_count",
    "elementwise.lanes",
)
"""The engine sizes :func:`pe_scaled` multiplies."""

BUFFERS: tuple[str, ...] = ("weight", "activation", "gradient", "membrane")

KIB_STEP = 0.1
"""Buffer sizes are rounded to 0.1 KiB so that the written configs stay readable."""


def design_area_mm2(config: HardwareConfig) -> float:
    """The H2Learn chip area of ``config`` in the cost model (mm^2)."""
    from h2learn.arch.cost import build_cost_table
    from h2learn.arch.simulate import h2learn_area_components

    return sum(h2learn_area_components(build_cost_table(config)).values())


def pe_scaled(config: HardwareConfig, scale: float) -> HardwareConfig:
    """``config`` with every engine at ``scale`` times our default size (at least 1)."""
    default = HardwareConfig()
    changes = {}
    for path in PE_FIELDS:
        changes[path] = max(1, round(get_field(default, path) * scale))
    return set_fields(config, changes)


def buffers_scaled(config: HardwareConfig, factor: float) -> HardwareConfig:
    """``config`` with the four buffers at ``factor`` times our default capacity."""
    default = HardwareConfig().buffers
    changes = {}
    for name in BUFFERS:
        size = round(getattr(default, name).size_kib * factor / KIB_STEP) * KIB_STEP
        changes[f"buffers.{name}.size_kib"] = max(KIB_STEP, round(size, 1))
    return set_fields(config, changes)


def size_to_area(
    config: HardwareConfig, target_mm2: float, pe_scale: float = 1.0, tolerance: float = 1e-4
) -> HardwareConfig:
    """``config`` with engines at ``pe_scale`` x default and buffers solved to ``target_mm2``.

    Area grows monotonically with buffer capacity, so bisection on the common
    buffer factor converges; raises :class:`ConfigError` when the engines
    alone (with vanishing buffers) already exceed the target.
    """
    engines = pe_scaled(config, pe_scale)
    low, high = 1e-3, 1.0
    if design_area_mm2(buffers_scaled(engines, low)) > target_mm2:
        raise ConfigError(
            f"engines at {pe_scale}x our default exceed {target_mm2:.1f} mm^2 "
            f"at {config.technology_nm} nm before any buffer"
        )
    while design_area_mm2(buffers_scaled(engines, high)) < target_mm2:
        high *= 2.0
        if high > 1e4:
            raise ConfigError(f"no buffer size reaches {target_mm2:.1f} mm^2")
    for _ in range(60):
        middle = 0.5 * (low + high)
        if design_area_mm2(buffers_scaled(engines, middle)) < target_mm2:
            low = middle
        else:
            high = middle
        if high - low <= tolerance * high:
            break
    return buffers_scaled(engines, 0.5 * (low + high))
