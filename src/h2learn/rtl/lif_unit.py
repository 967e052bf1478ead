"""The element-wise LIF unit: one neuron-step per cycle, with the surrogate window.

Implements :func:`h2learn.arch.engines.lif_forward_unit` in fixed point
(SYSTEM.md section 1)::

    decayed = fit(round(alpha * u[t-1], F))          one multiply, rounded, fitted
    u[t]    = fit((o[t-1] ? 0 : decayed) + x[t])     reset select, one add
    o[t]    = u[t] > v_th                             compare
    mask[t] = (u[t] > v_th - a) & (u[t] < v_th + a)  two compares: the surrogate window

``alpha``, ``v_th`` and the window bounds are configuration inputs (the
stored integers of the constants, :func:`lif_constants`), so the multiplier
is a real multiplier in synthesis.  ``first`` starts a neuron (``u[0] = 0``,
``o[0] = 0``); the unit keeps ``u`` and ``o`` of the neuron it is stepping
(in the chip they stream from and to the membrane buffer).  The arithmetic
units are submodules so synthesis prices them as ``elementwise.multiplier``,
``.adder`` and ``.comparator``.
"""

from __future__ import annotations

import torch
from amaranth.hdl import Elaboratable, Module, Mux, Signal, signed

from h2learn.arch.numerics import to_fixed_int
from h2learn.rtl.fixed import FixedFormat, fit, round_shift
from h2learn.rtl.pe_backward import Multiplier
from h2learn.rtl.pe_lut import COUNTER_BITS

LIF_COUNTERS = ("multiplies", "adds", "selects", "compares")


class Adder(Elaboratable):
    """A combinational signed adder ``sum = a + b`` (one bit wider than its operands)."""

    def __init__(self, width: int):
        self.a = Signal(signed(width))
        self.b = Signal(signed(width))
        self.sum = Signal(signed(width + 1))

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.sum.eq(self.a + self.b)
        return m


class Comparator(Elaboratable):
    """A signed greater-than ``gt = a > b`` (a subtractor's sign in hardware)."""

    def __init__(self, width: int):
        self.a = Signal(signed(width))
        self.b = Signal(signed(width))
        self.gt = Signal()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.d.comb += self.gt.eq(self.a > self.b)
        return m


def lif_constants(fmt_text: str, alpha: float, v_th: float, window: float) -> dict[str, int]:
    """Stored integers of the unit's constants, quantized as the engine quantizes them."""
    values = {"alpha": alpha, "v_th": v_th, "low": v_th - window, "high": v_th + window}
    return {
        name: int(to_fixed_int(torch.tensor(float(v), dtype=torch.float64), fmt_text))
        for name, v in values.items()
    }


class LifUnit(Elaboratable):
    """One LIF lane (module docstring); ``counters=True`` adds event counters for simulation."""

    def __init__(self, fmt: FixedFormat, counters: bool = False):
        self.fmt = fmt
        self.with_counters = counters
        width = fmt.width
        self.valid = Signal()
        self.first = Signal()
        self.x = Signal(signed(width))
        self.alpha = Signal(signed(width))
        self.v_th = Signal(signed(width))
        self.low = Signal(signed(width))
        self.high = Signal(signed(width))
        self.out_valid = Signal()
        self.out_u = Signal(signed(width))
        self.out_spike = Signal()
        self.out_mask = Signal()
        self.counters = {name: Signal(COUNTER_BITS, name=name) for name in LIF_COUNTERS}
        self.multiplier = Multiplier(width)
        self.adder = Adder(width)
        self.comparators = [Comparator(width) for _ in range(3)]

    def inputs(self) -> list[Signal]:
        return [self.valid, self.first, self.x, self.alpha, self.v_th, self.low, self.high]

    def outputs(self) -> list[Signal]:
        return [self.out_u, self.out_spike, self.out_mask]

    def ports(self) -> list[Signal]:
        return [*self.inputs(), self.out_valid, *self.outputs()]

    def elaborate(self, platform) -> Module:
        m = Module()
        width = self.fmt.width
        m.submodules.multiplier = multiplier = self.multiplier
        m.submodules.adder = adder = self.adder
        threshold, above_low, below_high = self.comparators
        m.submodules.threshold = threshold
        m.submodules.above_low = above_low
        m.submodules.below_high = below_high
        u_state = Signal(signed(width))
        fired = Signal()
        u_prev = Mux(self.first, 0, u_state)
        fired_prev = ~self.first & fired
        m.d.comb += [multiplier.a.eq(self.alpha), multiplier.b.eq(u_prev)]
        decayed = fit(round_shift(multiplier.product, self.fmt.frac, self.fmt.rounding), self.fmt)
        m.d.comb += [adder.a.eq(Mux(fired_prev, 0, decayed)), adder.b.eq(self.x)]
        u_new = Signal(signed(width))
        m.d.comb += [
            u_new.eq(fit(adder.sum, self.fmt)),
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
