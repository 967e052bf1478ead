"""Number formats: parsing, rounding modes, saturation/wrap, the accumulator write-out, errors."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h2learn.arch.numerics import (
    FormatError,
    NumberFormat,
    expected_error_bound,
    from_fixed_int,
    parse_format,
    quantize,
    relative_error,
    round_accumulator,
    rounding_step,
    to_fixed_int,
    unit_roundoff,
)

# --------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "dtype"),
    [
        ("float16", torch.float16),
        ("bfloat16", torch.bfloat16),
        ("float32", torch.float32),
        ("float64", torch.float64),
        ("fixed8.8", torch.float64),
    ],
)
def test_parse_known_formats(text: str, dtype: torch.dtype) -> None:
    fmt = parse_format(text)
    assert fmt.dtype == dtype
    assert str(fmt) == text
    assert parse_format(str(fmt)) == fmt


def test_parse_fixed_point_fields_and_options() -> None:
    fmt = parse_format("fixed8.8")
    assert (fmt.int_bits, fmt.frac_bits, fmt.total_bits) == (8, 8, 16)
    assert (fmt.int_min, fmt.int_max) == (-32768, 32767)
    assert fmt.max_value == pytest.approx(128 - 2**-8)
    assert fmt.rounding == "nearest" and fmt.saturate
    options = parse_format("fixed4.12:stochastic:wrap:seed=7")
    assert (options.rounding, options.saturate, options.seed) == ("stochastic", False, 7)
    assert parse_format(str(options)) == options
    assert parse_format("fixed8.8", rounding="floor", saturate=False) == NumberFormat(
        "fixed", "fixed8.8", 8, 8, "floor", False
    )


@pytest.mark.parametrize(
    "text",
    ["float31", "int8", "fixed8", "fixed0.4", "fixed20.20", "fixed8.8:ceil", "float16:floor", ""],
)
def test_bad_format_strings_raise_one_line_value_error(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_format(text)
    message = str(info.value)
    assert "\n" not in message
    assert isinstance(info.value, FormatError)


def test_unknown_format_message_names_text_and_valid_forms() -> None:
    with pytest.raises(ValueError, match=r"'int8'.*float16, bfloat16, float32, float64, fixed"):
        parse_format("int8")


# --------------------------------------------------------------------------
# Floating conversion
# --------------------------------------------------------------------------


def test_float_quantize_matches_torch_casts() -> None:
    x = torch.randn(1000, dtype=torch.float64)
    assert torch.equal(quantize(x, "float16"), x.half())
    assert torch.equal(quantize(x, "bfloat16"), x.bfloat16())
    assert torch.equal(quantize(x, "float32"), x.float())


def test_float_saturation_clamps_instead_of_overflowing() -> None:
    big = torch.tensor([1e6, -1e6], dtype=torch.float64)
    assert quantize(big, "float16").tolist() == [65504.0, -65504.0]
    wrapped = quantize(big, parse_format("float16", saturate=False))
    assert torch.isinf(wrapped).all()


# --------------------------------------------------------------------------
# Fixed-point conversion
# --------------------------------------------------------------------------


def test_nearest_rounding_ties_to_even() -> None:
    fmt = parse_format("fixed8.0")
    x = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49, 0.51])
    assert to_fixed_int(x, fmt).tolist() == [0, 2, 2, 0, -2, -2, 0, 1]


def test_floor_rounding_goes_toward_minus_infinity() -> None:
    fmt = parse_format("fixed8.2:floor")
    x = torch.tensor([0.3, -0.3, 1.99, -1.99])
    assert to_fixed_int(x, fmt).tolist() == [1, -2, 7, -8]


def test_stochastic_rounding_is_seeded_and_unbiased() -> None:
    fmt = parse_format("fixed8.0:stochastic:seed=3")
    x = torch.full((200_000,), 0.3, dtype=torch.float64)
    first, second = to_fixed_int(x, fmt), to_fixed_int(x, fmt)
    assert torch.equal(first, second)
    assert set(first.unique().tolist()) == {0, 1}
    # Mean of Bernoulli(0.3) over 2e5 draws: standard error ~1e-3.
    assert abs(first.double().mean().item() - 0.3) < 5e-3
    other = to_fixed_int(x, parse_format("fixed8.0:stochastic:seed=4"))
    assert not torch.equal(first, other)


def test_saturation_clamps_to_range() -> None:
    fmt = parse_format("fixed4.4")
    x = torch.tensor([100.0, -100.0, 7.9375, -8.0])
    assert to_fixed_int(x, fmt).tolist() == [127, -128, 127, -128]


def test_wrap_matches_twos_complement_int8() -> None:
    fmt = parse_format("fixed8.0:wrap")
    values = np.array([127, 128, 255, 256, -129, -128, 1000, -1000])
    expected = values.astype(np.int64).astype(np.int8).astype(np.int64).tolist()
    assert to_fixed_int(torch.tensor(values, dtype=torch.float64), fmt).tolist() == expected


def test_nan_cannot_become_fixed_point() -> None:
    with pytest.raises(ValueError, match="NaN"):
        to_fixed_int(torch.tensor([float("nan")]), "fixed8.8")


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-100, 100, allow_nan=False), min_size=1, max_size=50),
    st.integers(2, 16),
    st.integers(0, 12),
    st.sampled_from(["nearest", "floor"]),
)
def test_fixed_quantize_error_and_idempotence(
    values: list[float], int_bits: int, frac_bits: int, rounding: str
) -> None:
    fmt = parse_format(f"fixed{int_bits}.{frac_bits}", rounding=rounding)  # type: ignore[arg-type]
    x = torch.tensor(values, dtype=torch.float64)
    q = quantize(x, fmt)
    assert torch.equal(quantize(q, fmt), q)
    assert torch.equal(from_fixed_int(to_fixed_int(q, fmt), fmt), q)
    inside = (x >= -(2.0 ** (int_bits - 1))) & (x <= fmt.max_value)
    assert ((q - x)[inside].abs() <= rounding_step(fmt)).all()
    assert (q <= fmt.max_value).all() and (q >= -(2.0 ** (int_bits - 1))).all()


def _reference_write_out(acc: int, shift: int, fmt: NumberFormat) -> int:
    """Python-integer reference: round ``acc / 2**shift`` then saturate or wrap."""
    if fmt.rounding == "floor":
        value = acc >> shift
    else:
        value = round(Fraction(acc, 2**shift))  # Python rounds half to even
    bits = fmt.total_bits
    if fmt.saturate:
        return max(fmt.int_min, min(fmt.int_max, value))
    return (value + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(-(2**40), 2**40), min_size=1, max_size=40),
    st.integers(0, 16),
    st.sampled_from(["fixed8.8", "fixed4.4", "fixed16.8", "fixed2.14"]),
    st.sampled_from(["nearest", "floor"]),
    st.booleans(),
)
def test_round_accumulator_matches_integer_reference(
    accs: list[int], shift: int, base: str, rounding: str, saturate: bool
) -> None:
    fmt = parse_format(base, rounding=rounding, saturate=saturate)  # type: ignore[arg-type]
    got = round_accumulator(torch.tensor(accs, dtype=torch.int64), fmt.frac_bits + shift, fmt)
    assert got.tolist() == [_reference_write_out(a, shift, fmt) for a in accs]
    as_float = round_accumulator(
        torch.tensor(accs, dtype=torch.float64), fmt.frac_bits + shift, fmt
    )
    assert torch.equal(as_float, got)


def test_stochastic_write_out_stays_between_neighbours() -> None:
    fmt = parse_format("fixed8.4:stochastic:seed=1")
    acc = torch.arange(-1000, 1000, dtype=torch.int64)
    got = round_accumulator(acc, 8, fmt)
    floor = torch.div(acc, 16, rounding_mode="floor")
    assert ((got == floor) | (got == floor + 1)).all()
    assert torch.equal(got[acc % 16 == 0], floor[acc % 16 == 0])


# --------------------------------------------------------------------------
# Error measures
# --------------------------------------------------------------------------


def test_relative_error() -> None:
    b = torch.tensor([1.0, -4.0, 2.0])
    a = torch.tensor([1.5, -4.0, 2.0])
    assert relative_error(a, b) == pytest.approx(0.125)
    assert relative_error(torch.zeros(3), torch.zeros(3)) == 0.0
    assert relative_error(torch.ones(3), torch.zeros(3)) == float("inf")
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(torch.zeros(2), torch.zeros(3))


def test_unit_roundoff_and_bounds() -> None:
    assert unit_roundoff("float16") == 2.0**-11
    assert unit_roundoff("bfloat16") == 2.0**-8
    assert rounding_step("fixed8.8") == 2.0**-9
    assert rounding_step("fixed8.8:floor") == 2.0**-8
    with pytest.raises(ValueError):
        unit_roundoff("fixed8.8")
    bound = expected_error_bound(
        "float32", depth=10, abs_sum=torch.tensor([2.0]), rounded_operands=torch.tensor([0.0])
    )
    assert bound.item() == pytest.approx(20 * 2.0**-24, rel=1e-5)
    fixed = expected_error_bound(
        "fixed8.8", depth=1, abs_sum=torch.tensor([0.0]), rounded_operands=torch.tensor([3.0])
    )
    assert fixed.item() == 4 * 2.0**-9


def test_half_precision_sum_error_within_bound() -> None:
    """A sequential float16 sum of n float16-rounded terms stays within gamma_(n+1) * sum|x|."""
    torch.manual_seed(0)
    x = torch.randn(500, dtype=torch.float64)
    acc = torch.zeros((), dtype=torch.float16)
    for value in quantize(x, "float16"):
        acc = acc + value
    bound = expected_error_bound(
        "float16", depth=501, abs_sum=x.abs().sum(), rounded_operands=torch.tensor(0.0)
    )
    assert abs(acc.double() - x.sum()) <= bound
