"""Backward Engine PE: the dual-sparsity multiply-accumulate unit.

The engine computes ``do = W^T (*) du`` (:func:`h2learn.arch.engines.backward_engine`).
One MAC unit computes one lower-layer element ``do[c]`` at a time from the
stream of its ``(weight, du)`` pairs (every output channel and kernel tap
that reaches it):

* **output sparsity**: the element's surrogate-mask bit ``mask`` gates the
  whole unit; with ``mask = 0`` no pair is multiplied (``macs_skipped_output``)
  and nothing is written (the engine's output is 0 there);
* **input sparsity**: a pair with ``du = 0`` is not multiplied
  (``macs_skipped_input``): the multiplier's operands are held, no add;
* otherwise ``acc += weight * du``.  Fixed point: exactly (``2F`` fraction
  bits), and at ``last`` the accumulator is rounded once by ``F`` bits and
  saturated or wrapped (:func:`h2learn.rtl.fixed.write_out`), as the engine
  writes out.  Floating formats: the product and every add are rounded to
  the format (IEEE units of :mod:`h2learn.rtl.floating`), terms in stream
  order, as the engine's sequential MAC adds them; ``du = -0`` counts as zero.

The multiplier and the accumulating adder are submodules so that synthesis
prices them separately (``backward_engine.multiplier`` / ``.adder``).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Elaboratable, Module, Mux, Signal

from h2learn.rtl import datapath as dp
from h2learn.rtl.datapath import Accumulator, RtlFormat
from h2learn.rtl.fixed import clog2
from h2learn.rtl.pe_lut import COUNTER_BITS

MAC_COUNTERS = (
    "macs_done",
    "macs_dense",
    "macs_skipped_input",
    "macs_skipped_output",
    "output_writes",
)


class MacPE(Elaboratable):
    """The Backward Engine's MAC unit with input and output sparsity (module docstring)."""

    def __init__(self, fmt: RtlFormat, max_terms: int, counters: bool = False):
        self.fmt = fmt
        self.acc_bits = dp.accumulator_bits(fmt, 2 * fmt.width + clog2(max_terms) + 1)
        self.with_counters = counters
        self.valid = Signal()
        self.weight = Signal(dp.word_shape(fmt))
        self.grad = Signal(dp.word_shape(fmt))
        self.mask = Signal()
        self.first = Signal()
        self.last = Signal()
        self.out_valid = Signal()
        self.out_written = Signal()
        self.out_data = Signal(dp.word_shape(fmt))
        self.counters = {name: Signal(COUNTER_BITS, name=name) for name in MAC_COUNTERS}
        self.multiplier = dp.multiplier(fmt)
        self.adder = Accumulator(fmt, self.acc_bits)

    def inputs(self) -> list[Signal]:
        return [self.valid, self.weight, self.grad, self.mask, self.first, self.last]

    def outputs(self) -> list[Signal]:
        return [self.out_data, self.out_written]

    def ports(self) -> list[Signal]:
        return [*self.inputs(), self.out_valid, self.out_written, self.out_data]

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.multiplier = multiplier = self.multiplier
        m.submodules.adder = adder = self.adder
        active = self.valid & self.mask
        nonzero = ~dp.is_zero(self.fmt, self.grad)
        mac = active & nonzero
        # operand isolation: a skipped MAC keeps the multiplier's inputs at 0
        m.d.comb += [
            multiplier.a.eq(Mux(mac, self.weight, 0)),
            multiplier.b.eq(Mux(mac, self.grad, 0)),
            adder.a.eq(Mux(self.first, 0, adder.acc)),
            adder.b.eq(Mux(mac, multiplier.product, 0)),
            adder.load.eq(self.valid),
        ]
        finish = self.valid & self.last
        result = dp.product_sum_out(self.fmt, adder.sum)
        m.d.sync += [
            self.out_valid.eq(finish),
            self.out_written.eq(finish & self.mask),
            self.out_data.eq(Mux(self.mask, result, 0)),
        ]
        if self.with_counters:
            events = {
                "macs_done": mac,
                "macs_dense": self.valid,
                "macs_skipped_input": active & ~nonzero,
                "macs_skipped_output": self.valid & ~self.mask,
                "output_writes": finish & self.mask,
            }
            for name, event in events.items():
                counter = self.counters[name]
                m.d.sync += counter.eq(counter + event)
        return m


def backward_commands(
    weights: Sequence[Sequence[int]],
    grads: Sequence[Sequence[int]],
    masks: Sequence[Sequence[int]],
) -> tuple[list[tuple], int]:
    """The MAC stream of ``do = W^T du`` for one fully connected layer.

    ``weights[o][c]`` ``[O][C]``, ``grads[s][o]`` ``[S][O]`` (``S`` steps:
    time x batch), ``masks[s][c]`` bits.  One output per ``(s, c)``, in that
    order; each is the sum over ``o`` of ``weights[o][c] * grads[s][o]``.
    """
    commands: list[tuple] = []
    channels = len(weights[0])
    last_o = len(weights) - 1
    for grad, mask in zip(grads, masks, strict=True):
        for c in range(channels):
            commands += [
                (1, weights[o][c], g, int(mask[c]), int(o == 0), int(o == last_o))
                for o, g in enumerate(grad)
            ]
    return commands, len(grads) * channels
