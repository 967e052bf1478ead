"""Fixed-point datapath helpers shared by the RTL processing elements.

The functional engines (:mod:`h2learn.arch.engines`) carry a fixed-point
format ``fixed<I>.<F>`` as stored two's-complement integers, keep wide exact
accumulators and round and saturate (or wrap) **once** at write-out
(:func:`h2learn.arch.numerics.round_accumulator`).  The RTL does the same in
hardware: :func:`write_out` is the combinational round-and-fit stage every PE
ends with, built from the same rules (``floor`` = arithmetic shift,
``nearest`` = ties to even; saturation to ``[int_min, int_max]`` or
two's-complement wrap).  Stochastic rounding needs a random source in the PE
and is not implemented in the RTL (:class:`RtlError`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from amaranth.hdl import Const, Mux, Value, signed

from h2learn.arch.numerics import NumberFormat, as_format
from h2learn.errors import H2LearnError


class RtlError(H2LearnError, ValueError):
    """The RTL cannot be generated, simulated or synthesized as asked; the message says why."""


@dataclass(frozen=True)
class FixedFormat:
    """The RTL view of a fixed-point :class:`~h2learn.arch.numerics.NumberFormat`."""

    width: int
    frac: int
    rounding: str = "nearest"
    saturate: bool = True

    @property
    def int_min(self) -> int:
        return -(2 ** (self.width - 1))

    @property
    def int_max(self) -> int:
        return 2 ** (self.width - 1) - 1

    @property
    def name(self) -> str:
        return f"fixed{self.width - self.frac}.{self.frac}"

    @property
    def text(self) -> str:
        """The format as :func:`h2learn.arch.numerics.parse_format` reads it."""
        return (
            self.name
            + (":floor" if self.rounding == "floor" else "")
            + ("" if self.saturate else ":wrap")
        )

    def describe(self) -> str:
        fit = "saturate" if self.saturate else "wrap"
        return f"{self.name}:{self.rounding}:{fit}"


def fixed_rtl_format(fmt: str | NumberFormat) -> FixedFormat:
    """The RTL view of a fixed-point format; stochastic rounding is refused.

    :func:`h2learn.rtl.datapath.rtl_format` takes either kind of format.
    """
    fmt = as_format(fmt)
    if not fmt.is_fixed:
        raise RtlError(f"{fmt} is a floating format; fixed_rtl_format takes fixed<I>.<F> formats")
    if fmt.rounding == "stochastic":
        raise RtlError(f"{fmt}: stochastic rounding is not in the RTL; use :nearest or :floor")
    return FixedFormat(fmt.total_bits, fmt.frac_bits, fmt.rounding, fmt.saturate)


def clog2(n: int) -> int:
    """Bits to count ``n`` things: ``ceil(log2(n))`` (0 for ``n <= 1``)."""
    return max(0, math.ceil(math.log2(n))) if n > 1 else 0


def round_shift(value: Value, shift: int, rounding: str) -> Value:
    """``value / 2**shift`` rounded (``floor`` or ``nearest`` ties-to-even); ``value`` signed."""
    if shift == 0:
        return value
    quotient = value >> shift  # arithmetic shift of a signed value = floor division
    if rounding == "floor":
        return quotient
    remainder = value.as_unsigned()[:shift]
    half = Const(2 ** (shift - 1), shift)
    up = (remainder > half) | ((remainder == half) & quotient[0])
    return quotient + up


def fit(value: Value, fmt: FixedFormat) -> Value:
    """Saturate or wrap a signed value into ``fmt.width`` bits (result ``signed(width)``)."""
    low = value.as_unsigned()[: fmt.width].as_signed()
    if not fmt.saturate:
        return low
    top = Const(fmt.int_max, signed(fmt.width))
    bottom = Const(fmt.int_min, signed(fmt.width))
    return Mux(value > fmt.int_max, top, Mux(value < fmt.int_min, bottom, low))


def write_out(value: Value, shift: int, fmt: FixedFormat) -> Value:
    """Round a wide accumulator by ``shift`` fraction bits, then fit it: one rounding point."""
    return fit(round_shift(value, shift, fmt.rounding), fmt)


def to_signed(word: int, bits: int) -> int:
    """Interpret the low ``bits`` of ``word`` as a two's-complement integer."""
    word &= (1 << bits) - 1
    return word - (1 << bits) if word >> (bits - 1) else word
