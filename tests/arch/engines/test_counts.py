"""Exact event counts: closed forms, brute force and the shared LUT formula."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from h2learn.arch.engines import (
    BACKWARD_COUNT_KEYS,
    FORWARD_COUNT_KEYS,
    UPDATE_COUNT_KEYS,
    EngineError,
    backward_engine,
    forward_engine,
    update_engine,
)
from h2learn.arch.engines.backward import connections
from h2learn.arch.engines.lut import lut_counts, table_build_costs
from h2learn.spec import LayerSpec

from .helpers import (
    conv_layer,
    fc_layer,
    randn,
    spikes,
)

# --------------------------------------------------------------------------
# Counts: closed forms and brute force
# --------------------------------------------------------------------------


def test_forward_counts_closed_form_fc() -> None:
    # fan_in 10, k 4: groups of 4, 4, 2; 3 output neurons; T*B = 6 points.
    layer = fc_layer(10, 3)
    result = forward_engine(randn((3, 10), 0), spikes(layer, 2, 3, 0.5, 1), layer, k=4)
    counts = result.counts
    assert set(counts) == set(FORWARD_COUNT_KEYS)
    assert counts["lookups"] == 3 * 3 * 6  # ceil(10/4) * outputs * points
    assert counts["table_build_adds"] == (2 * (16 - 4 - 1) + (4 - 2 - 1)) * 3
    assert counts["table_entries_written"] == (2 * 16 + 4) * 3
    assert counts["accumulations"] == counts["table_reads"] == counts["lookups"]
    assert counts["spike_reads"] == 3 * 6
    assert counts["weight_reads"] == 30
    assert counts["output_writes"] == 18
    assert counts["dense_macs"] == 10 * 3 * 6
    assert counts["multiplies"] == counts["input_reads"] == counts["lookups_skipped"] == 0


def test_forward_counts_closed_form_conv() -> None:
    # C=2, 5x5, 3x3 kernel, stride 1, pad 1 -> 3 x 5 x 5; fan_in 18 -> groups 4,4,4,4,2.
    layer = conv_layer(2, 5, 3)
    inputs = spikes(layer, 2, 1, 0.5, 0)
    counts = forward_engine(randn(layer.weight_shape, 1), inputs, layer, k=4).counts
    points = 2 * 1 * 25
    assert counts["lookups"] == 5 * 3 * points
    assert counts["table_build_adds"] == (4 * 11 + 1) * 3
    assert counts["dense_macs"] == 18 * 3 * points
    counts_k1 = forward_engine(randn(layer.weight_shape, 1), inputs, layer, k=1).counts
    assert counts_k1["table_build_adds"] == 0
    assert counts_k1["lookups"] == counts_k1["dense_macs"]


def test_all_zero_input_makes_every_lookup_a_zero_pattern() -> None:
    layer = conv_layer(3, 4, 2, stride=2)
    zeros = torch.zeros(2, 2, *layer.in_shape)
    plain = forward_engine(randn(layer.weight_shape, 0), zeros, layer, k=4)
    assert plain.counts["zero_pattern_lookups"] == plain.counts["lookups"] > 0
    skipping = forward_engine(
        randn(layer.weight_shape, 0), zeros, layer, k=4, skip_zero_patterns=True
    )
    assert skipping.counts["lookups"] == skipping.counts["accumulations"] == 0
    assert skipping.counts["lookups_skipped"] == plain.counts["lookups"]
    assert (skipping.output == 0).all()


def test_zero_pattern_count_matches_brute_force() -> None:
    layer = conv_layer(3, 5, 2, kernel=3, stride=2, padding=1)
    inputs = spikes(layer, 2, 2, 0.15, seed=7)
    k = 4
    unfolded = F.unfold(inputs.flatten(0, 1), 3, padding=1, stride=2)  # [n, 27, L]
    zero = 0
    for n, position in itertools.product(range(unfolded.shape[0]), range(unfolded.shape[2])):
        for start in range(0, layer.fan_in, k):
            if not unfolded[n, start : start + k, position].any():
                zero += 1
    counts = forward_engine(randn(layer.weight_shape, 0), inputs, layer, k=k).counts
    assert counts["zero_pattern_lookups"] == zero * layer.out_channels


def test_update_counts_closed_form_fc() -> None:
    # 6 points (T=2, B=3) in groups of 4 -> groups of 4 and 2; fan_in 5; 3 outputs.
    layer = fc_layer(5, 3)
    inputs = spikes(layer, 2, 3, 0.5, 0)
    counts = update_engine(randn((2, 3, 3), 1), inputs, layer, k=4).counts
    assert set(counts) == set(UPDATE_COUNT_KEYS)
    assert counts["lookups"] == 2 * 5 * 3
    assert counts["table_build_adds"] == ((16 - 4 - 1) + (4 - 2 - 1)) * 3
    assert counts["table_entries_written"] == (16 + 4) * 3
    assert counts["grad_reads"] == 3 * 6
    assert counts["spike_reads"] == 2 * 5
    assert counts["output_writes"] == 15
    assert counts["dense_macs"] == 6 * 5 * 3
    x = inputs.reshape(6, 5)
    zero = sum(int(not x[start : start + 4, j].any()) for j in range(5) for start in (0, 4))
    assert counts["zero_pattern_lookups"] == zero * 3


LUT_SHARED_KEYS = tuple(key for key in FORWARD_COUNT_KEYS if key != "weight_reads")


@pytest.mark.parametrize(("span", "presented"), [(10, 6), (6, 10), (18, 50), (7, 1)])
@pytest.mark.parametrize("skip", [False, True])
def test_one_lut_formula_serves_both_engines_with_the_axes_swapped(
    span: int, presented: int, skip: bool
) -> None:
    # Forward Engine: tables over a fan-in of `span`, `presented` points; Weight Update
    # Engine: tables over `span` points, presented by a fan-in of `presented`.
    out, k = 3, 4
    zero = presented  # any count up to groups * presented
    fe = lut_counts("forward_engine", fc_layer(span, out), k, presented, zero, skip)
    wue = lut_counts("update_engine", fc_layer(presented, out), k, span, zero, skip)
    assert set(fe) == set(FORWARD_COUNT_KEYS) and set(wue) == set(UPDATE_COUNT_KEYS)
    assert {key: fe[key] for key in LUT_SHARED_KEYS} == {key: wue[key] for key in LUT_SHARED_KEYS}
    assert fe["weight_reads"] == wue["grad_reads"] == span * out
    groups = math.ceil(span / k)
    adds, entries = table_build_costs(span, k)
    assert fe["lookups"] == groups * presented * out - (zero * out if skip else 0)
    assert fe["table_build_adds"] == adds * out and fe["table_entries_written"] == entries * out
    assert fe["spike_reads"] == groups * presented
    assert fe["output_writes"] == out * presented
    assert wue["partial_sum_adds"] == 0


def test_lut_counts_equal_the_engines_own_counts() -> None:
    layer = conv_layer(2, 5, 3, stride=2)
    inputs = spikes(layer, 2, 3, 0.3, seed=5)
    fe = forward_engine(randn(layer.weight_shape, 1), inputs, layer, k=3, skip_zero_patterns=True)
    points = 2 * 3 * layer.out_positions
    zero = fe.counts["zero_pattern_lookups"] // layer.out_channels
    assert fe.counts == lut_counts("forward_engine", layer, 3, points, zero, True)
    grad = randn((2, 3, *layer.out_shape), seed=2)
    wue = update_engine(grad, inputs, layer, k=3, partial_sum_groups=2)
    zero = wue.counts["zero_pattern_lookups"] // layer.out_channels
    assert wue.counts == lut_counts("update_engine", layer, 3, points, zero, False, 2)


def test_lut_counts_reject_other_engines_and_forward_blocks() -> None:
    layer = fc_layer(8, 2)
    with pytest.raises(EngineError, match="forward_engine"):
        lut_counts("backward_engine", layer, 4, 10, 0, False)
    with pytest.raises(EngineError, match="partial-sum"):
        lut_counts("forward_engine", layer, 4, 10, 0, False, block=4)


def test_connections_count_the_taps_reaching_each_lower_position() -> None:
    # 3x3 kernel, stride 1, padding 1 on a 3x3 map: the centre is reached by all
    # 9 taps of every output channel, an edge by 6, a corner by 4.
    layer = conv_layer(1, 3, 2)
    ones = torch.full((1, 1, 3, 3), float(layer.out_channels), dtype=torch.float64)
    links = connections(ones, layer)[0, 0]
    expected = torch.tensor([[4.0, 6.0, 4.0], [6.0, 9.0, 6.0], [4.0, 6.0, 4.0]]) * 2
    assert torch.equal(links, expected.double())
    fc_counts = torch.tensor([5.0, 2.0], dtype=torch.float64).view(2, 1, 1, 1)  # non-zero du
    assert torch.equal(connections(fc_counts, fc_layer(4, 5)), fc_counts)


def _backward_counts_brute_force(
    du: torch.Tensor, mask: torch.Tensor, layer: LayerSpec, input_sp: bool, output_sp: bool
) -> dict[str, int]:
    counts = dict.fromkeys(("done", "dense", "skip_in", "skip_out"), 0)
    steps, batch = du.shape[:2]
    lower = (1, 1) if layer.kind == "fc" else layer.in_shape[1:]
    upper = (1, 1) if layer.kind == "fc" else layer.out_shape[1:]
    kernel = layer.kernel if layer.kind == "conv" else 1
    du4 = du.reshape(steps, batch, layer.out_channels, *upper)
    mask4 = mask.reshape(steps, batch, layer.in_channels, *lower)
    for t, b, c, y, x in itertools.product(
        range(steps), range(batch), range(layer.in_channels), range(lower[0]), range(lower[1])
    ):
        for o, dy, dx in itertools.product(range(layer.out_channels), range(kernel), range(kernel)):
            ny, nx = y + layer.padding - dy, x + layer.padding - dx
            if ny % layer.stride or nx % layer.stride:
                continue
            yo, xo = ny // layer.stride, nx // layer.stride
            if not (0 <= yo < upper[0] and 0 <= xo < upper[1]):
                continue
            counts["dense"] += 1
            if output_sp and not mask4[t, b, c, y, x]:
                counts["skip_out"] += 1
            elif input_sp and du4[t, b, o, yo, xo] == 0:
                counts["skip_in"] += 1
            else:
                counts["done"] += 1
    return counts


@pytest.mark.parametrize(
    "layer", [fc_layer(6, 4), conv_layer(2, 5, 3, stride=2), conv_layer(2, 6, 2, 2, 2, 0)]
)
@pytest.mark.parametrize(("input_sp", "output_sp"), [(True, True), (True, False), (False, True)])
def test_backward_mac_counts_match_brute_force(
    layer: LayerSpec, input_sp: bool, output_sp: bool
) -> None:
    grad = randn((2, 2, *layer.out_shape), seed=1)
    grad[grad.abs() < 0.7] = 0.0
    mask = spikes(layer, 2, 2, 0.5, seed=2).bool()
    counts = backward_engine(
        randn(layer.weight_shape, 3), grad, mask, layer, "float32", input_sp, output_sp
    ).counts
    expected = _backward_counts_brute_force(grad, mask, layer, input_sp, output_sp)
    assert set(counts) == set(BACKWARD_COUNT_KEYS)
    assert counts["macs_done"] == expected["done"] == counts["weight_reads"]
    assert counts["macs_dense"] == expected["dense"]
    assert counts["macs_skipped_input"] == expected["skip_in"]
    assert counts["macs_skipped_output"] == expected["skip_out"]
    assert counts["mask_reads"] == (mask.numel() if output_sp else 0)
    assert counts["output_writes"] == (int(mask.sum()) if output_sp else mask.numel())
    assert counts["grad_reads"] == (int((grad != 0).sum()) if input_sp else grad.numel())


def test_backward_counts_hand_checked_fc() -> None:
    """fc 3 -> 2, one step: du = [1, 0], mask = [1, 0, 1]."""
    layer = fc_layer(3, 2)
    grad = torch.tensor([[[1.0, 0.0]]])
    mask = torch.tensor([[[True, False, True]]])
    counts = backward_engine(torch.ones(2, 3), grad, mask, layer).counts
    # 6 MACs densely; lower neuron 1 is masked (2 skipped for output); neurons 0 and 2
    # each skip the MAC with du[1] = 0 (input) and do the one with du[0].
    assert (counts["macs_dense"], counts["macs_done"]) == (6, 2)
    assert (counts["macs_skipped_output"], counts["macs_skipped_input"]) == (2, 2)
