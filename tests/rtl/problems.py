"""Random fixed-point problems run through the functional engines and turned into RTL streams.

Every problem is a small fully connected layer with fresh seeded random
operands (magnitudes spread over the whole format, zeros and saturation
included); the engine's result (stored integers) and event counts are the
reference the RTL must reproduce bit for bit.
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
from h2learn.arch.numerics import parse_format, to_fixed_int
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


def _fc(fan_in: int, out: int) -> LayerSpec:
    return LayerSpec("fc", "fc", (fan_in,), (out,), binary_input=True)


def forward_batch(k: int, fmt_text: str, tables: int, skip: bool, seed: int) -> Batch:
    fmt, gen, batch = parse_format(fmt_text), torch.Generator().manual_seed(seed), Batch()
    while len(batch.expected) < CASES:
        fan_in, out = _randint(gen, 1, k * tables), _randint(gen, 1, 3)
        steps, samples = _randint(gen, 1, 4), _randint(gen, 1, 8)
        weights = _operands(gen, (out, fan_in), fmt.total_bits)
        density = [0.05, 0.2, 0.5][_randint(gen, 0, 2)]
        spikes = torch.rand(steps, samples, fan_in, generator=gen) < density
        result = forward_engine(
            weights.double() * fmt.scale, spikes, _fc(fan_in, out), k, fmt, skip
        )
        stored = to_fixed_int(result.output, fmt).reshape(-1, out).t()  # [O, P]
        points = spikes.reshape(-1, fan_in).int().tolist()
        commands, _ = forward_commands(weights.tolist(), points, k)
        batch.commands += commands
        batch.expected += [(v,) for v in stored.reshape(-1).tolist()]
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch


def update_batch(k: int, fmt_text: str, tables: int, block: int, skip: bool, seed: int) -> Batch:
    fmt, gen, batch = parse_format(fmt_text), torch.Generator().manual_seed(seed), Batch()
    while len(batch.expected) < CASES:
        steps, samples = _randint(gen, 1, 4), _randint(gen, 1, 4)
        points = steps * samples
        fan_in, out = _randint(gen, 4, 24), _randint(gen, 1, 2)
        grads = _operands(gen, (steps, samples, out), fmt.total_bits, zeros=0.3)
        density = [0.05, 0.2, 0.5][_randint(gen, 0, 2)]
        spikes = torch.rand(steps, samples, fan_in, generator=gen) < density
        result = update_engine(
            grads.double() * fmt.scale,
            spikes,
            _fc(fan_in, out),
            k,
            fmt,
            skip,
            partial_sum_groups=block,
        )
        stored = to_fixed_int(result.output, fmt)  # [O, F]
        commands, _ = update_commands(
            grads.reshape(points, out).t().tolist(),
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


def backward_batch(fmt_text: str, max_terms: int, seed: int, cases: int = CASES) -> Batch:
    fmt, gen, batch = parse_format(fmt_text), torch.Generator().manual_seed(seed), Batch()
    bits = fmt.total_bits
    while len(batch.expected) < cases:
        steps, samples = _randint(gen, 1, 4), _randint(gen, 1, 4)
        out, channels = _randint(gen, 1, max_terms), _randint(gen, 1, 16)
        weights = _operands(gen, (out, channels), bits)
        grads = _operands(
            gen, (steps, samples, out), bits, zeros=[0.0, 0.3, 0.7][_randint(gen, 0, 2)]
        )
        mask = torch.rand(steps, samples, channels, generator=gen) < 0.6
        result = backward_engine(
            weights.double() * fmt.scale, grads.double() * fmt.scale, mask, _fc(channels, out), fmt
        )
        stored = to_fixed_int(result.output, fmt).reshape(-1, channels)
        commands, _ = backward_commands(
            weights.tolist(),
            grads.reshape(-1, out).tolist(),
            mask.reshape(-1, channels).int().tolist(),
        )
        batch.commands += commands
        flat_mask = mask.reshape(-1).int().tolist()
        batch.expected += list(zip(stored.reshape(-1).tolist(), flat_mask, strict=True))
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch


def lif_batch(fmt_text: str, seed: int, alpha: float = 0.25, v_th: float = 0.5) -> Batch:
    fmt, gen, batch = parse_format(fmt_text), torch.Generator().manual_seed(seed), Batch()
    window = 0.5
    constants = lif_constants(fmt_text, alpha, v_th, window)
    while len(batch.expected) < CASES:
        steps, neurons = _randint(gen, 1, 8), 64
        scale = [0.3, 1.0, 3.0 * 2 ** (fmt.int_bits - 1)][_randint(gen, 0, 2)]
        currents = torch.randn(steps, 1, neurons, generator=gen) * scale
        result = lif_forward_unit(currents, alpha, v_th, window, fmt_text)
        u = to_fixed_int(result.extra["u"], fmt)[:, 0].t()
        spikes = result.output[:, 0].t().int()
        mask = result.extra["mask"][:, 0].t().int()
        commands, _ = lif_commands(to_fixed_int(currents, fmt)[:, 0].t().tolist(), constants)
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
    fmt, gen, batch = parse_format(fmt_text), torch.Generator().manual_seed(seed), Batch()
    alpha = 0.25
    constants = lif_constants(fmt_text, alpha, 0.5, 0.5)
    gain = int(to_fixed_int(torch.tensor(height, dtype=torch.float64), fmt))
    while len(batch.expected) < CASES:
        steps, neurons = _randint(gen, 1, 8), 64
        forward = lif_forward_unit(
            torch.randn(steps, 1, neurons, generator=gen), alpha, 0.5, 0.5, fmt
        )
        u, spikes, mask = forward.extra["u"], forward.output, forward.extra["mask"]
        scale = [0.05, 1.0, 2.0 ** (fmt.int_bits + 1)][_randint(gen, 0, 2)]
        grads = torch.randn(steps, 1, neurons, generator=gen) * scale
        result = lif_backward_unit(grads, u, spikes, mask, alpha, height, reset_grad, fmt)
        du = to_fixed_int(result.output, fmt)[:, 0].t().tolist()  # [neuron][t]

        def by_neuron(tensor: torch.Tensor) -> list[list[int]]:
            return tensor[:, 0].t().tolist()

        commands, _ = lif_backward_commands(
            by_neuron(to_fixed_int(grads, fmt)),
            by_neuron(to_fixed_int(u, fmt)),
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
    fmt, gen, batch = parse_format(fmt_text), torch.Generator().manual_seed(seed), Batch()
    bits = fmt.total_bits
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
        weights = _operands(gen, layer.weight_shape, bits)
        grads = _operands(gen, (steps, samples, *layer.out_shape), bits, zeros=0.4)
        mask = torch.rand(steps, samples, *layer.in_shape, generator=gen) < 0.6
        result = backward_engine(
            weights.double() * fmt.scale, grads.double() * fmt.scale, mask, layer, fmt
        )
        stored = to_fixed_int(result.output, fmt).reshape(-1)
        batch.commands += conv_backward_pairs(
            weights, grads.flatten(0, 1), mask.flatten(0, 1), stride, 1
        )
        batch.expected += list(zip(stored.tolist(), mask.reshape(-1).int().tolist(), strict=True))
        batch.counts.update(result.counts)
        batch.problems += 1
    return batch
