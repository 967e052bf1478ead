"""Weight Update Engine LUT PE: the :class:`~h2learn.rtl.pe_lut.LutPE` lane with partial-sum merge.

The engine computes ``dW[i, j] = sum_p du[i, p] * x[j, p]``
(:func:`h2learn.arch.engines.update_engine`).  A lane serves output neuron
``i``: it builds one table of subset sums of ``du[i, p1..pk]`` per group of
``k`` consecutive points, then every presynaptic input ``j`` presents its
``k``-bit spike pattern over each group's points; the looked-up values are
summed over a block of ``block`` point groups (the engine's
``partial_sum_groups``) and each block's sum is merged into ``dW[i, j]``
(one ``partial_sum_adds`` event per block).  Fixed point is exact, so block
boundaries change counts, not results.
"""

from __future__ import annotations

from collections.abc import Sequence

from h2learn.rtl.datapath import RtlFormat
from h2learn.rtl.fixed import clog2
from h2learn.rtl.pe_forward import build_commands, patterns_of
from h2learn.rtl.pe_lut import CMD_LOOKUP, LutPE


def update_pe(
    k: int,
    fmt: RtlFormat,
    tables: int,
    block: int,
    max_points: int,
    skip_zero: bool = True,
    counters: bool = False,
) -> LutPE:
    """A Weight Update Engine lane: block sums in ``acc``, ``dW`` partial sums in ``psum``."""
    acc_bits = fmt.width + clog2(k) + clog2(block) + 1
    psum_bits = max(acc_bits, fmt.width + clog2(max_points) + 1)
    return LutPE(
        k,
        fmt,
        tables,
        acc_bits,
        skip_zero=skip_zero,
        merge=True,
        psum_bits=psum_bits,
        counters=counters,
    )


def update_commands(
    grads: Sequence[Sequence[int]], spikes: Sequence[Sequence[int]], k: int, block: int
) -> tuple[list[tuple], int]:
    """The lane's command stream for ``dW = du (x) spikes`` of one fully connected layer.

    ``grads[i][p]`` are stored integers ``[O][P]``, ``spikes[j][p]`` bits
    ``[F][P]`` (points in the engine's (t, b) order).  Outputs come out as
    ``dW`` row-major (``i`` then ``j``).  Returns ``(commands, outputs)``.
    """
    commands: list[tuple] = []
    input_patterns = [patterns_of(row, k) for row in spikes]
    for row in grads:
        commands += [(*c, 0, 0) for c in build_commands(row, k)]
        for patterns in input_patterns:
            final = len(patterns) - 1
            for g, pattern in enumerate(patterns):
                first = g % block == 0
                last = g % block == block - 1 or g == final
                commands.append(
                    (
                        CMD_LOOKUP,
                        pattern,
                        g,
                        0,
                        int(first),
                        int(last),
                        int(g < block),
                        int(g == final),
                    )
                )
    return commands, len(grads) * len(spikes)
