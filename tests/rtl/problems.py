"""Random problems run through the functional engines and turned into RTL streams.

Every problem is a small fully connected layer with fresh seeded random
operands (magnitudes spread over the whole format, zeros and saturation
included; in floating formats subnormals too); the engine's result (datapath
words: stored integers in fixed point, IEEE bit patterns in a floating
format) and event counts are the reference the RTL must reproduce bit for bit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import torch

from h2learn.arch.engines import (
    backward_engine,
    forward_engine,
    lif_backward_unit,
    lif_forward_unit,
    update_engine,
)
from h2learn.arch.engines.common import sequential_matmul
from h2learn.arch.numerics import NumberFormat, parse_format, quantize
from h2learn.rtl.datapath import RtlFormat, is_float, rtl_format, stored_words
from h2learn.rtl.floating import word_class
from h2learn.rtl.lif_backward import lif_backward_commands
from h2learn.rtl.lif_unit import lif_commands, lif_constants
from h2learn.rtl.pe_backward import backward_commands
from h2learn.rtl.pe_forward import forward_commands
from h2learn.rtl.pe_update import update_commands
from h2learn.spec import LayerSpec

CASES = 10_000
"""Output words compared per configuration (the issue asks for at least 10,000 random cases)."""


@dataclass
class Batch:
    """Commands for the RTL, the engine's expected outputs and summed engine counts."""

    commands: list[tuple] = field(default_factory=list)
    expected: list[tuple] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    problems: int = 0


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _operands(gen: torch.Generator, shape: tuple, bits: int, zeros: float = 0.0) -> torch.Tensor:
    """Stored integers spread over magnitudes: full-range values shifted right by 0..bits-2."""
    values = torch.randint(-(2 ** (bits - 1)), 2 ** (bits - 1), shape, generator=gen)
    values = values >> _randint(gen, 0, bits - 2)
    if zeros:
        values[torch.rand(shape, generator=gen) < zeros] = 0
    return values


class Words:
    """Random operands of a format and their datapath words (one view of both kinds of format)."""

    def __init__(self, fmt_text: str):
        self.text = fmt_text
        self.fmt: NumberFormat = parse_format(fmt_text)
        self.rtl = rtl_format(fmt_text)

    def random(self, gen: torch.Generator, shape: tuple, zeros: float = 0.0) -> torch.Tensor:
        """Values of the format (float64): fixed point over its whole range; floats with
        exponents over ``2**-24 .. 2**8``, one in five in the format's subnormal range."""
        if self.fmt.is_fixed:
            return _operands(gen, shape, self.fmt.total_bits, zeros).double() * self.fmt.scale
        rtl = self.rtl
        lowest = 2 - rtl.bias - rtl.precision  # exponent of the smallest subnormal, 2**lowest
        exponents = torch.randint(-24, 9, shape, generator=gen).double()
        tiny = torch.randint(lowest, lowest + rtl.man_bits, shape, generator=gen).double()
        exponents = torch.where(torch.rand(shape, generator=gen) < 0.2, tiny, exponents)
        values = (torch.rand(shape, generator=gen, dtype=torch.float64) + 0.5) * 2.0**exponents
        values[torch.rand(shape, generator=gen) < 0.5] *= -1
        if zeros:
            values[torch.rand(shape, generator=gen) < zeros] = 0.0
        return quantize(values, self.fmt).double()

    def words(self, values: torch.Tensor) -> torch.Tensor:
        return stored_words(values, self.rtl)

    def lists(self, values: torch.Tensor) -> list:
        return self.words(values).tolist()

    def real_scale(self) -> float:
        """A magnitude that saturates fixed point (its integer range), for currents and grads."""
        return 2.0 ** (self.fmt.int_bits - 1) if self.fmt.is_fixed else 1e3


def canonical(word: int, fmt: RtlFormat) -> int:
    """Every NaN word as one value: IEEE leaves payloads open, and torch and the RTL differ."""
    if not is_float(fmt):
        return word
    return -1 if word_class(word, fmt) == "nan" else word


def float_classes(words: list[int], fmt: RtlFormat) -> Counter:
    """How many words are zeros, subnormals, normals, infinities and NaNs."""
    return Counter(word_class(word, fmt) for word in words)


def _fc(fan_in: int, out: int) -> LayerSpec:
    return LayerSpec("fc", "fc", (fan_in,), (out,), binary_input=True)


def forward_batch(k: int, fmt_text: str, tables: int, skip: bool, seed: int) -> Batch:
    words, gen, batch = Words(fmt_text), torch.Generator().manual_seed(seed), Batch()
    while len(batch.expected) < CASES:
        fan_in, out = _randint(gen, 1, k * tables), _randint(gen, 1, 3)
        steps, samples = _randint(gen, 1, 4), _randint(gen, 1, 8)
        weights = words.random(gen, (out, fan_in))
        density = [0.05, 0.2, 0.5][_randint(gen, 0, 2)]
        spikes = torch.rand(steps, samples, fan_in, generator=gen) < density
        result = forward_engine(weights, spikes, _fc(fan_in, out), k, words.fmt, skip)
        stored = words.words(result.output).reshape(-1, out).t()  # [O, P]
        points = spikes.reshape(-1, fan_in).int().tolist()
        commands, _ = forward_commands(words.lists(weights), points, k)
        batch.commands += commands
        batch.expected += [(v,) for v in stored.reshape(-1).tolist()]
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch


def update_batch(k: int, fmt_text: str, tables: int, block: int, skip: bool, seed: int) -> Batch:
    words, gen, batch = Words(fmt_text), torch.Generator().manual_seed(seed), Batch()
    while len(batch.expected) < CASES:
        steps, samples = _randint(gen, 1, 4), _randint(gen, 1, 4)
        points = steps * samples
        fan_in, out = _randint(gen, 4, 24), _randint(gen, 1, 2)
        grads = words.random(gen, (steps, samples, out), zeros=0.3)
        density = [0.05, 0.2, 0.5][_randint(gen, 0, 2)]
        spikes = torch.rand(steps, samples, fan_in, generator=gen) < density
        result = update_engine(
            grads, spikes, _fc(fan_in, out), k, words.fmt, skip, partial_sum_groups=block
        )
        stored = words.words(result.output)  # [O, F]
        commands, _ = update_commands(
            words.lists(grads.reshape(points, out).t()),
            spikes.reshape(points, fan_in).t().int().tolist(),
            k,
            block,
        )
        assert -(-points // k) <= tables
        batch.commands += commands
        batch.expected += [(v,) for v in stored.reshape(-1).tolist()]
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch


def backward_batch(
    fmt_text: str, max_terms: int, seed: int, cases: int = CASES, reference: str = "engine"
) -> Batch:
    """Expected outputs from the engine (``reference="engine"``), from the engines'
    one-term-at-a-time MAC (``"sequential"``,
    :func:`~h2learn.arch.engines.common.sequential_matmul`: for float32, whose engine
    uses torch's kernels and so the library's summation order), or from a float32
    accumulation rounded once at the end (``"wide"``: a design the RTL is not, to show
    the comparison tells them apart).  The counts always come from the engine."""
    words, gen, batch = Words(fmt_text), torch.Generator().manual_seed(seed), Batch()
    while len(batch.expected) < cases:
        steps, samples = _randint(gen, 1, 4), _randint(gen, 1, 4)
        out, channels = _randint(gen, 1, max_terms), _randint(gen, 1, 16)
        weights = words.random(gen, (out, channels))
        grads = words.random(gen, (steps, samples, out), [0.0, 0.3, 0.7][_randint(gen, 0, 2)])
        mask = torch.rand(steps, samples, channels, generator=gen) < 0.6
        result = backward_engine(weights, grads, mask, _fc(channels, out), words.fmt)
        output, dtype = result.output, words.fmt.dtype
        if reference != "engine":
            work = dtype if reference == "sequential" else torch.float32
            flat = grads.reshape(-1, out, 1).to(work)
            macs = sequential_matmul(weights.t().to(work), flat).reshape(output.shape)
            output = torch.where(mask, macs.to(dtype), torch.zeros((), dtype=dtype))
        stored = words.words(output).reshape(-1, channels)
        commands, _ = backward_commands(
            words.lists(weights),
            words.lists(grads.reshape(-1, out)),
            mask.reshape(-1, channels).int().tolist(),
        )
        batch.commands += commands
        flat_mask = mask.reshape(-1).int().tolist()
        batch.expected += list(zip(stored.reshape(-1).tolist(), flat_mask, strict=True))
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch


def lif_batch(fmt_text: str, seed: int, alpha: float = 0.25, v_th: float = 0.5) -> Batch:
    words, gen, batch = Words(fmt_text), torch.Generator().manual_seed(seed), Batch()
    window = 0.5
    constants = lif_constants(words.rtl, alpha, v_th, window)
    while len(batch.expected) < CASES:
        steps, neurons = _randint(gen, 1, 8), 64
        scale = [0.3, 1.0, 3.0 * words.real_scale()][_randint(gen, 0, 2)]
        currents = torch.randn(steps, 1, neurons, generator=gen) * scale
        result = lif_forward_unit(currents, alpha, v_th, window, fmt_text)
        u = words.words(result.extra["u"])[:, 0].t()
        spikes = result.output[:, 0].t().int()
        mask = result.extra["mask"][:, 0].t().int()
        commands, _ = lif_commands(words.lists(currents[:, 0].t()), constants)
        batch.commands += commands
        batch.expected += list(
            zip(
                u.reshape(-1).tolist(),
                spikes.reshape(-1).tolist(),
                mask.reshape(-1).tolist(),
                strict=True,
            )
        )
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch


def lif_backward_batch(fmt_text: str, height: float, reset_grad: bool, seed: int) -> Batch:
    """BPTT through LIF neurons whose states come from the forward unit (real u, o, mask)."""
    words, gen, batch = Words(fmt_text), torch.Generator().manual_seed(seed), Batch()
    fmt, alpha = words.fmt, 0.25
    constants = lif_constants(words.rtl, alpha, 0.5, 0.5)
    gain = int(words.words(torch.tensor(height, dtype=torch.float64)))
    while len(batch.expected) < CASES:
        steps, neurons = _randint(gen, 1, 8), 64
        forward = lif_forward_unit(
            torch.randn(steps, 1, neurons, generator=gen), alpha, 0.5, 0.5, fmt
        )
        u, spikes, mask = forward.extra["u"], forward.output, forward.extra["mask"]
        scale = [0.05, 1.0, 4.0 * words.real_scale()][_randint(gen, 0, 2)]
        grads = torch.randn(steps, 1, neurons, generator=gen) * scale
        result = lif_backward_unit(grads, u, spikes, mask, alpha, height, reset_grad, fmt)
        du = words.words(result.output)[:, 0].t().tolist()  # [neuron][t]

        def by_neuron(tensor: torch.Tensor) -> list[list[int]]:
            return tensor[:, 0].t().tolist()

        commands, _ = lif_backward_commands(
            by_neuron(words.words(grads)),
            by_neuron(words.words(u)),
            by_neuron(spikes.int()),
            by_neuron(mask.int()),
            constants["alpha"],
            gain,
        )
        batch.commands += commands
        batch.expected += [(row[t],) for row in du for t in range(steps - 1, -1, -1)]
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch


def conv_backward_pairs(
    weights: torch.Tensor, grads: torch.Tensor, masks: torch.Tensor, stride: int, pad: int
) -> list[tuple]:
    """The MAC stream of ``W^T (*) du`` for a conv layer, by brute force over the geometry.

    Every lower element ``(s, c, y, x)`` receives the pairs ``(W[o, c, dy, dx],
    du[s, o, yo, xo])`` of every output channel and tap with
    ``yo * stride - pad + dy == y`` (and likewise for ``x``) inside the upper map.
    """
    out_channels, channels, kernel, _ = weights.shape
    steps, _, out_h, out_w = grads.shape
    _, _, height, width = masks.shape
    commands = []
    for s in range(steps):
        for c in range(channels):
            for y in range(height):
                for x in range(width):
                    pairs = [
                        (int(weights[o, c, dy, dx]), int(grads[s, o, yo, xo]))
                        for o in range(out_channels)
                        for dy in range(kernel)
                        for dx in range(kernel)
                        for yo, ry in [divmod(y + pad - dy, stride)]
                        for xo, rx in [divmod(x + pad - dx, stride)]
                        if ry == 0 and rx == 0 and 0 <= yo < out_h and 0 <= xo < out_w
                    ]
                    mask = int(masks[s, c, y, x])
                    last = len(pairs) - 1
                    commands += [
                        (1, w, g, mask, int(i == 0), int(i == last))
                        for i, (w, g) in enumerate(pairs)
                    ]
    return commands


def conv_backward_batch(fmt_text: str, seed: int, cases: int) -> Batch:
    """Conv layers (3x3, stride 1 or 2, padding 1) through the Backward Engine."""
    words, gen, batch = Words(fmt_text), torch.Generator().manual_seed(seed), Batch()
    while len(batch.expected) < cases:
        stride, channels, out = _randint(gen, 1, 2), _randint(gen, 1, 2), _randint(gen, 1, 2)
        size, steps, samples = _randint(gen, 3, 5), 1, 2
        layer = LayerSpec(
            "conv",
            "conv",
            (channels, size, size),
            (out, (size - 1) // stride + 1, (size - 1) // stride + 1),
            kernel=3,
            stride=stride,
            padding=1,
            binary_input=True,
        )
        weights = words.random(gen, layer.weight_shape)
        grads = words.random(gen, (steps, samples, *layer.out_shape), zeros=0.4)
        mask = torch.rand(steps, samples, *layer.in_shape, generator=gen) < 0.6
        result = backward_engine(weights, grads, mask, layer, words.fmt)
        stored = words.words(result.output).reshape(-1)
        batch.commands += conv_backward_pairs(
            words.words(weights), words.words(grads).flatten(0, 1), mask.flatten(0, 1), stride, 1
        )
        batch.expected += list(zip(stored.tolist(), mask.reshape(-1).int().tolist(), strict=True))
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch
