"""The LUT processing element shared by the Forward and the Weight Update Engines.

One PE lane as :mod:`h2learn.arch.engines.forward` and ``update`` model it
(SYSTEM.md section 2; mechanism ours): a bank of subset-sum tables, **one
adder** used both to build the tables and to accumulate the looked-up
partial sums, an accumulator register and the write-out stage of
:mod:`h2learn.rtl.fixed`.  It takes one command per cycle:

* ``BUILD`` (``index = s``, ``table = g``): write entry ``s`` of table ``g``.
  ``s = 0`` writes 0; a power of two ``s = 2**j`` copies ``operand`` (the
  table operand ``j``: a weight in the Forward Engine, a gradient ``du`` in
  the Weight Update Engine) into the entry and into operand register ``j``;
  any other ``s`` writes ``table[s - top] + operand[top]`` with ``top`` its
  highest set bit: the engines' incremental build, ``2**k - k - 1`` adds per
  table of ``k`` operands (a short group of ``k'`` operands is built over
  ``2**k'`` entries).
* ``LOOKUP`` (``index`` = the ``k``-bit spike pattern, ``table = g``):
  ``acc = (first ? 0 : acc) + table[g][pattern]``.  With ``skip_zero`` an
  all-zero pattern performs no read and no add.  With ``last`` the result is
  written out (forward) or merged into the partial-sum register (update).
* Weight Update Engine (``merge=True``): at ``last`` the block's sum is added
  into the ``dW`` partial sum (``psum = (psum_first ? 0 : psum) + acc``, one
  ``partial_sum_adds`` event, the merge adder standing for the dW buffer's
  read-add-write); ``psum_last`` writes the rounded ``dW`` word out.

Entries are ``width + clog2(k)`` bits (a sum of ``k`` operands never
overflows), the accumulator ``acc_bits`` (the caller sizes it to the fan-in
the lane serves).  Event counters (``counters=True``, simulation only) count
what the engines count, so the two can be compared.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Elaboratable, Module, Mux, Shape, Signal
from amaranth.lib.memory import Memory

from h2learn.rtl import datapath as dp
from h2learn.rtl.datapath import Accumulator, RtlFormat
from h2learn.rtl.fixed import RtlError, clog2

CMD_IDLE, CMD_BUILD, CMD_LOOKUP = 0, 1, 2

LUT_COUNTERS = (
    "table_build_adds",
    "table_entries_written",
    "operand_reads",
    "lookups",
    "zero_pattern_lookups",
    "lookups_skipped",
    "accumulations",
    "output_writes",
    "partial_sum_adds",
)
COUNTER_BITS = 32


class LutBank(Elaboratable):
    """``tables`` subset-sum tables of ``2**k`` entries: one async read port, one write port."""

    def __init__(self, k: int, tables: int, shape: Shape):
        self.k, self.tables, self.shape = k, tables, shape
        self.depth = tables * 2**k
        address_bits = max(1, clog2(self.depth))
        self.read_addr = Signal(address_bits)
        self.read_data = Signal(self.shape)
        self.write_addr = Signal(address_bits)
        self.write_data = Signal(self.shape)
        self.write_en = Signal()

    def elaborate(self, platform) -> Module:
        m = Module()
        m.submodules.storage = storage = Memory(shape=self.shape, depth=self.depth, init=[])
        read = storage.read_port(domain="comb")
        write = storage.write_port()
        m.d.comb += [
            read.addr.eq(self.read_addr),
            self.read_data.eq(read.data),
            write.addr.eq(self.write_addr),
            write.data.eq(self.write_data),
            write.en.eq(self.write_en),
        ]
        return m


class LutPE(Elaboratable):
    """A LUT PE lane (see the module docstring); ``merge=True`` for the Weight Update Engine."""

    def __init__(
        self,
        k: int,
        fmt: RtlFormat,
        tables: int,
        acc_bits: int,
        *,
        skip_zero: bool = True,
        merge: bool = False,
        psum_bits: int | None = None,
        counters: bool = False,
    ):
        if k < 1 or tables < 1:
            raise RtlError(f"LUT PE needs k >= 1 and at least one table (k={k}, tables={tables})")
        self.k, self.fmt, self.tables = k, fmt, tables
        self.entry_bits = dp.entry_bits(fmt, k)
        self.acc_bits = dp.accumulator_bits(fmt, acc_bits)
        if self.acc_bits < self.entry_bits:
            raise RtlError(f"acc_bits={acc_bits} is narrower than a table entry")
        self.psum_bits = dp.accumulator_bits(fmt, psum_bits or acc_bits)
        self.skip_zero, self.merge, self.with_counters = skip_zero, merge, counters
        # command inputs (one command per cycle)
        self.cmd = Signal(2)
        self.index = Signal(k)
        self.table = Signal(max(1, clog2(tables)))
        self.operand = Signal(dp.word_shape(fmt))
        self.first = Signal()
        self.last = Signal()
        self.psum_first = Signal()
        self.psum_last = Signal()
        # result
        self.out_valid = Signal()
        self.out_data = Signal(dp.word_shape(fmt))
        self.counters = {name: Signal(COUNTER_BITS, name=name) for name in LUT_COUNTERS}
        self.bank = LutBank(k, tables, dp.sum_shape(fmt, self.entry_bits))
        self.adder = Accumulator(fmt, self.acc_bits)

    def inputs(self) -> list[Signal]:
        """The command fields, in the order a stimulus word packs them."""
        fields = [self.cmd, self.index, self.table, self.operand, self.first, self.last]
        return fields + ([self.psum_first, self.psum_last] if self.merge else [])

    def outputs(self) -> list[Signal]:
        return [self.out_data]

    def ports(self) -> list[Signal]:
        return [*self.inputs(), self.out_valid, self.out_data]

    def elaborate(self, platform) -> Module:
        m = Module()
        k = self.k
        m.submodules.bank = bank = self.bank
        m.submodules.adder = adder = self.adder
        registers = [Signal(dp.word_shape(self.fmt), name=f"operand{j}") for j in range(k)]

        build = self.cmd == CMD_BUILD
        lookup = self.cmd == CMD_LOOKUP
        # BUILD: highest set bit of s, the entry without it, whether s is 0 or a power of two
        top = Signal(range(k), name="top")
        for j in range(k):
            with m.If(self.index[j]):
                m.d.comb += top.eq(j)
        top_operand = Signal(dp.word_shape(self.fmt))
        with m.Switch(top):
            for j in range(k):
                with m.Case(j):
                    m.d.comb += top_operand.eq(registers[j])
        rest = Signal(k)
        m.d.comb += rest.eq(self.index & ~(1 << top))
        empty = self.index == 0
        single = ~empty & (rest == 0)
        build_add = build & ~empty & ~single
        with m.If(build & single):
            with m.Switch(top):
                for j in range(k):
                    with m.Case(j):
                        m.d.sync += registers[j].eq(self.operand)

        # LOOKUP: zero-pattern skip
        zero = lookup & empty
        performed = lookup & ~zero if self.skip_zero else lookup

        # one read port: build reads table[rest], lookup reads table[pattern]
        m.d.comb += bank.read_addr.eq(Cat(Mux(build, rest, self.index), self.table))
        base = Mux(self.first, 0, adder.acc)
        m.d.comb += [
            adder.a.eq(Mux(build, bank.read_data, base)),
            adder.b.eq(Mux(build, top_operand, Mux(performed, bank.read_data, 0))),
            adder.load.eq(lookup),
        ]
        entry = Mux(empty, 0, Mux(single, self.operand, adder.sum))
        m.d.comb += [
            bank.write_addr.eq(Cat(self.index, self.table)),
            bank.write_data.eq(entry),
            bank.write_en.eq(build),
        ]

        finish = lookup & self.last
        merges = finish if self.merge else 0
        if self.merge:
            shape = dp.sum_shape(self.fmt, self.psum_bits)
            psum = Signal(shape, name="psum")
            merged = Signal(shape, name="merged")
            base = Mux(self.psum_first, 0, psum)
            m.d.comb += merged.eq(dp.add_unit(m, self.fmt, "merge", base, adder.sum))
            with m.If(finish):
                m.d.sync += psum.eq(merged)
            emit, result = finish & self.psum_last, merged
        else:
            emit, result = finish, adder.sum
        m.d.sync += [self.out_valid.eq(emit), self.out_data.eq(dp.write_out(self.fmt, result, 0))]

        if self.with_counters:
            events = {
                "table_build_adds": build_add,
                "table_entries_written": build,
                "operand_reads": build & single,
                "lookups": performed,
                "zero_pattern_lookups": zero,
                "lookups_skipped": zero if self.skip_zero else 0,
                "accumulations": performed,
                "output_writes": emit,
                "partial_sum_adds": merges,
            }
            for name, event in events.items():
                counter = self.counters[name]
                m.d.sync += counter.eq(counter + event)
        return m
