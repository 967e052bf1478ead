"""The LUT mechanism shared by the Forward and the Weight Update Engine.

Both LUT engines build tables of all ``2**k`` subset sums of ``k`` operands
(weights for the Forward Engine, ``du`` for the Weight Update Engine), address
them with ``k``-bit spike patterns and accumulate the looked-up values.  This
module holds that mechanism -- table building (:func:`build_subset_tables`),
its cost (:func:`table_build_costs`), the data-free event counts of one LUT
pass (:func:`lut_counts`), pattern packing (:func:`pack_patterns`) and the
accumulators (:func:`accumulate_lookups`) -- so that neither engine imports
the other.  Hardware behaviour and conventions: ``docs/engines.md``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from h2learn.arch.engines.common import (
    FORWARD_COUNT_KEYS,
    UPDATE_COUNT_KEYS,
    EngineError,
    make_counts,
)
from h2learn.spec import LayerSpec


def build_subset_tables(
    values: torch.Tensor, k: int, out: torch.Tensor | None = None
) -> torch.Tensor:
    """Subset-sum tables of groups of ``k`` values: ``[rows, n] -> [ceil(n/k), 2**k, rows]``.

    Represents the table-build step of a LUT PE: for every group of ``k``
    consecutive entries along the last axis and every row, entry ``s`` holds
    the sum of the values whose bit is set in ``s``, built incrementally (one
    add per entry that is not the empty set or a singleton), each add in the
    dtype of ``values``.  A short last group is zero-padded; its padded bits
    are never set in a pattern.  ``out`` may supply the storage.
    """
    rows, n = values.shape
    groups = math.ceil(n / k)
    padded = F.pad(values, (0, groups * k - n)) if groups * k != n else values
    members = padded.reshape(rows, groups, k).permute(1, 2, 0)  # [groups, k, rows]
    if out is None:
        out = torch.empty(groups, 2**k, rows, dtype=values.dtype, device=values.device)
    out[:, 0] = 0
    for bit in range(k):
        low = 2**bit
        torch.add(out[:, :low], members[:, bit : bit + 1], out=out[:, low : 2 * low])
    return out


def table_build_costs(n: int, k: int) -> tuple[int, int]:
    """``(adds, entries)`` to build the tables of one row over ``n`` values in groups of ``k``.

    A full group costs ``2**k - k - 1`` adds and ``2**k`` entries; a short last
    group of ``k'`` values ``2**k' - k' - 1`` and ``2**k'``.
    """
    full, rest = divmod(n, k)
    adds = full * (2**k - k - 1)
    entries = full * 2**k
    if rest:
        adds += 2**rest - rest - 1
        entries += 2**rest
    return adds, entries


def lut_counts(
    engine: str,
    layer: LayerSpec,
    k: int,
    points: int,
    zero_patterns: int,
    skip_zero_patterns: bool,
    block: int | None = None,
) -> dict[str, int]:
    """Exact event counts of one LUT pass of the Forward or the Weight Update Engine.

    Both engines run the same mechanism with the two operands swapped;
    ``engine`` (``"forward_engine"`` or ``"update_engine"``) picks the
    orientation.  With ``O`` output channels, fan-in ``F`` and ``P`` points
    (time steps x samples x output positions):

    * tables are built over the *span*: the fan-in ``F`` (Forward Engine,
      weights) or the ``P`` points (Weight Update Engine, ``du``);
    * the patterns *presented* to each table are one per point (``P``,
      Forward Engine) or one per presynaptic input (``F``, Weight Update Engine);
    * the table operands are read once: ``weight_reads = F*O`` or ``grad_reads = P*O``;
    * one output word per output channel and presented pattern: the outputs
      (Forward Engine) or the ``dW`` words (Weight Update Engine).

    Per output channel, ``ceil(span / k)`` tables are built (costs from
    :func:`table_build_costs`) and every presented pattern is looked up in each
    of them.  ``zero_patterns`` is the number of (presented pattern, group)
    pairs with no spike; each is looked up by every output channel's PE, or
    skipped with ``skip_zero_patterns`` (same result, fewer lookups).
    ``block`` (Weight Update Engine only) is the number of point groups a PE
    sums before merging its partial ``dW`` into the buffer
    (``partial_sum_adds``); ``None`` is one sequential accumulation.

    Conventions [ours]: tables are built once per call (one weight or
    gradient version), reading each table operand once; an accumulator starts
    at zero and every performed lookup is one add (``accumulations ==
    lookups``); a k-bit pattern is read once per group and broadcast to all
    output channels (``spike_reads``); each output word is written once per call.

    Public because :mod:`h2learn.arch.activity` feeds the same formula with
    pattern counts taken from a trace or from densities, so the cost model and
    the engines count alike (``tests/arch/test_formula_parity.py`` checks both
    against a brute-force count).
    """
    fan_in, out_channels = layer.fan_in, layer.out_channels
    if engine == "forward_engine":
        span, presented, keys, operand = fan_in, points, FORWARD_COUNT_KEYS, "weight_reads"
    elif engine == "update_engine":
        span, presented, keys, operand = points, fan_in, UPDATE_COUNT_KEYS, "grad_reads"
    else:
        raise EngineError(
            f"lut_counts: engine={engine!r} has no LUT; use 'forward_engine' or 'update_engine'"
        )
    groups = math.ceil(span / k)
    adds, entries = table_build_costs(span, k)
    extra: dict[str, int] = {}
    if block is not None:
        if engine != "update_engine":
            raise EngineError(f"{engine}: no partial-sum blocks (block={block}); pass None")
        extra["partial_sum_adds"] = math.ceil(groups / block) * presented * out_channels
    all_lookups = groups * presented * out_channels
    zero_lookups = zero_patterns * out_channels
    skipped = zero_lookups if skip_zero_patterns else 0
    performed = all_lookups - skipped
    return make_counts(
        engine,
        keys,
        table_build_adds=adds * out_channels,
        table_entries_written=entries * out_channels,
        lookups=performed,
        zero_pattern_lookups=zero_lookups,
        lookups_skipped=skipped,
        accumulations=performed,
        table_reads=performed,
        spike_reads=groups * presented,
        output_writes=out_channels * presented,
        dense_macs=span * presented * out_channels,
        **{operand: span * out_channels},
        **extra,
    )


def pack_patterns(bits: torch.Tensor, k: int) -> torch.Tensor:
    """Pack groups of ``k`` bits along the last axis into integers: ``[a, m] -> [a, ceil(m/k)]``.

    Bit ``j`` of a pattern is element ``j`` of its group; a short last group is
    zero-padded.  Represents the spike-pattern register that addresses a LUT.
    Returns int32 (patterns have at most 28 bits, see ``MAX_TABLE_ENTRIES``).
    """
    a, m = bits.shape
    groups = math.ceil(m / k)
    work = torch.float32 if k <= 24 else torch.float64  # exact integer sums
    values = bits.to(work)
    if groups * k != m:
        values = F.pad(values, (0, groups * k - m))
    weights = 2.0 ** torch.arange(k, dtype=work, device=bits.device)
    return (values.view(a, groups, k) @ weights).to(torch.int32)


def accumulate_lookups(
    rows: torch.Tensor, table: torch.Tensor, sequential_loop: bool = False
) -> torch.Tensor:
    """``out[p] = sum_g table[rows[p, g]]``, added in order ``g = 0, 1, ...`` in the table's dtype.

    Represents the accumulators of the LUT PEs (one per output channel, all
    fed by the same address).  ``embedding_bag(mode="sum")`` adds a bag's rows
    sequentially from zero in the table dtype for float32/float64; 16-bit
    floats take an explicit loop over groups (torch would accumulate wider).
    """
    if sequential_loop or table.dtype in (torch.float16, torch.bfloat16):
        out = torch.zeros(rows.shape[0], table.shape[1], dtype=table.dtype, device=table.device)
        for g in range(rows.shape[1]):
            out += table.index_select(0, rows[:, g])
        return out
    return F.embedding_bag(rows, table, mode="sum")
