"""Forward Engine LUT PE: a :class:`~h2learn.rtl.pe_lut.LutPE` lane and its command stream.

The Forward Engine computes ``W (*) spikes`` (:func:`h2learn.arch.engines.forward_engine`).
One lane serves one output channel at a time: it builds the subset-sum
tables of the channel's weights, one table per group of ``k`` fan-in inputs,
then for every point (time step x sample x output position) looks up each
group's ``k``-bit spike pattern and accumulates, group after group; the
point's sum is rounded/saturated once and written out.  The bank holds the
``tables`` of one channel (``lut_entries_per_lane / 2**k`` in the default
mapping of :class:`~h2learn.arch.config.ForwardEngineConfig`).
"""

from __future__ import annotations

from collections.abc import Sequence

from h2learn.rtl.datapath import RtlFormat
from h2learn.rtl.fixed import clog2
from h2learn.rtl.pe_lut import CMD_BUILD, CMD_LOOKUP, LutPE


def forward_pe(
    k: int, fmt: RtlFormat, tables: int, skip_zero: bool = True, counters: bool = False
) -> LutPE:
    """A Forward Engine lane whose accumulator holds the sum of ``tables`` exact entries."""
    acc_bits = fmt.width + clog2(k) + clog2(tables) + 1
    return LutPE(k, fmt, tables, acc_bits, skip_zero=skip_zero, counters=counters)


def build_commands(operands: Sequence[int], k: int, table_offset: int = 0) -> list[tuple]:
    """``BUILD`` commands of the tables over ``operands`` (groups of ``k``; a short last group).

    Entry ``s`` of table ``g`` presents operand ``j`` when ``s == 2**j`` (the
    value the PE copies and keeps in its operand register), else 0.
    """
    commands = []
    for g, start in enumerate(range(0, len(operands), k)):
        span = operands[start : start + k]
        for s in range(2 ** len(span)):
            single = s != 0 and s & (s - 1) == 0
            operand = span[s.bit_length() - 1] if single else 0
            commands.append((CMD_BUILD, s, table_offset + g, operand, 0, 0))
    return commands


def patterns_of(bits: Sequence[int], k: int) -> list[int]:
    """The ``k``-bit patterns of a bit vector, group by group (bit ``j`` = element ``j``)."""
    return [
        sum(int(b) << j for j, b in enumerate(bits[start : start + k]))
        for start in range(0, len(bits), k)
    ]


def forward_commands(
    weights: Sequence[Sequence[int]], spikes: Sequence[Sequence[int]], k: int
) -> tuple[list[tuple], int]:
    """The lane's command stream for ``W (*) spikes`` of one fully connected layer.

    ``weights[o][j]`` are stored integers ``[O][F]``, ``spikes[p][j]`` bits
    ``[P][F]`` (points in the engine's (t, b) order).  Outputs come out
    channel-major: ``o`` then ``p``.  Returns ``(commands, outputs)``.
    """
    commands: list[tuple] = []
    point_patterns = [patterns_of(row, k) for row in spikes]
    for row in weights:
        commands += build_commands(row, k)
        for patterns in point_patterns:
            last = len(patterns) - 1
            commands += [
                (CMD_LOOKUP, pattern, g, 0, int(g == 0), int(g == last))
                for g, pattern in enumerate(patterns)
            ]
    return commands, len(weights) * len(spikes)
