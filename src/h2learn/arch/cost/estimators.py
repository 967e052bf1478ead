"""Energy and area of the primitive parts at 45 nm (Accelergy's estimator plug-ins).

Each estimator turns the published reference data of
:mod:`h2learn.arch.cost.reference` into ``(pJ per action, um^2 per unit)`` of
one part in a number format, at Horowitz's 45 nm / 0.9 V; the table
(:mod:`h2learn.arch.cost.table`) scales them to the configured node.  What is
an interpolation or an assumption of ours says so ([ours]).
"""

from __future__ import annotations

import math

from h2learn.arch.cost.reference import (
    HOROWITZ_FP_ADD,
    HOROWITZ_FP_MULT,
    HOROWITZ_INT_ADD,
    HOROWITZ_INT_MULT,
    HOROWITZ_SRAM_64BIT_PJ,
    SRAM_ARRAY_EFFICIENCY,
    SRAM_BITCELL_UM2_45NM,
)
from h2learn.arch.numerics import NumberFormat

SPECIAL_OP_MULTIPLIES = 4
"""[ours] a divide, square root, exponential or logarithm is priced as 4 multiplies
(an iterative unit of a few multiply steps; no published per-op figure is used)."""
LANES_PER_SPECIAL_UNIT = 16
"""[ours] element-wise lanes sharing one special-function unit: divides, square roots,
exponentials and logarithms are per channel or per class (batch norm, loss), far rarer
than the per-element multiplies and adds, so one unit per 16 lanes keeps up."""


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


def special_45nm(fmt: NumberFormat) -> tuple[float, float]:
    """``(pJ, um^2)`` of a divide/sqrt/exp/log unit: :data:`SPECIAL_OP_MULTIPLIES` multiplies."""
    energy, area = multiplier_45nm(fmt)
    return SPECIAL_OP_MULTIPLIES * energy, SPECIAL_OP_MULTIPLIES * area


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
