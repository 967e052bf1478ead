"""One arithmetic interface for the RTL datapaths: fixed point or IEEE floating point.

The processing elements are written once against this module; the number
format picks the hardware behind each operation:

==================  ======================================  ================================
operation           fixed point (:mod:`h2learn.rtl.fixed`)  floating (:mod:`.floating`)
==================  ======================================  ================================
words               ``signed(width)`` stored integers       ``unsigned(width)`` bit patterns
table entry         ``width + clog2(k)`` bits (exact)       ``width`` bits (rounded sums)
accumulator         wide, exact                             ``width`` bits, each add rounded
adder, multiplier   exact integer units                     IEEE units, nearest-even
product             round ``F`` bits, saturate or wrap      already rounded
write-out           round and fit once                      nothing left to do
zero test           all bits 0                              magnitude bits 0 (``-0 == 0``)
==================  ======================================  ================================

This mirrors :mod:`h2learn.arch.numerics` (fixed point: wide exact
accumulators, one rounding at write-out; floating formats: every product and
add rounded to the format), so each PE stays bit-identical to the engines in
either kind of format.
"""

from __future__ import annotations

import torch
from amaranth.hdl import Const, Elaboratable, Module, Shape, Signal, Value, signed, unsigned

from h2learn.arch.numerics import NumberFormat, as_format, parse_format, quantize, to_fixed_int
from h2learn.rtl import fixed
from h2learn.rtl.fixed import FixedFormat, RtlError, clog2
from h2learn.rtl.floating import (
    FloatAdder,
    FloatComparator,
    FloatFormat,
    FloatMultiplier,
    float_rtl_format,
    negate,
    to_bits,
)

RtlFormat = FixedFormat | FloatFormat
"""A number format the RTL implements."""


def rtl_format(fmt: str | NumberFormat) -> RtlFormat:
    """The RTL view of a datapath format: fixed point, float16, bfloat16 or float32.

    Raises :class:`RtlError` (one line) for float64 and for stochastic rounding.
    """
    parsed = as_format(fmt)
    if parsed.is_fixed:
        return fixed.fixed_rtl_format(parsed)
    return float_rtl_format(parsed)


def is_float(fmt: RtlFormat) -> bool:
    return isinstance(fmt, FloatFormat)


def word_shape(fmt: RtlFormat) -> Shape:
    """The shape of one datapath word: signed stored integers or unsigned bit patterns."""
    return unsigned(fmt.width) if is_float(fmt) else signed(fmt.width)


def sum_shape(fmt: RtlFormat, bits: int) -> Shape:
    """The shape of a sum held in ``bits`` (fixed point, signed) or one word (floating)."""
    return word_shape(fmt) if is_float(fmt) else signed(bits)


def stored_words(values: torch.Tensor, fmt: RtlFormat) -> torch.Tensor:
    """Datapath words of real values, converted as the engines load them (int64 tensor).

    Fixed point: the stored two's-complement integers; floating formats: the
    IEEE bit patterns of the values after the engines' own conversion
    (:func:`~h2learn.arch.numerics.quantize`, whose float64 casts go through
    float32 as torch's do and whose overflow saturates), so both see one word.
    """
    if is_float(fmt):
        loaded = quantize(values, parse_format(fmt.text))
        return torch.tensor(to_bits(loaded, fmt), dtype=torch.int64).reshape(values.shape)
    return to_fixed_int(values, parse_format(fmt.text))


def entry_bits(fmt: RtlFormat, k: int) -> int:
    """Bits of a LUT entry holding a sum of ``k`` operands (exact in fixed point)."""
    return fmt.width if is_float(fmt) else fmt.width + clog2(k)


def accumulator_bits(fmt: RtlFormat, exact_bits: int) -> int:
    """The accumulator width: ``exact_bits`` in fixed point, the format's width when floating."""
    return fmt.width if is_float(fmt) else exact_bits


def zero(fmt: RtlFormat) -> Value:
    """The word +0."""
    return Const(0, word_shape(fmt))


def is_zero(fmt: RtlFormat, value: Value) -> Value:
    """``value == 0`` as the engines test it (floating: +0 and -0 are both zero)."""
    if is_float(fmt):
        return value[: fmt.width - 1] == 0
    return value == 0


class FixedAdder(Elaboratable):
    """A combinational signed adder ``sum = a + b`` (one bit wider than its operands)."""

    def __init__(self, width: int):
        self.a = Signal(signed(width))
        self.b = Signal(signed(width))
        self.sum = Signal(signed(width + 1))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.sum.eq(self.a + self.b)
        return m


class FixedMultiplier(Elaboratable):
    """A combinational signed multiplier ``product = a * b`` (exact, ``2 * width`` bits)."""

    def __init__(self, width: int):
        self.a = Signal(signed(width))
        self.b = Signal(signed(width))
        self.product = Signal(signed(2 * width))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.product.eq(self.a * self.b)
        return m


class FixedComparator(Elaboratable):
    """A signed greater-than ``gt = a > b`` (a subtractor's sign in hardware)."""

    def __init__(self, width: int):
        self.a = Signal(signed(width))
        self.b = Signal(signed(width))
        self.gt = Signal()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.gt.eq(self.a > self.b)
        return m


def adder(fmt: RtlFormat) -> Elaboratable:
    """A combinational adder of two words (ports ``a``, ``b``, ``sum``)."""
    return FloatAdder(fmt) if is_float(fmt) else FixedAdder(fmt.width)


def multiplier(fmt: RtlFormat) -> Elaboratable:
    """A combinational multiplier of two words (ports ``a``, ``b``, ``product``)."""
    return FloatMultiplier(fmt) if is_float(fmt) else FixedMultiplier(fmt.width)


def comparator(fmt: RtlFormat) -> Elaboratable:
    """A greater-than comparator of two words (ports ``a``, ``b``, ``gt``)."""
    return FloatComparator(fmt) if is_float(fmt) else FixedComparator(fmt.width)


def product_word(fmt: RtlFormat, product: Value) -> Value:
    """A multiplier's product as a word: fixed point rounds ``F`` bits and fits; floats pass."""
    if is_float(fmt):
        return product
    return fixed.fit(fixed.round_shift(product, fmt.frac, fmt.rounding), fmt)


def sum_word(fmt: RtlFormat, value: Value) -> Value:
    """An adder's sum as a word: fixed point saturates or wraps; floats pass."""
    return value if is_float(fmt) else fixed.fit(value, fmt)


def write_out(fmt: RtlFormat, value: Value, shift: int) -> Value:
    """An accumulator written out: fixed point rounds ``shift`` bits once and fits; floats pass."""
    return value if is_float(fmt) else fixed.write_out(value, shift, fmt)


def product_sum_out(fmt: RtlFormat, value: Value) -> Value:
    """A sum of products written out: fixed point rounds its ``F`` extra fraction bits once."""
    return value if is_float(fmt) else fixed.write_out(value, fmt.frac, fmt)


def negated(fmt: RtlFormat, value: Value) -> Value:
    """``-value`` (floating: the sign bit flipped, so ``a - b`` is exactly ``a + (-b)``)."""
    return negate(value, fmt) if is_float(fmt) else -value


class Accumulator(Elaboratable):
    """An adder and the accumulator register it loads (a submodule, so synthesis can price it).

    ``sum = a + b``; ``load`` stores ``sum`` in ``acc``.  Fixed point: an exact
    integer adder of ``bits``; floating: the format's IEEE adder (``bits`` is
    the format's width).
    """

    def __init__(self, fmt: RtlFormat, bits: int):
        self.fmt, self.bits = fmt, bits
        shape = sum_shape(fmt, bits)
        if is_float(fmt) and bits != fmt.width:
            raise RtlError(f"a {fmt.name} accumulator is {fmt.width} bits wide, not {bits}")
        self.a = Signal(shape)
        self.b = Signal(shape)
        self.sum = Signal(shape)
        self.load = Signal()
        self.acc = Signal(shape)

    def elaborate(self, platform) -> Module:
        m = Module()
        if is_float(self.fmt):
            m.submodules.unit = unit = FloatAdder(self.fmt)
            m.d.comb += [unit.a.eq(self.a), unit.b.eq(self.b), self.sum.eq(unit.sum)]
        else:
            m.d.comb += self.sum.eq(self.a + self.b)
        with m.If(self.load):
            m.d.sync += self.acc.eq(self.sum)
        return m


def add_unit(m: Module, fmt: RtlFormat, name: str, a: Value, b: Value) -> Value:
    """``a + b`` inline (fixed point, exact) or through a named IEEE adder submodule (floating)."""
    if not is_float(fmt):
        return a + b
    unit = FloatAdder(fmt)
    m.submodules[name] = unit
    m.d.comb += [unit.a.eq(a), unit.b.eq(b)]
    return unit.sum
