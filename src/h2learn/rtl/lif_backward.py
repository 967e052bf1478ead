"""The element-wise LIF backward unit: BPTT through the neuron with the surrogate gradient.

Implements :func:`h2learn.arch.engines.lif_backward_unit` in fixed point or
in a floating format (:mod:`h2learn.rtl.datapath`), one neuron-step per
cycle, time running backwards (``t = T-1 .. 0``; ``first`` marks ``t = T-1``,
where the carry ``alpha * du[t+1]`` is 0)::

    c       = carry                                      alpha * du[t+1], kept from the last step
    do      = fit(g[t] - fit(round(u[t] * c, F)))        reset path (reset_grad)
    gated   = mask[t] ? (height == 1 ? do : fit(round(gain * do, F))) : 0
    du[t]   = fit(gated + (o[t] ? 0 : c))
    carry   = fit(round(alpha * du[t], F))

The surrogate gradient is the rectangular window's mask bit times its height
(``gain``, a configuration input; a height of 1 is a select, no multiplier).
Counters follow the engine's convention (the carry's multiply and add are
counted on the steps that use a carry; see
:func:`h2learn.arch.engines.elementwise.lif_backward_counts`).
"""

from __future__ import annotations

from amaranth.hdl import Elaboratable, Module, Mux, Signal

from h2learn.rtl import datapath as dp
from h2learn.rtl.datapath import RtlFormat
from h2learn.rtl.pe_lut import COUNTER_BITS

LIF_BACKWARD_COUNTERS = ("multiplies", "adds", "selects")


class LifBackwardUnit(Elaboratable):
    """One LIF backward lane (module docstring)."""

    def __init__(
        self,
        fmt: RtlFormat,
        unit_height: bool = True,
        reset_grad: bool = True,
        counters: bool = False,
    ):
        self.fmt, self.unit_height, self.reset_grad = fmt, unit_height, reset_grad
        self.with_counters = counters
        word = dp.word_shape(fmt)
        self.valid = Signal()
        self.first = Signal()
        self.grad = Signal(word)
        self.u = Signal(word)
        self.spike = Signal()
        self.mask = Signal()
        self.alpha = Signal(word)
        self.gain = Signal(word)
        self.out_valid = Signal()
        self.out_du = Signal(word)
        self.counters = {n: Signal(COUNTER_BITS, name=n) for n in LIF_BACKWARD_COUNTERS}
        self.reset_multiplier = dp.multiplier(fmt)
        self.gain_multiplier = dp.multiplier(fmt)
        self.carry_multiplier = dp.multiplier(fmt)
        self.adder = dp.adder(fmt)

    def inputs(self) -> list[Signal]:
        fields = [self.valid, self.first, self.grad, self.u, self.spike, self.mask]
        return [*fields, self.alpha, self.gain]

    def outputs(self) -> list[Signal]:
        return [self.out_du]

    def ports(self) -> list[Signal]:
        return [*self.inputs(), self.out_valid, self.out_du]

    def _mul(self, m: Module, unit, a, b):
        m.d.comb += [unit.a.eq(a), unit.b.eq(b)]
        return dp.product_word(self.fmt, unit.product)

    def elaborate(self, platform) -> Module:
        m = Module()
        fmt = self.fmt
        m.submodules.reset_multiplier = self.reset_multiplier
        m.submodules.gain_multiplier = self.gain_multiplier
        m.submodules.carry_multiplier = self.carry_multiplier
        m.submodules.adder = self.adder
        floating = dp.is_float(fmt)
        carry_state = Signal(dp.word_shape(fmt))
        carry = Mux(self.first, 0, carry_state)
        grad_o = Signal(dp.word_shape(fmt))
        if self.reset_grad:
            product = self._mul(m, self.reset_multiplier, self.u, carry)
            if floating:  # g - p as g + (-p); the last step (first here) has no carry term
                reset = dp.add_unit(m, fmt, "reset_adder", self.grad, dp.negated(fmt, product))
                m.d.comb += grad_o.eq(Mux(self.first, self.grad, reset))
            else:  # exact: subtracting the zero carry term changes nothing
                m.d.comb += grad_o.eq(dp.sum_word(fmt, self.grad - product))
        else:
            m.d.comb += grad_o.eq(self.grad)
        scaled = (
            grad_o if self.unit_height else self._mul(m, self.gain_multiplier, self.gain, grad_o)
        )
        gated = Mux(self.mask, scaled, 0)
        m.d.comb += [self.adder.a.eq(gated), self.adder.b.eq(Mux(self.spike, 0, carry))]
        du = Signal(dp.word_shape(fmt))
        total = dp.sum_word(fmt, self.adder.sum)
        # floating: -0 + (+0) would turn the sign of a zero gradient, so the step
        # without a carry passes ``gated`` as the engine does
        m.d.comb += du.eq(Mux(self.first, gated, total) if floating else total)
        next_carry = self._mul(m, self.carry_multiplier, self.alpha, du)
        with m.If(self.valid):
            m.d.sync += carry_state.eq(next_carry)
        m.d.sync += [self.out_valid.eq(self.valid), self.out_du.eq(du)]
        if self.with_counters:
            uses_carry = self.valid & ~self.first
            per_carry = 2 if self.reset_grad else 1
            events = {
                "multiplies": Mux(uses_carry, per_carry, 0)
                + Mux(self.valid, 0 if self.unit_height else 1, 0),
                "adds": Mux(uses_carry, per_carry, 0),
                "selects": Mux(self.valid, 1, 0) + Mux(uses_carry, 1, 0),
            }
            for name, event in events.items():
                counter = self.counters[name]
                m.d.sync += counter.eq(counter + event)
        return m


def lif_backward_commands(
    grads: list[list[int]],
    potentials: list[list[int]],
    spikes: list[list[int]],
    masks: list[list[int]],
    alpha: int,
    gain: int,
) -> tuple[list[tuple], int]:
    """One command per neuron-step, each neuron's steps from ``t = T-1`` down to 0.

    Arguments are ``[neuron][t]`` lists (stored integers, bits).  Outputs come
    in the same order (neuron, then ``t`` descending).
    """
    commands = []
    for g, u, o, h in zip(grads, potentials, spikes, masks, strict=True):
        steps = len(g)
        for t in range(steps - 1, -1, -1):
            commands.append((1, int(t == steps - 1), g[t], u[t], o[t], h[t], alpha, gain))
    return commands, len(commands)
