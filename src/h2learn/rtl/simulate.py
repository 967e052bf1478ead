"""Drive an RTL processing element with Amaranth's simulator, many cases per run.

A testbench that sets inputs from Python every cycle spends most of its time
in Python; here the whole command stream is packed into a stimulus ROM inside
a harness (:class:`StreamHarness`), the PE runs back to back for all cycles,
its results land in a capture memory and its event counters are read once at
the end.  One simulator run thus checks thousands of cases
(:func:`run_stream`).  :func:`measure_toggles` re-runs a (short) stream and
samples chosen signals every cycle, counting bit toggles per command: the
switching activity that :mod:`h2learn.rtl.cost_table` turns into energy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from amaranth.hdl import Cat, Elaboratable, Module, Signal, unsigned
from amaranth.lib.memory import Memory
from amaranth.sim import Simulator

from h2learn.rtl.fixed import RtlError, to_signed


def pack(fields: Sequence[Signal], values: Sequence[int]) -> int:
    """One stimulus word: ``values`` placed in the bit fields of ``fields`` (LSB first)."""
    word, offset = 0, 0
    for signal, value in zip(fields, values, strict=True):
        width = len(signal)
        word |= (int(value) & ((1 << width) - 1)) << offset
        offset += width
    return word


def unpack(fields: Sequence[Signal], word: int) -> tuple[int, ...]:
    """The field values of a captured word (signed fields read as two's complement)."""
    values, offset = [], 0
    for signal in fields:
        width = len(signal)
        raw = (word >> offset) & ((1 << width) - 1)
        values.append(to_signed(raw, width) if signal.shape().signed else raw)
        offset += width
    return tuple(values)


class StreamHarness(Elaboratable):
    """The DUT fed from a stimulus ROM (one word per cycle) with a capture memory for results."""

    def __init__(
        self,
        dut: Elaboratable,
        inputs: Sequence[Signal],
        outputs: Sequence[Signal],
        valid: Signal,
        words: Sequence[int],
        capacity: int,
    ):
        self.dut, self.inputs, self.outputs, self.valid = dut, list(inputs), list(outputs), valid
        self.words = list(words) + [0]  # a trailing idle command
        self.capacity = max(1, capacity)
        self.count = Signal(range(self.capacity + 1))
        self.capture: Memory | None = None

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.dut = self.dut
        in_bits = sum(len(s) for s in self.inputs)
        out_bits = sum(len(s) for s in self.outputs)
        m.submodules.stimulus = stimulus = Memory(
            shape=unsigned(in_bits), depth=len(self.words), init=self.words
        )
        read = stimulus.read_port(domain="comb")
        address = Signal(range(len(self.words)))
        with m.If(address != len(self.words) - 1):
            m.d.sync += address.eq(address + 1)
        m.d.comb += [read.addr.eq(address), Cat(*self.inputs).eq(read.data)]
        m.submodules.capture = self.capture = Memory(
            shape=unsigned(out_bits), depth=self.capacity, init=[]
        )
        write = self.capture.write_port()
        m.d.comb += [
            write.addr.eq(self.count),
            write.data.eq(Cat(*self.outputs)),
            write.en.eq(self.valid & (self.count != self.capacity)),
        ]
        with m.If(self.valid & (self.count != self.capacity)):
            m.d.sync += self.count.eq(self.count + 1)
        return m


@dataclass
class StreamResult:
    """What a stream run produced: the output records in order and the final counter values."""

    outputs: list[tuple[int, ...]]
    counters: dict[str, int]
    cycles: int


LATENCY_SLACK = 4
"""Cycles run after the last command so that registered results reach the capture memory."""


def run_stream(
    dut: Elaboratable,
    inputs: Sequence[Signal],
    outputs: Sequence[Signal],
    valid: Signal,
    commands: Sequence[Sequence[int]],
    expected_outputs: int,
    counters: Mapping[str, Signal] | None = None,
) -> StreamResult:
    """Run ``commands`` (one tuple of input-field values per cycle) through ``dut``.

    Returns the captured ``outputs`` records (one tuple per cycle with
    ``valid``), checked to number ``expected_outputs``, and the counters.
    """
    words = [pack(inputs, command) for command in commands]
    harness = StreamHarness(dut, inputs, outputs, valid, words, expected_outputs + 1)
    simulator = Simulator(harness)
    simulator.add_clock(1e-8)
    cycles = len(words) + LATENCY_SLACK
    result = StreamResult([], {}, cycles)

    async def bench(ctx) -> None:
        await ctx.tick().repeat(cycles)
        count = ctx.get(harness.count)
        data = harness.capture.data
        result.outputs = [unpack(outputs, ctx.get(data[i])) for i in range(count)]
        result.counters = {name: ctx.get(sig) for name, sig in (counters or {}).items()}

    simulator.add_testbench(bench)
    simulator.run()
    if len(result.outputs) != expected_outputs:
        raise RtlError(
            f"RTL produced {len(result.outputs)} results, expected {expected_outputs} (stream bug)"
        )
    return result


def measure_toggles(
    dut: Elaboratable,
    inputs: Sequence[Signal],
    commands: Sequence[Sequence[int]],
    labels: Sequence[str],
    observed: Mapping[str, Sequence[Signal]],
) -> dict[str, dict[str, float]]:
    """Bit toggles of the ``observed`` signal groups per cycle, averaged per command label.

    ``labels[c]`` names the action of command ``c`` (e.g. ``"lookup"``);
    toggles between the samples before and after a command's cycle are
    charged to it.  Returns ``{group: {label: toggles per cycle, ...,
    "bits": group width}}``.
    """
    if len(labels) != len(commands):
        raise RtlError("measure_toggles: one label per command is needed")
    words = [pack(inputs, command) for command in commands]
    valid = Signal()
    harness = StreamHarness(dut, inputs, [valid], valid, words, 1)
    simulator = Simulator(harness)
    simulator.add_clock(1e-8)
    totals = {group: {} for group in observed}
    cycles = {label: 0 for label in set(labels)}

    def sample(ctx) -> dict[str, list[int]]:
        return {
            g: [ctx.get(s).__index__() & ((1 << len(s)) - 1) for s in sig]
            for g, sig in observed.items()
        }

    async def bench(ctx) -> None:
        previous = sample(ctx)
        for label in labels:
            await ctx.tick()
            current = sample(ctx)
            cycles[label] += 1
            for group in observed:
                flips = sum(
                    (a ^ b).bit_count()
                    for a, b in zip(previous[group], current[group], strict=True)
                )
                totals[group][label] = totals[group].get(label, 0) + flips
            previous = current

    simulator.add_testbench(bench)
    simulator.run()
    activity: dict[str, dict[str, float]] = {}
    for group, signals in observed.items():
        per_label = {label: totals[group].get(label, 0) / n for label, n in cycles.items() if n}
        per_label["bits"] = float(sum(len(s) for s in signals))
        activity[group] = per_label
    return activity
