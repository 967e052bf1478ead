"""Every RTL PE against the functional engines: outputs bit for bit and event counts equal.

Each configuration runs at least 10,000 random cases (output words) through
Amaranth's simulator in one stream; the engine's summed counts over the same
problems must equal the PE's hardware event counters.
"""

from __future__ import annotations

import pytest

from h2learn.rtl.datapath import is_float, rtl_format
from h2learn.rtl.fixed import RtlError
from h2learn.rtl.lif_backward import LifBackwardUnit
from h2learn.rtl.lif_unit import LifUnit
from h2learn.rtl.pe_backward import MacPE
from h2learn.rtl.pe_forward import forward_pe
from h2learn.rtl.pe_update import update_pe
from h2learn.rtl.simulate import run_stream

from .problems import (
    CASES,
    backward_batch,
    canonical,
    conv_backward_batch,
    float_classes,
    forward_batch,
    lif_backward_batch,
    lif_batch,
    update_batch,
)


def _run(pe, batch):
    result = run_stream(
        pe,
        pe.inputs(),
        pe.outputs(),
        pe.out_valid,
        batch.commands,
        len(batch.expected),
        pe.counters,
    )
    assert len(batch.expected) >= CASES

    def word(row: tuple) -> tuple:  # the data word first, NaN payloads as one
        return (canonical(row[0], pe.fmt), *row[1:])

    mismatches = [
        i
        for i, (a, b) in enumerate(zip(result.outputs, batch.expected, strict=True))
        if word(a) != word(b)
    ]
    assert not mismatches, f"{len(mismatches)} mismatches, first at {mismatches[0]}"
    return result


LUT_KEYS = (
    "table_build_adds",
    "table_entries_written",
    "lookups",
    "zero_pattern_lookups",
    "lookups_skipped",
    "accumulations",
    "output_writes",
)
MAC_KEYS = (
    "macs_done",
    "macs_dense",
    "macs_skipped_input",
    "macs_skipped_output",
    "output_writes",
)


def _assert_counts_equal(result, batch, keys: tuple[str, ...]) -> None:
    """The PE's hardware counters equal the engine's summed counts, key by key."""
    for key in keys:
        assert result.counters[key] == batch.counts[key], key


def _saturated(batch, fmt_text: str) -> int:
    fmt = rtl_format(fmt_text)
    return sum(row[0] in (fmt.int_min, fmt.int_max) for row in batch.expected)


def _check_extremes(batch, fmt_text: str) -> None:
    """The cases reached the format's edges: saturation (fixed) or subnormal results (float)."""
    fmt = rtl_format(fmt_text)
    if is_float(fmt):
        classes = float_classes([row[0] for row in batch.expected], fmt)
        assert classes["subnormal"] > 0 and classes["zero"] > 0, classes
    elif fmt.saturate:
        assert _saturated(batch, fmt_text) > 0


@pytest.mark.parametrize(
    ("k", "fmt", "skip"),
    [
        (4, "fixed8.8", True),
        (2, "fixed12.4:wrap", False),
        (6, "fixed16.16", True),
        (4, "float16", True),
        (3, "bfloat16", False),
        (4, "float32", True),
    ],
)
def test_forward_lut_pe_matches_engine(k: int, fmt: str, skip: bool) -> None:
    tables = 3
    batch = forward_batch(k, fmt, tables, skip, seed=k)
    result = _run(forward_pe(k, rtl_format(fmt), tables, skip, counters=True), batch)
    c, e = result.counters, batch.counts
    _assert_counts_equal(result, batch, LUT_KEYS)
    assert c["operand_reads"] == e["weight_reads"]
    assert e["zero_pattern_lookups"] > 0 and e["table_build_adds"] > 0
    _check_extremes(batch, fmt)


@pytest.mark.parametrize(
    ("k", "fmt", "block", "skip"),
    [
        (4, "fixed8.8", 2, True),
        (3, "fixed16.16:wrap", 1, False),
        (4, "float16", 2, True),
        (3, "float32", 1, False),
    ],
)
def test_update_lut_pe_matches_engine(k: int, fmt: str, block: int, skip: bool) -> None:
    tables = -(-16 // k)
    batch = update_batch(k, fmt, tables, block, skip, seed=10 + k)
    pe = update_pe(k, rtl_format(fmt), tables, block, max_points=16, skip_zero=skip, counters=True)
    result = _run(pe, batch)
    c, e = result.counters, batch.counts
    _assert_counts_equal(result, batch, (*LUT_KEYS, "partial_sum_adds"))
    assert c["operand_reads"] == e["grad_reads"]


@pytest.mark.parametrize(
    ("fmt", "reference"),
    [
        ("fixed8.8", "engine"),
        ("fixed16.16:floor:wrap", "engine"),
        ("float16", "engine"),
        ("bfloat16", "engine"),
        ("float32", "sequential"),  # the engine's float32 path sums in torch's order
    ],
)
def test_backward_mac_pe_matches_engine(fmt: str, reference: str) -> None:
    batch = backward_batch(fmt, max_terms=6, seed=20, reference=reference)
    result = _run(MacPE(rtl_format(fmt), max_terms=6, counters=True), batch)
    e = batch.counts
    _assert_counts_equal(result, batch, MAC_KEYS)
    assert e["macs_skipped_input"] > 0 and e["macs_skipped_output"] > 0


def test_backward_mac_pe_matches_engine_on_conv_geometry() -> None:
    """Conv layers (3x3, stride 1/2, padding 1): pairs enumerated by brute force per element.

    A geometry check beside the 10,000-case fc runs of the same PE: the
    engine's connection-count MAC and skip counts equal the PE's per-element gating.
    """
    batch = conv_backward_batch("fixed8.8", seed=22, cases=1500)
    pe = MacPE(rtl_format("fixed8.8"), max_terms=18, counters=True)
    result = run_stream(
        pe,
        pe.inputs(),
        pe.outputs(),
        pe.out_valid,
        batch.commands,
        len(batch.expected),
        pe.counters,
    )
    assert result.outputs == batch.expected
    _assert_counts_equal(result, batch, MAC_KEYS)


@pytest.mark.parametrize("fmt", ["fixed8.8", "fixed16.16:floor", "float16", "float32"])
def test_lif_unit_matches_engine(fmt: str) -> None:
    batch = lif_batch(fmt, seed=30)
    result = _run(LifUnit(rtl_format(fmt), counters=True), batch)
    _assert_counts_equal(result, batch, ("multiplies", "adds", "selects", "compares"))
    assert any(row[1] for row in batch.expected) and any(row[2] for row in batch.expected)


@pytest.mark.parametrize(
    ("fmt", "height", "reset"),
    [
        ("fixed8.8", 1.0, True),
        ("fixed16.16:floor:wrap", 1.5, False),
        ("float16", 1.0, True),
        ("bfloat16", 1.5, True),
        ("float32", 1.5, False),
    ],
)
def test_lif_backward_unit_matches_engine(fmt: str, height: float, reset: bool) -> None:
    batch = lif_backward_batch(fmt, height, reset, seed=40)
    unit = LifBackwardUnit(rtl_format(fmt), height == 1.0, reset, counters=True)
    result = _run(unit, batch)
    _assert_counts_equal(result, batch, ("multiplies", "adds", "selects"))
    if not is_float(rtl_format(fmt)) and not fmt.endswith("wrap"):
        assert _saturated(batch, fmt) > 0


def test_comparison_detects_a_rounding_difference() -> None:
    """The check is sensitive: an RTL rounding by floor disagrees with a nearest-even engine."""
    pe = MacPE(rtl_format("fixed8.8:floor"), max_terms=6)
    reference = backward_batch("fixed8.8", max_terms=6, seed=21, cases=1000)
    outputs = run_stream(
        pe,
        pe.inputs(),
        pe.outputs(),
        pe.out_valid,
        reference.commands,
        len(reference.expected),
    ).outputs
    differing = sum(a != b for a, b in zip(outputs, reference.expected, strict=True))
    assert differing > 100


def test_float_comparison_detects_a_wider_accumulator() -> None:
    """The float check is sensitive: a float32 accumulator rounded once to float16 at the end
    disagrees with the RTL's float16 MAC, which rounds every product and add."""
    pe = MacPE(rtl_format("float16"), max_terms=6)
    wide = backward_batch("float16", max_terms=6, seed=23, cases=2000, reference="wide")
    outputs = run_stream(
        pe, pe.inputs(), pe.outputs(), pe.out_valid, wide.commands, len(wide.expected)
    ).outputs
    differing = sum(a != b for a, b in zip(outputs, wide.expected, strict=True))
    assert differing > 100


def test_float64_and_stochastic_formats_are_refused() -> None:
    with pytest.raises(RtlError, match="float16, bfloat16 or float32"):
        rtl_format("float64")
    with pytest.raises(RtlError, match="stochastic"):
        rtl_format("fixed8.8:stochastic")
