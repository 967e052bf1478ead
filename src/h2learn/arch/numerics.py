"""Number formats of the H2Learn datapaths and conversion into them.

A :class:`NumberFormat` is either an IEEE-style floating format (``float16``,
``bfloat16``, ``float32``, ``float64``) or a signed fixed-point format
``fixed<I>.<F>``: ``I`` integer bits including the sign and ``F`` fraction
bits, i.e. two's-complement integers scaled by ``2**-F`` with range
``[-2**(I-1), 2**(I-1) - 2**-F]``.  The paper does not state H2Learn's
number formats; every format here is an option [ours].

Accumulator model (used by every engine in :mod:`h2learn.arch.engines`)
-----------------------------------------------------------------------
* Operands (weights, gradients, analog inputs) are quantized to the format
  when they enter an engine.  Spikes are exact 0/1 bits.
* Floating formats: every multiply and add is done in the format's dtype
  (each result rounded to it, round-to-nearest-even).  The LUT engines add in
  a fixed, documented order (bit-exact to a scalar model); the dense paths
  (Backward Engine, encoding-layer fallbacks) use torch's kernels for
  float32/float64, whose accumulators have the dtype but a library-chosen
  order, and add one term at a time in index order for float16/bfloat16
  (torch's CPU kernels would accumulate those in float32).
* Fixed point: products and sums are exact integers; accumulators are wide
  (they never overflow) and a result is rounded (``rounding``) and saturated
  or wrapped (``saturate``) **once**, when it is written out in the format.
  A product of two ``fixed<I>.<F>`` values has ``2F`` fraction bits and is
  rounded back to ``F`` at that write-out.  Table entries of the LUT engines
  are kept at accumulator width.  [ours: the natural wide-accumulator design]
* The model carries the integer accumulators in float64: integers below
  ``2**53`` add exactly there, so this is bit-identical to int64 arithmetic.
  Each engine checks a data-derived bound on its partial sums and raises
  :class:`FormatError` if exactness could be lost (it never is for practical
  formats and layer sizes).

Rounding modes (fixed point): ``nearest`` (ties to even), ``floor`` (toward
minus infinity, i.e. truncation of two's-complement bits), ``stochastic``
(round up with probability equal to the discarded fraction; the random
stream comes from a generator seeded with ``seed`` afresh at every
conversion, so results are reproducible) [ours: the options a designer
would compare].  Floating formats round to nearest-even only.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal

import torch

from h2learn.errors import H2LearnError

Rounding = Literal["nearest", "floor", "stochastic"]
ROUNDING_MODES: tuple[str, ...] = ("nearest", "floor", "stochastic")

FLOAT_DTYPES: dict[str, torch.dtype] = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
}
# Significand precision p (including the implicit bit); unit roundoff is 2**-p.
FLOAT_PRECISION_BITS: dict[str, int] = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}

FIXED_MAX_BITS = 32
"""Widest fixed-point format: products of two operands then fit in 64 bits."""

EXACT_INTEGER_LIMIT = 2.0**53
"""Integers below this magnitude add exactly in float64 (the accumulator carrier)."""

VALID_FORMS = (
    "float16, bfloat16, float32, float64, fixed<I>.<F> (e.g. fixed8.8), "
    "optionally followed by :nearest|:floor|:stochastic, :saturate|:wrap, :seed=<n>"
)

_FIXED_RE = re.compile(r"^fixed(\d+)\.(\d+)$")


class FormatError(H2LearnError, ValueError):
    """A number format is unknown or a value cannot be represented exactly by the model."""


@dataclass(frozen=True)
class NumberFormat:
    """A datapath number format (see the module docstring for the arithmetic model).

    Example::

        >>> fmt = parse_format("fixed8.8:floor")
        >>> fmt.frac_bits, fmt.rounding, str(fmt)
        (8, 'floor', 'fixed8.8:floor')
    """

    kind: Literal["float", "fixed"]
    name: str
    int_bits: int = 0
    frac_bits: int = 0
    rounding: Rounding = "nearest"
    saturate: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.rounding not in ROUNDING_MODES:
            raise FormatError(
                f"rounding {self.rounding!r} is unknown; use one of {', '.join(ROUNDING_MODES)}"
            )
        if self.kind == "float":
            if self.name not in FLOAT_DTYPES:
                raise FormatError(
                    f"unknown floating format {self.name!r}; valid forms: {VALID_FORMS}"
                )
            if self.rounding != "nearest":
                raise FormatError(
                    f"{self.name} rounds to nearest-even only; drop ':{self.rounding}' "
                    "or use a fixed<I>.<F> format"
                )
        elif self.kind == "fixed":
            bits = self.int_bits + self.frac_bits
            if self.int_bits < 1 or self.frac_bits < 0 or bits > FIXED_MAX_BITS:
                raise FormatError(
                    f"fixed{self.int_bits}.{self.frac_bits} is invalid; need I >= 1 (sign bit "
                    f"included), F >= 0 and I + F <= {FIXED_MAX_BITS}"
                )
        else:
            raise FormatError(f"format kind {self.kind!r} is unknown; valid forms: {VALID_FORMS}")

    @property
    def is_fixed(self) -> bool:
        return self.kind == "fixed"

    @property
    def dtype(self) -> torch.dtype:
        """The torch dtype holding values of this format (float64 for fixed point)."""
        return FLOAT_DTYPES[self.name] if self.kind == "float" else torch.float64

    @property
    def total_bits(self) -> int:
        if self.is_fixed:
            return self.int_bits + self.frac_bits
        return torch.finfo(self.dtype).bits

    @property
    def int_min(self) -> int:
        """Smallest stored integer of a fixed-point format."""
        return -(2 ** (self.total_bits - 1))

    @property
    def int_max(self) -> int:
        """Largest stored integer of a fixed-point format."""
        return 2 ** (self.total_bits - 1) - 1

    @property
    def scale(self) -> float:
        """Value of one least-significant bit (``2**-F``; 0 for floating formats)."""
        return 2.0**-self.frac_bits if self.is_fixed else 0.0

    @property
    def max_value(self) -> float:
        if self.is_fixed:
            return self.int_max * self.scale
        return float(torch.finfo(self.dtype).max)

    def __str__(self) -> str:
        if not self.is_fixed:
            return self.name
        text = self.name
        if self.rounding != "nearest":
            text += f":{self.rounding}"
        if not self.saturate:
            text += ":wrap"
        if self.rounding == "stochastic" and self.seed:
            text += f":seed={self.seed}"
        return text


def _bad_format(text: str) -> FormatError:
    return FormatError(f"unknown number format {text!r}; valid forms: {VALID_FORMS}")


def parse_format(
    text: str,
    *,
    rounding: Rounding | None = None,
    saturate: bool | None = None,
    seed: int | None = None,
) -> NumberFormat:
    """Parse ``"float32"``, ``"fixed8.8"``, ``"fixed8.8:stochastic:wrap:seed=3"`` ...

    Keyword arguments override the options written in ``text``.
    """
    if not isinstance(text, str) or not text.strip():
        raise _bad_format(str(text))
    base, *options = text.strip().lower().split(":")
    opts: dict[str, object] = {}
    for option in options:
        if option in ROUNDING_MODES:
            opts["rounding"] = option
        elif option in ("saturate", "wrap"):
            opts["saturate"] = option == "saturate"
        elif option.startswith("seed=") and option[5:].isdigit():
            opts["seed"] = int(option[5:])
        else:
            raise _bad_format(text)
    for key, value in (("rounding", rounding), ("saturate", saturate), ("seed", seed)):
        if value is not None:
            opts[key] = value
    if base in FLOAT_DTYPES:
        return NumberFormat("float", base, **opts)  # type: ignore[arg-type]
    match = _FIXED_RE.match(base)
    if match is None:
        raise _bad_format(text)
    int_bits, frac_bits = int(match.group(1)), int(match.group(2))
    return NumberFormat("fixed", base, int_bits, frac_bits, **opts)  # type: ignore[arg-type]


def as_format(fmt: str | NumberFormat) -> NumberFormat:
    """Accept a format object or its text form."""
    return fmt if isinstance(fmt, NumberFormat) else parse_format(fmt)


# --------------------------------------------------------------------------
# Conversion into a format
# --------------------------------------------------------------------------


def _round_integers(values: torch.Tensor, fmt: NumberFormat) -> torch.Tensor:
    """Round float64 values to integers with the format's rounding mode (result float64)."""
    if fmt.rounding == "nearest":
        return torch.round(values)  # round half to even
    if fmt.rounding == "floor":
        return torch.floor(values)
    generator = torch.Generator(device=values.device).manual_seed(fmt.seed)
    noise = torch.rand(values.shape, generator=generator, dtype=torch.float64, device=values.device)
    return torch.floor(values + noise)


def _fit_integers(values: torch.Tensor, fmt: NumberFormat) -> torch.Tensor:
    """Saturate or wrap integer-valued float64 values into the format's range (int64 out)."""
    if fmt.saturate:
        return values.clamp(fmt.int_min, fmt.int_max).to(torch.int64)
    modulus = 2.0**fmt.total_bits
    low = torch.fmod(values, modulus).to(torch.int64)  # exact: |low| < 2**32
    half = 2 ** (fmt.total_bits - 1)
    return ((low + half) & (2**fmt.total_bits - 1)) - half


def _require_finite(tensor: torch.Tensor, fmt: NumberFormat) -> None:
    if not bool(torch.isfinite(tensor).all()):
        raise FormatError(f"cannot convert NaN or infinite values to {fmt}; check the inputs")


def to_fixed_int(tensor: torch.Tensor, fmt: str | NumberFormat) -> torch.Tensor:
    """The stored two's-complement integers (int64) of ``tensor`` in fixed-point ``fmt``."""
    fmt = as_format(fmt)
    if not fmt.is_fixed:
        raise FormatError(f"to_fixed_int needs a fixed<I>.<F> format, got {fmt}")
    values = tensor.detach().to(torch.float64)
    _require_finite(values, fmt)
    return _fit_integers(_round_integers(values * 2.0**fmt.frac_bits, fmt), fmt)


def from_fixed_int(integers: torch.Tensor, fmt: str | NumberFormat) -> torch.Tensor:
    """The real values (float64) of stored fixed-point integers."""
    fmt = as_format(fmt)
    if not fmt.is_fixed:
        raise FormatError(f"from_fixed_int needs a fixed<I>.<F> format, got {fmt}")
    return integers.to(torch.float64) * fmt.scale


def quantize(tensor: torch.Tensor, fmt: str | NumberFormat) -> torch.Tensor:
    """``tensor`` rounded into ``fmt``: the format's dtype, or float64 for fixed point.

    Floating formats round to nearest-even; with ``saturate`` values beyond the
    largest finite number are clamped to it instead of becoming infinite.
    """
    fmt = as_format(fmt)
    if fmt.is_fixed:
        return from_fixed_int(to_fixed_int(tensor, fmt), fmt)
    values = tensor.detach()
    if fmt.saturate and values.is_floating_point():
        limit = fmt.max_value
        if torch.finfo(values.dtype).max > limit:  # only a wider dtype can overflow the format
            values = values.clamp(-limit, limit)
    return values.to(fmt.dtype)


def saturate_or_wrap(values: torch.Tensor, fmt: NumberFormat) -> torch.Tensor:
    """Saturate or wrap (two's complement) int64 values into the format's range."""
    if fmt.saturate:
        return values.clamp(fmt.int_min, fmt.int_max)
    half = 2 ** (fmt.total_bits - 1)
    return ((values + half) & (2**fmt.total_bits - 1)) - half


def shift_round(values: torch.Tensor, shift: int, fmt: NumberFormat) -> torch.Tensor:
    """Divide int64 ``values`` by ``2**shift`` with the format's rounding mode (int64 out).

    The integer form of dropping ``shift`` fraction bits: ``floor`` is an
    arithmetic shift, ``nearest`` rounds ties to even, ``stochastic`` adds a
    uniform integer in ``[0, 2**shift)`` (seeded generator) before shifting.
    """
    if shift == 0:
        return values
    unit = 2**shift
    if fmt.rounding == "stochastic":
        generator = torch.Generator(device=values.device).manual_seed(fmt.seed)
        noise = torch.randint(0, unit, values.shape, generator=generator, device=values.device)
        return torch.div(values + noise, unit, rounding_mode="floor")
    quotient = torch.div(values, unit, rounding_mode="floor")
    if fmt.rounding == "floor":
        return quotient
    remainder = values - quotient * unit
    half = unit // 2
    round_up = (remainder > half) | ((remainder == half) & (quotient % 2 != 0))
    return quotient + round_up.to(torch.int64)


def round_accumulator(
    accumulator: torch.Tensor, accumulator_frac_bits: int, fmt: NumberFormat
) -> torch.Tensor:
    """Write a wide fixed-point accumulator out in ``fmt``: round once, then saturate or wrap.

    ``accumulator`` holds exact integers (int64, or float64 below ``2**53``)
    scaled by ``2**-accumulator_frac_bits``.  Returns the stored integers
    (int64).  This is the one rounding point of the fixed-point datapaths.
    """
    shift = accumulator_frac_bits - fmt.frac_bits
    if shift < 0:
        raise FormatError(
            f"accumulator has fewer fraction bits ({accumulator_frac_bits}) than {fmt}"
        )
    integers = accumulator if accumulator.dtype == torch.int64 else accumulator.to(torch.int64)
    return saturate_or_wrap(shift_round(integers, shift, fmt), fmt)


def check_exact_accumulation(bound: float, what: str) -> None:
    """Raise unless integer partial sums bounded by ``bound`` stay exact in float64."""
    if not bound < EXACT_INTEGER_LIMIT:
        raise FormatError(
            f"{what}: integer partial sums may reach {bound:.3g} >= 2**53 and would lose "
            "exactness in the model; use fewer fixed-point bits or smaller operands"
        )


# --------------------------------------------------------------------------
# Error measures and expected bounds
# --------------------------------------------------------------------------


def relative_error(approx: torch.Tensor, reference: torch.Tensor) -> float:
    """Normwise relative error ``max|a - b| / max|b|`` (0 if both are all zero)."""
    a = approx.detach().to(torch.float64)
    b = reference.detach().to(torch.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes differ, {tuple(a.shape)} vs {tuple(b.shape)}")
    if a.numel() == 0:
        return 0.0
    diff = float((a - b).abs().max())
    scale = float(b.abs().max())
    if scale == 0.0:
        return 0.0 if diff == 0.0 else math.inf
    return diff / scale


def unit_roundoff(fmt: str | NumberFormat) -> float:
    """``u = 2**-p`` of a floating format (the relative error of one rounding)."""
    fmt = as_format(fmt)
    if fmt.is_fixed:
        raise FormatError(
            f"{fmt} is fixed point; its rounding error is absolute, see rounding_step"
        )
    return 2.0 ** -FLOAT_PRECISION_BITS[fmt.name]


def rounding_step(fmt: str | NumberFormat) -> float:
    """Largest absolute error of one fixed-point rounding (half an LSB for nearest)."""
    fmt = as_format(fmt)
    if not fmt.is_fixed:
        raise FormatError(f"{fmt} is a floating format; its rounding error is relative")
    return fmt.scale / 2 if fmt.rounding == "nearest" else fmt.scale


def expected_error_bound(
    fmt: str | NumberFormat, *, depth: int, abs_sum: torch.Tensor, rounded_operands: torch.Tensor
) -> torch.Tensor:
    """Worst-case absolute error of a computed sum of products in ``fmt`` (no saturation).

    Floating: Higham's ``gamma_depth * sum|terms|`` with ``gamma_n = n u / (1 - n u)``,
    where ``depth`` is the longest chain of roundings any term passes through
    (operand rounding, product, table adds, accumulation adds).
    Fixed: ``step * (rounded_operands + 1)``, where ``rounded_operands`` is the sum,
    over terms, of the magnitudes multiplying each rounded operand (for a sum of
    selected weights, their count) plus one final rounding.  Products' second-order
    terms are assumed negligible.
    """
    fmt = as_format(fmt)
    if fmt.is_fixed:
        return rounding_step(fmt) * (rounded_operands.to(torch.float64) + 1.0)
    u = unit_roundoff(fmt)
    if depth * u >= 1:
        raise FormatError(f"depth {depth} is too large for a meaningful {fmt} bound")
    gamma = depth * u / (1 - depth * u)
    return gamma * abs_sum.to(torch.float64)
