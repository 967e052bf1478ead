"""IEEE 754 binary floating-point units for the engines' floating formats.

The functional engines (:mod:`h2learn.arch.engines`) compute in ``float16``,
``bfloat16`` or ``float32`` with every multiply and add rounded to the
format, as torch does in that dtype on the CPU.  The units here do the same
arithmetic in hardware, bit for bit: :class:`FloatAdder`,
:class:`FloatMultiplier` and :class:`FloatComparator` are combinational and
use the port names of the fixed-point units (``a``, ``b`` -> ``sum``,
``product``, ``gt``), so a processing element can take either kind.

Semantics are those of IEEE Std 754-2019 (binary encodings, clause 3.4;
rounding, 4.3; addition and multiplication, 5.4.1; comparison, 5.11;
infinities, NaNs and signed zeros, 6.1-6.3; invalid operation, overflow and
underflow, 7.2, 7.4, 7.5):

* round to nearest, ties to even; subnormal inputs and outputs (gradual
  underflow, no flush to zero); overflow rounds to infinity;
* ``inf - inf`` and ``0 * inf`` are invalid and give a quiet NaN, as does any
  NaN operand (the payload is not propagated; one quiet NaN is produced);
* an exact zero sum of operands of opposite signs is ``+0`` and
  ``(-0) + (-0) = -0``; a product's sign is the xor of the operands' signs,
  zero products included;
* ``a > b`` is false when either operand is a NaN, and ``+0 == -0``.

Values cross the ports as unsigned bit patterns; :func:`to_bits` and
:func:`from_bits` convert between torch tensors and those patterns.
The adder is the textbook single-path design (order by magnitude, align
with guard, round and sticky bits, add or subtract, normalize by a
leading-zero count, round); the multiplier forms the exact integer product
of the significands, normalizes it (or shifts it right into the subnormal
range) and rounds once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from amaranth.hdl import Cat, Const, Elaboratable, Module, Mux, Signal, Value, signed

from h2learn.arch.numerics import FLOAT_DTYPES, NumberFormat, as_format
from h2learn.rtl.fixed import RtlError

GUARD_BITS = 3
"""Extra bits below an aligned significand in the adder: guard, round and sticky.

Three suffice for a correctly rounded sum: bits are lost to the sticky bit
only when the alignment distance exceeds 3, and then a difference loses at
most one leading bit, so the sticky bit never rises to the guard position.
"""


@dataclass(frozen=True)
class FloatFormat:
    """An IEEE 754 binary format: sign, ``exp_bits`` biased exponent, ``man_bits`` fraction."""

    exp_bits: int
    man_bits: int  # stored fraction bits, without the implicit bit
    name: str

    @property
    def width(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    @property
    def bias(self) -> int:
        return 2 ** (self.exp_bits - 1) - 1

    @property
    def precision(self) -> int:
        """Significand bits including the implicit one (IEEE's ``p``)."""
        return self.man_bits + 1

    @property
    def exp_all_ones(self) -> int:
        """The biased exponent field of infinities and NaNs."""
        return 2**self.exp_bits - 1

    @property
    def dtype(self) -> torch.dtype:
        return FLOAT_DTYPES[self.name]

    @property
    def text(self) -> str:
        """The format as :func:`h2learn.arch.numerics.parse_format` reads it."""
        return self.name

    def describe(self) -> str:
        return (
            f"{self.name}: 1 sign, {self.exp_bits} exponent (bias {self.bias}), "
            f"{self.man_bits} fraction bits"
        )


FLOAT_RTL_FORMATS: dict[str, FloatFormat] = {
    "float16": FloatFormat(5, 10, "float16"),
    "bfloat16": FloatFormat(8, 7, "bfloat16"),
    "float32": FloatFormat(8, 23, "float32"),
}


def float_rtl_format(fmt: str | NumberFormat | FloatFormat) -> FloatFormat:
    """The floating format the RTL implements; float64 and fixed point are refused."""
    if isinstance(fmt, FloatFormat):
        return fmt
    fmt = as_format(fmt)
    if fmt.is_fixed:
        raise RtlError(f"{fmt} is fixed point; the floating units take float16, bfloat16, float32")
    if fmt.name not in FLOAT_RTL_FORMATS:
        raise RtlError(f"{fmt} has no floating RTL units; use float16, bfloat16 or float32")
    return FLOAT_RTL_FORMATS[fmt.name]


# --------------------------------------------------------------------------
# Datapath helpers (combinational Values)
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Unpacked:
    """The fields of an operand: sign, effective exponent, significand and its class."""

    sign: Value
    exp: Value  # biased exponent, 1 for zeros and subnormals (their true scale)
    sig: Value  # significand with the implicit bit (``precision`` bits)
    is_zero: Value
    is_inf: Value
    is_nan: Value


def unpack(bits: Value, fmt: FloatFormat) -> Unpacked:
    """Split a bit pattern into its fields; the implicit bit is 1 unless the exponent is 0."""
    frac, field = bits[: fmt.man_bits], bits[fmt.man_bits : fmt.width - 1]
    normal, special = field.any(), field.all()
    return Unpacked(
        sign=bits[fmt.width - 1],
        exp=Mux(normal, field, 1),
        sig=Cat(frac, normal),
        is_zero=~normal & ~frac.any(),
        is_inf=special & ~frac.any(),
        is_nan=special & frac.any(),
    )


def word_class(word: int, fmt: FloatFormat) -> str:
    """The class of a bit pattern: ``zero``, ``subnormal``, ``normal``, ``inf`` or ``nan``."""
    exponent = (word >> fmt.man_bits) & fmt.exp_all_ones
    fraction = word & ((1 << fmt.man_bits) - 1)
    if exponent == 0:
        return "subnormal" if fraction else "zero"
    if exponent == fmt.exp_all_ones:
        return "nan" if fraction else "inf"
    return "normal"


def negate(value: Value, fmt: FloatFormat | str) -> Value:
    """``-value``: the bit pattern with its sign bit flipped (``a - b = a + negate(b)``)."""
    width = float_rtl_format(fmt).width
    return Cat(value[: width - 1], ~value[width - 1])


def infinity(sign: Value, fmt: FloatFormat) -> Value:
    """The infinity of the given sign (all-ones exponent, zero fraction)."""
    return Cat(Const(0, fmt.man_bits), Const(fmt.exp_all_ones, fmt.exp_bits), sign)


def quiet_nan(fmt: FloatFormat) -> Value:
    """The NaN every invalid operation returns (quiet bit set, positive)."""
    return Const((fmt.exp_all_ones << fmt.man_bits) | (1 << (fmt.man_bits - 1)), fmt.width)


def leading_zeros(value: Value) -> Value:
    """Leading zero bits of a nonzero ``value`` (any number when it is zero): a log-depth tree."""
    size = 2
    while size < len(value):
        size *= 2
    padded = Cat(Const(0, size - len(value)), value)

    def count(bits: Value) -> tuple[Value, Value]:  # (zeros above the first 1, all zero)
        if len(bits) == 2:
            return ~bits[1], ~bits.any()
        half = len(bits) // 2
        (low, low_zero), (high, high_zero) = count(bits[:half]), count(bits[half:])
        return Cat(Mux(high_zero, low, high), high_zero), high_zero & low_zero

    return count(padded)[0]


def shift_right_sticky(value: Value, amount: Value) -> tuple[Value, Value]:
    """``value >> amount`` and whether any 1 bit was shifted out (the sticky bit)."""
    wide = Cat(Const(0, len(value)), value) >> amount
    return wide[len(value) :], wide[: len(value)].any()


def normalize_left(m: Module, value: Value, room: Value) -> tuple[Value, Value]:
    """Shift ``value`` left until its top bit is 1, by at most ``room``; returns (value, shift).

    ``room`` is how far the exponent may still drop: a result that would need
    more stays subnormal (gradual underflow).  The shift and the shifted value
    are Signals because several stages read them; the simulator then
    evaluates them once per cycle instead of once per use.
    """
    zeros = leading_zeros(value)
    shift, shifted = Signal(len(zeros)), Signal(len(value))
    m.d.comb += shift.eq(Mux(zeros > room, room[: len(zeros)], zeros))
    m.d.comb += shifted.eq(value << shift)
    return shifted, shift


def round_and_pack(
    sign: Value, exp: Value, sig: Value, guard: Value, sticky: Value, fmt: FloatFormat
) -> Value:
    """Round ``sig`` (``precision`` bits, top bit implicit) to nearest-even and pack it.

    ``exp`` is the biased exponent (>= 1; the top bit of ``sig`` is 0 for a
    subnormal).  Packing ``(exp - 1) * 2**man_bits + sig`` gives the right
    exponent field for normal and subnormal results alike, and the rounding
    increment carries into the exponent by itself (up to infinity, whose
    pattern is then forced so that any larger exponent also overflows).
    """
    up = guard & (sticky | sig[0])
    packed = (Cat(Const(0, fmt.man_bits), exp - 1) + sig + up).as_unsigned()
    overflow = packed >= (fmt.exp_all_ones << fmt.man_bits)
    return Mux(overflow, infinity(sign, fmt), Cat(packed[: fmt.width - 1], sign))


# --------------------------------------------------------------------------
# Units
# --------------------------------------------------------------------------


class FloatAdder(Elaboratable):
    """A combinational IEEE adder ``sum = a + b`` (round to nearest even)."""

    def __init__(self, fmt: FloatFormat):
        self.fmt = fmt
        self.a, self.b, self.sum = (Signal(fmt.width, name=n) for n in ("a", "b", "sum"))

    def elaborate(self, platform) -> Module:
        m, fmt = Module(), self.fmt
        p, mag = fmt.precision, fmt.width - 1
        swap = self.b[:mag] > self.a[:mag]  # x is the operand of larger magnitude
        x = unpack(Mux(swap, self.b, self.a), fmt)
        y = unpack(Mux(swap, self.a, self.b), fmt)
        # align y to x's exponent, keeping guard/round bits and a sticky LSB
        distance = x.exp - y.exp  # >= 0 since |x| >= |y|
        limit = p + GUARD_BITS
        distance = Mux(distance > limit, limit, distance[: limit.bit_length()])
        x_sig = Cat(Const(0, GUARD_BITS), x.sig)
        y_shifted, y_sticky = shift_right_sticky(Cat(Const(0, GUARD_BITS), y.sig), distance)
        y_sig = y_shifted | y_sticky
        # add or subtract magnitudes (no borrow: x_sig >= y_sig); one carry bit on top
        total = Signal(p + GUARD_BITS + 1)
        m.d.comb += total.eq(Mux(x.sign ^ y.sign, (x_sig - y_sig)[:limit], x_sig + y_sig))
        # normalize: bring the leading 1 to the carry position; the exponent is then x.exp + 1
        norm, shift = normalize_left(m, total, x.exp)
        exp = x.exp + 1 - shift
        rounded = round_and_pack(
            x.sign, exp, norm[GUARD_BITS + 1 :], norm[GUARD_BITS], norm[:GUARD_BITS].any(), fmt
        )
        zero = Cat(Const(0, mag), x.sign & y.sign)  # exact cancellation gives +0
        invalid = x.is_nan | y.is_nan | (x.is_inf & y.is_inf & (x.sign ^ y.sign))
        with m.If(invalid):
            m.d.comb += self.sum.eq(quiet_nan(fmt))
        with m.Elif(x.is_inf):  # |x| >= |y|: an infinite operand is x
            m.d.comb += self.sum.eq(infinity(x.sign, fmt))
        with m.Elif(total == 0):
            m.d.comb += self.sum.eq(zero)
        with m.Else():
            m.d.comb += self.sum.eq(rounded)
        return m


class FloatMultiplier(Elaboratable):
    """A combinational IEEE multiplier ``product = a * b`` (round to nearest even)."""

    def __init__(self, fmt: FloatFormat):
        self.fmt = fmt
        self.a, self.b, self.product = (Signal(fmt.width, name=n) for n in ("a", "b", "product"))

    def elaborate(self, platform) -> Module:
        m, fmt = Module(), self.fmt
        p = fmt.precision
        a, b = unpack(self.a, fmt), unpack(self.b, fmt)
        sign = a.sign ^ b.sign
        product = Signal(2 * p)
        m.d.comb += product.eq(a.sig * b.sig)
        # biased exponent of the result when the product's top bit (2p - 1) is its leading 1
        top_exp = Signal(signed(fmt.exp_bits + 3))
        m.d.comb += top_exp.eq(a.exp + b.exp - fmt.bias + 1)
        # in range: normalize left (a subnormal operand leaves leading zeros);
        # below it: shift right into the subnormal range, keeping a sticky bit
        left, shift = normalize_left(m, product, (top_exp - 1).as_unsigned()[: fmt.exp_bits + 1])
        distance = (1 - top_exp).as_unsigned()[: fmt.exp_bits + 1]
        distance = Mux(distance > 2 * p, 2 * p, distance[: (2 * p).bit_length()])
        right, right_sticky = shift_right_sticky(product, distance)
        in_range = top_exp > 0
        norm = Mux(in_range, left, right)
        exp = Mux(in_range, top_exp - shift, 1)
        sticky = norm[: p - 1].any() | (~in_range & right_sticky)
        rounded = round_and_pack(sign, exp, norm[p:], norm[p - 1], sticky, fmt)
        invalid = a.is_nan | b.is_nan | (a.is_inf & b.is_zero) | (a.is_zero & b.is_inf)
        with m.If(invalid):
            m.d.comb += self.product.eq(quiet_nan(fmt))
        with m.Elif(a.is_inf | b.is_inf):
            m.d.comb += self.product.eq(infinity(sign, fmt))
        with m.Elif(a.is_zero | b.is_zero):
            m.d.comb += self.product.eq(Cat(Const(0, fmt.width - 1), sign))
        with m.Else():
            m.d.comb += self.product.eq(rounded)
        return m


class FloatComparator(Elaboratable):
    """A combinational IEEE ``gt = a > b``: false with a NaN operand; ``+0 == -0``."""

    def __init__(self, fmt: FloatFormat):
        self.fmt = fmt
        self.a, self.b = Signal(fmt.width, name="a"), Signal(fmt.width, name="b")
        self.gt = Signal()

    @staticmethod
    def order_key(bits: Value) -> Value:
        """An unsigned key ordered as the values: negatives inverted, positives above them."""
        sign = bits[len(bits) - 1]
        return Mux(sign, ~bits, Cat(bits[: len(bits) - 1], 1))

    def elaborate(self, platform) -> Module:
        m, fmt = Module(), self.fmt
        a, b = unpack(self.a, fmt), unpack(self.b, fmt)
        ordered = ~a.is_nan & ~b.is_nan & ~(a.is_zero & b.is_zero)
        m.d.comb += self.gt.eq(ordered & (self.order_key(self.a) > self.order_key(self.b)))
        return m


# --------------------------------------------------------------------------
# Bit patterns <-> tensors
# --------------------------------------------------------------------------

_INT_VIEW = {16: torch.int16, 32: torch.int32}


def _round_to_odd_float32(values: torch.Tensor) -> torch.Tensor:
    """float64 -> float32 rounded to odd (inexact results get an odd last bit).

    A second rounding of this to a format at least two bits narrower is then
    the correctly rounded result; torch's own float64 -> float16/bfloat16
    conversion goes through a round-to-nearest float32 and can round twice.
    """
    narrow = values.to(torch.float32)
    back = narrow.to(torch.float64)
    inexact = (back != values) & ~torch.isnan(values)
    bits = narrow.view(torch.int32)
    step = torch.where(values.abs() > back.abs(), 1, -1).to(torch.int32)  # one ulp toward value
    bits = torch.where(inexact & (bits & 1 == 0), bits + step, bits)
    return bits.view(torch.float32)


def to_bits(values: torch.Tensor | float | Sequence[float], fmt) -> list[int] | int:
    """Bit patterns of ``values`` rounded once, to nearest even, into ``fmt`` (overflow: inf).

    A Python float gives one int, anything else a flat list of ints.  Values
    already in the format's dtype are taken as they are.  float64 values are
    rounded once (through a round-to-odd float32); torch's own float64 ->
    float16/bfloat16 cast rounds to float32 first and can round twice
    (``1 + 2**-11 + 2**-40`` becomes 1.0 there, ``1 + 2**-10`` here).  To get
    an engine's operand exactly, pass it in the format's dtype, as
    :func:`h2learn.arch.numerics.quantize` returns it.
    """
    fmt = float_rtl_format(fmt)
    scalar = isinstance(values, (int, float))
    if not isinstance(values, torch.Tensor):
        values = torch.tensor(values, dtype=torch.float64)  # not torch's float32 default
    tensor = values
    tensor = tensor.detach().cpu().reshape(-1)
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    if tensor.dtype != fmt.dtype:
        if tensor.dtype == torch.float64 and fmt.dtype != torch.float32:
            tensor = _round_to_odd_float32(tensor)
        tensor = tensor.to(fmt.dtype)
    words = (tensor.view(_INT_VIEW[fmt.width]).to(torch.int64) & ((1 << fmt.width) - 1)).tolist()
    return words[0] if scalar else words


def from_bits(words: int | Sequence[int], fmt) -> torch.Tensor:
    """A tensor of ``fmt``'s dtype holding the values of bit patterns (0-d for one int)."""
    fmt = float_rtl_format(fmt)
    flat = [int(words)] if isinstance(words, int) else [int(w) for w in words]
    half = 1 << (fmt.width - 1)
    signed_words = [((w & ((1 << fmt.width) - 1)) ^ half) - half for w in flat]
    tensor = torch.tensor(signed_words, dtype=_INT_VIEW[fmt.width]).view(fmt.dtype)
    return tensor[0] if isinstance(words, int) else tensor
