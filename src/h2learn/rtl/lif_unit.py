"""The element-wise LIF unit: one neuron-step per cycle, with the surrogate window.

Implements :func:`h2learn.arch.engines.lif_forward_unit` (SYSTEM.md section 1)
in fixed point, or in a floating format with IEEE units where every product
and sum is rounded to the format (:mod:`h2learn.rtl.datapath`)::

    decayed = fit(round(alpha * u[t-1], F))          one multiply, rounded, fitted
    u[t]    = fit((o[t-1] ? 0 : decayed) + x[t])     reset select, one add
    o[t]    = u[t] > v_th                             compare
    mask[t] = (u[t] > v_th - a) & (u[t] < v_th + a)  two compares: the surrogate window

``alpha``, ``v_th`` and the window bounds are configuration inputs (the
datapath words of the constants, :func:`lif_constants`), so the multiplier
is a real multiplier in synthesis.  ``first`` starts a neuron (``u[0] = 0``,
``o[0] = 0``); the unit keeps ``u`` and ``o`` of the neuron it is stepping
(in the chip they stream from and to the membrane buffer).  The arithmetic
units are submodules so synthesis prices them as ``elementwise.multiplier``,
``.adder`` and ``.comparator``.
"""

from __future__ import annotations

import torch
from amaranth.hdl import Elaboratable, Module, Mux, Signal

from h2learn.rtl import datapath as dp
from h2learn.rtl.datapath import RtlFormat, stored_words
from h2learn.rtl.pe_lut import COUNTER_BITS

LIF_COUNTERS = ("multiplies", "adds", "selects", "compares")


def lif_constants(fmt: RtlFormat, alpha: float, v_th: float, window: float) -> dict[str, int]:
    """Datapath words of the unit's constants, quantized as the engine quantizes them."""
    values = {"alpha": alpha, "v_th": v_th, "low": v_th - window, "high": v_th + window}
    return {
        name: int(stored_words(torch.tensor(float(v), dtype=torch.float64), fmt))
        for name, v in values.items()
    }


class LifUnit(Elaboratable):
    """One LIF lane (module docstring); ``counters=True`` adds event counters for simulation."""

    def __init__(self, fmt: RtlFormat, counters: bool = False):
        self.fmt = fmt
        self.with_counters = counters
        word = dp.word_shape(fmt)
        self.valid = Signal()
        self.first = Signal()
        self.x = Signal(word)
        self.alpha = Signal(word)
        self.v_th = Signal(word)
        self.low = Signal(word)
        self.high = Signal(word)
        self.out_valid = Signal()
        self.out_u = Signal(word)
        self.out_spike = Signal()
        self.out_mask = Signal()
        self.counters = {name: Signal(COUNTER_BITS, name=name) for name in LIF_COUNTERS}
        self.multiplier = dp.multiplier(fmt)
        self.adder = dp.adder(fmt)
        self.comparators = [dp.comparator(fmt) for _ in range(3)]

    def inputs(self) -> list[Signal]:
        return [self.valid, self.first, self.x, self.alpha, self.v_th, self.low, self.high]

    def outputs(self) -> list[Signal]:
        return [self.out_u, self.out_spike, self.out_mask]

    def ports(self) -> list[Signal]:
        return [*self.inputs(), self.out_valid, *self.outputs()]

    def elaborate(self, platform) -> Module:
        m = Module()
        fmt = self.fmt
        m.submodules.multiplier = multiplier = self.multiplier
        m.submodules.adder = adder = self.adder
        threshold, above_low, below_high = self.comparators
        m.submodules.threshold = threshold
        m.submodules.above_low = above_low
        m.submodules.below_high = below_high
        u_state = Signal(dp.word_shape(fmt))
        fired = Signal()
        u_prev = Mux(self.first, 0, u_state)
        fired_prev = ~self.first & fired
        m.d.comb += [multiplier.a.eq(self.alpha), multiplier.b.eq(u_prev)]
        decayed = dp.product_word(fmt, multiplier.product)
        m.d.comb += [adder.a.eq(Mux(fired_prev, 0, decayed)), adder.b.eq(self.x)]
        u_new = Signal(dp.word_shape(fmt))
        m.d.comb += [
            u_new.eq(dp.sum_word(fmt, adder.sum)),
            threshold.a.eq(u_new),
            threshold.b.eq(self.v_th),
            above_low.a.eq(u_new),
            above_low.b.eq(self.low),
            below_high.a.eq(self.high),
            below_high.b.eq(u_new),
        ]
        with m.If(self.valid):
            m.d.sync += [u_state.eq(u_new), fired.eq(threshold.gt)]
        m.d.sync += [
            self.out_valid.eq(self.valid),
            self.out_u.eq(u_new),
            self.out_spike.eq(threshold.gt),
            self.out_mask.eq(above_low.gt & below_high.gt),
        ]
        if self.with_counters:
            for name, per_step in (("multiplies", 1), ("adds", 1), ("selects", 1), ("compares", 3)):
                counter = self.counters[name]
                m.d.sync += counter.eq(counter + Mux(self.valid, per_step, 0))
        return m


def lif_commands(currents: list[list[int]], constants: dict[str, int]) -> tuple[list[tuple], int]:
    """One command per neuron-step: ``currents[n][t]`` stored integers, neuron after neuron."""
    fixed = (constants["alpha"], constants["v_th"], constants["low"], constants["high"])
    commands = [(1, int(t == 0), x, *fixed) for neuron in currents for t, x in enumerate(neuron)]
    return commands, len(commands)
