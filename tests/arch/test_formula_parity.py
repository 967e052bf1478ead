"""Every count formula has one home: engine unit == its ``*_counts()`` == the activity task.

For every engine unit in every phase (forward, update, backward, element-wise,
pooling, loss, optimizer) on seeded random shapes and data, three counts must
agree with an independent brute-force tally that walks the data event by
event (loops over points, groups, links and elements, written from the
hardware description, not from the formulas):

* the functional unit's own counts (``forward_engine``, ``lif_forward_unit`` ...);
* its data-free ``*_counts()`` function fed with the data's summary;
* the task the activity model builds (trace mode for the engine phases,
  the builder's element-wise, pooling, loss and optimizer tasks).

Because the unit and the activity model both call the ``*_counts()``
function, a change to any single formula shows up against the brute force.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
import torch.nn.functional as F

from h2learn.arch.activity import activity_from_densities, parameter_count
from h2learn.arch.activity.trace import TraceCounter
from h2learn.arch.config import default_config
from h2learn.arch.engines import backward_engine, forward_engine, update_engine
from h2learn.arch.engines.backward import backward_counts_from_links
from h2learn.arch.engines.elementwise import (
    batchnorm_backward,
    batchnorm_backward_counts,
    batchnorm_forward,
    batchnorm_forward_counts,
    lif_backward_counts,
    lif_backward_unit,
    lif_forward_counts,
    lif_forward_unit,
    loss_counts,
    loss_unit,
    optimizer_counts,
    pool_backward,
    pool_backward_counts,
    pool_forward,
    pool_forward_counts,
)
from h2learn.arch.engines.forward import dense_forward_counts
from h2learn.arch.engines.lut import lut_counts
from h2learn.arch.engines.update import dense_update_counts
from h2learn.arch.mapping import update_block_groups
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import FC, Conv, LayerSpec, LIFParams, Pool, expand

SEEDS = (0, 1, 2)

# --------------------------------------------------------------------------
# Random shapes and brute-force helpers
# --------------------------------------------------------------------------


def random_layer(rng: random.Random, binary: bool = True) -> LayerSpec:
    """A small conv or fc layer with random geometry (encoding False: it has a backward)."""
    if rng.random() < 0.3:
        fan_in, out = rng.randint(3, 13), rng.randint(1, 4)
        return LayerSpec("fc", "fc", (fan_in,), (out,), binary_input=binary)
    channels, size = rng.randint(1, 3), rng.randint(3, 6)
    kernel, stride, padding = rng.choice((1, 2, 3)), rng.choice((1, 2)), rng.choice((0, 1))
    if kernel > size + 2 * padding:
        kernel = 1
    out = (size + 2 * padding - kernel) // stride + 1
    out_channels = rng.randint(1, 3)
    return LayerSpec(
        "conv",
        "conv",
        (channels, size, size),
        (out_channels, out, out),
        kernel=kernel,
        stride=stride,
        padding=padding,
        binary_input=binary,
    )


def unfolded(inputs: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """``[T*B, fan_in, L]`` receptive fields (padding taps are 0), torch's unfold order."""
    steps = inputs.reshape(-1, *inputs.shape[2:]).to(torch.float64)
    if layer.kind == "fc":
        return steps.reshape(steps.shape[0], -1, 1)
    return F.unfold(steps, layer.kernel, padding=layer.padding, stride=layer.stride)


def subset_build(size: int) -> tuple[int, int]:
    """Adds and entries of one table over ``size`` values: every subset of two or more
    members costs one add; every subset is one entry."""
    subsets = range(2**size)
    return sum(1 for s in subsets if bin(s).count("1") >= 2), 2**size


def groups_of(length: int, k: int) -> list[range]:
    return [range(start, min(length, start + k)) for start in range(0, length, k)]


def tally_lut(
    span: int, k: int, presented: list[list[bool]], out: int, skip: bool
) -> dict[str, int]:
    counts = dict.fromkeys(
        ("table_build_adds", "table_entries_written", "lookups", "zero_pattern_lookups",
         "lookups_skipped", "accumulations", "table_reads", "spike_reads"),
        0,
    )  # fmt: skip
    for _ in range(out):
        for group in groups_of(span, k):
            adds, entries = subset_build(len(group))
            counts["table_build_adds"] += adds
            counts["table_entries_written"] += entries
    for pattern in presented:
        for has_spike in pattern:
            counts["spike_reads"] += 1
            for _ in range(out):
                if not has_spike:
                    counts["zero_pattern_lookups"] += 1
                    if skip:
                        counts["lookups_skipped"] += 1
                        continue
                counts["lookups"] += 1
                counts["accumulations"] += 1
                counts["table_reads"] += 1
    return counts


def config_for(k: int, skip: bool, input_sparsity: bool = True, output_sparsity: bool = True):
    return default_config().replace(
        forward_engine={"lut_group_size": k},
        update_engine={"lut_group_size": k},
        optimizations={
            "skip_zero_patterns": skip,
            "input_sparsity": input_sparsity,
            "output_sparsity": output_sparsity,
        },
    )


def tensors_for(layer: LayerSpec, gen: torch.Generator, steps: int = 2, batch: int = 2):
    shape_in = (steps, batch, *layer.in_shape)
    shape_out = (steps, batch, *layer.out_shape)
    if layer.binary_input:
        inputs = torch.rand(shape_in, generator=gen) < 0.3
    else:
        inputs = torch.rand(shape_in, generator=gen)
    grad = torch.randn(shape_out, generator=gen) * (torch.rand(shape_out, generator=gen) < 0.5)
    mask = torch.rand(shape_in, generator=gen) < 0.6
    return {"input": inputs, "grad_psum": grad, "lower_mask": mask}


def assert_same(*count_sets: dict, names=None) -> None:
    names = names or count_sets[0].keys()
    for name in names:
        values = [float(c.get(name, 0.0)) for c in count_sets]
        assert all(v == pytest.approx(values[0], abs=1e-9) for v in values), (name, values)


# --------------------------------------------------------------------------
# Forward Engine (LUT) and its dense fallback
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("skip", [False, True])
def test_lut_forward(seed, skip):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    layer, k = random_layer(rng), rng.randint(1, 4)
    tensors = tensors_for(layer, gen)
    points = unfolded(tensors["input"], layer)  # [n, F, L]
    presented = [
        [bool(points[n, list(g), pos].any()) for g in groups_of(layer.fan_in, k)]
        for n in range(points.shape[0])
        for pos in range(points.shape[2])
    ]
    brute = tally_lut(layer.fan_in, k, presented, layer.out_channels, skip)
    total = len(presented)
    brute.update(
        output_writes=layer.out_channels * total,
        dense_macs=layer.fan_in * total * layer.out_channels,
        weight_reads=layer.fan_in * layer.out_channels,
    )
    weights = torch.randn(layer.weight_shape, generator=gen)
    engine = forward_engine(weights, tensors["input"], layer, k, skip_zero_patterns=skip).counts
    zero = sum(not spike for pattern in presented for spike in pattern)
    formula = lut_counts("forward_engine", layer, k, total, zero, skip)
    task, _ = TraceCounter(layer, tensors, config_for(k, skip)).forward(0, 2)
    assert_same(brute, engine, formula, task, names=engine.keys())


@pytest.mark.parametrize("seed", SEEDS)
def test_dense_forward(seed):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    layer = random_layer(rng, binary=False)
    tensors = tensors_for(layer, gen)
    points = unfolded(tensors["input"], layer)
    brute = dict.fromkeys(("multiplies", "accumulations", "input_reads", "output_writes"), 0)
    for _n in range(points.shape[0]):
        for _pos in range(points.shape[2]):
            brute["output_writes"] += layer.out_channels
            for _ in range(points.shape[1]):  # every tap of the receptive field, padding too
                brute["input_reads"] += 1
                brute["multiplies"] += layer.out_channels
                brute["accumulations"] += layer.out_channels
    brute["dense_macs"] = brute["multiplies"]
    brute["weight_reads"] = math.prod(layer.weight_shape)  # weight-stationary: each read once
    weights = torch.randn(layer.weight_shape, generator=gen)
    engine = forward_engine(weights, tensors["input"], layer).counts
    formula = dense_forward_counts(layer, points.shape[0])
    task, _ = TraceCounter(layer, tensors, config_for(4, True)).forward(0, 2)
    assert_same(brute, engine, formula, task, names=engine.keys())


# --------------------------------------------------------------------------
# Weight Update Engine (LUT) and its dense fallback
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("skip", [False, True])
def test_lut_update(seed, skip):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    layer, k = random_layer(rng), rng.randint(1, 4)
    config = config_for(k, skip)
    block = update_block_groups(config)
    tensors = tensors_for(layer, gen)
    points = unfolded(tensors["input"], layer)  # [n, F, L]
    bits = points.permute(1, 0, 2).reshape(layer.fan_in, -1)  # [F, P], (t, b, l) order
    total = bits.shape[1]
    presented = [
        [bool(bits[j, list(g)].any()) for g in groups_of(total, k)] for j in range(layer.fan_in)
    ]
    brute = tally_lut(total, k, presented, layer.out_channels, skip)
    blocks = sum(1 for g in range(len(groups_of(total, k))) if g % block == 0)
    brute.update(
        partial_sum_adds=blocks * layer.fan_in * layer.out_channels,
        output_writes=layer.out_channels * layer.fan_in,
        dense_macs=layer.fan_in * total * layer.out_channels,
        grad_reads=total * layer.out_channels,
    )
    grad = tensors["grad_psum"]
    engine = update_engine(
        grad, tensors["input"], layer, k, skip_zero_patterns=skip, partial_sum_groups=block
    ).counts
    zero = sum(not spike for pattern in presented for spike in pattern)
    formula = lut_counts("update_engine", layer, k, total, zero, skip, block)
    task, _ = TraceCounter(layer, tensors, config).update(0, 2)
    assert_same(brute, engine, formula, task, names=engine.keys())


@pytest.mark.parametrize("seed", SEEDS)
def test_dense_update(seed):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    layer = random_layer(rng, binary=False)
    tensors = tensors_for(layer, gen)
    points = unfolded(tensors["input"], layer)
    brute = dict.fromkeys(("multiplies", "accumulations", "input_reads", "grad_reads"), 0)
    for _n in range(points.shape[0]):
        for _pos in range(points.shape[2]):
            brute["grad_reads"] += layer.out_channels
            for _ in range(points.shape[1]):
                brute["input_reads"] += 1
                brute["multiplies"] += layer.out_channels
                brute["accumulations"] += layer.out_channels
    brute["dense_macs"] = brute["multiplies"]
    brute["output_writes"] = math.prod(layer.weight_shape)  # each dW word written once
    engine = update_engine(tensors["grad_psum"], tensors["input"], layer).counts
    formula = dense_update_counts(layer, points.shape[0])
    task, _ = TraceCounter(layer, tensors, config_for(4, True)).update(0, 2)
    assert_same(brute, engine, formula, task, names=engine.keys())


# --------------------------------------------------------------------------
# Backward Engine
# --------------------------------------------------------------------------


def backward_links(layer: LayerSpec):
    """Every (upper position, lower element) link of the transposed product, by enumeration."""
    if layer.kind == "fc":
        for o in range(layer.out_channels):
            for c in range(layer.in_shape[0]):
                yield (o,), (c,)
        return
    (_, height, width), (_, out_h, out_w) = layer.in_shape, layer.out_shape
    for o in range(layer.out_channels):
        for oy in range(out_h):
            for ox in range(out_w):
                for dy in range(layer.kernel):
                    for dx in range(layer.kernel):
                        y = oy * layer.stride + dy - layer.padding
                        x = ox * layer.stride + dx - layer.padding
                        if 0 <= y < height and 0 <= x < width:
                            for c in range(layer.in_channels):
                                yield (o, oy, ox), (c, y, x)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(
    ("input_sparsity", "output_sparsity"), [(True, True), (False, True), (True, False)]
)
def test_backward(seed, input_sparsity, output_sparsity):
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    layer = random_layer(rng)
    tensors = tensors_for(layer, gen)
    grad, mask = tensors["grad_psum"].flatten(0, 1), tensors["lower_mask"].flatten(0, 1)
    brute = dict.fromkeys(
        ("macs_done", "macs_dense", "macs_skipped_input", "macs_skipped_output", "weight_reads"),
        0,
    )
    links = list(backward_links(layer))
    for n in range(grad.shape[0]):
        for upper, lower in links:
            brute["macs_dense"] += 1
            if output_sparsity and not mask[n][lower]:
                brute["macs_skipped_output"] += 1
            elif input_sparsity and grad[n][upper] == 0:
                brute["macs_skipped_input"] += 1
            else:
                brute["macs_done"] += 1
                brute["weight_reads"] += 1
    brute["grad_reads"] = int((grad != 0).sum()) if input_sparsity else grad.numel()
    brute["mask_reads"] = mask.numel() if output_sparsity else 0
    brute["output_writes"] = int(mask.sum()) if output_sparsity else mask.numel()
    weights = torch.randn(layer.weight_shape, generator=gen)
    engine = backward_engine(
        weights, tensors["grad_psum"], tensors["lower_mask"], layer,
        input_sparsity=input_sparsity, output_sparsity=output_sparsity,
    ).counts  # fmt: skip
    config = config_for(4, True, input_sparsity, output_sparsity)
    task, _ = TraceCounter(layer, tensors, config).backward(0, 2)
    active = sum(1 for n in range(grad.shape[0]) for _, lower in links if mask[n][lower])
    formula = backward_counts_from_links(
        macs_dense=brute["macs_dense"],
        macs_active=active if output_sparsity else brute["macs_dense"],
        macs_done=brute["macs_done"],
        grads=grad.numel(),
        nonzero_grads=int((grad != 0).sum()),
        lower_elements=mask.numel(),
        active_elements=int(mask.sum()),
        input_sparsity=input_sparsity,
        masked=output_sparsity,
    )
    assert_same(brute, engine, formula, task, names=engine.keys())


# --------------------------------------------------------------------------
# Element-wise units: LIF, batch norm, bias, residual (tasks of the builder)
# --------------------------------------------------------------------------

T, B = 3, 2


def small_network(seed: int, lif: LIFParams | None = None):
    """Conv+BN, conv without BN reading a residual, a pooling layer and a classifier."""
    rng = random.Random(seed)
    channels, size, classes = rng.randint(2, 3), rng.choice((5, 7)), rng.randint(2, 4)
    width = rng.randint(2, 4)
    pool = rng.choice([Pool("avgpool", 3, stride=2), Pool("maxpool", 2, stride=2)])
    sketch = [Conv(width), Conv(width, batch_norm=False, residual=0), pool, FC(classes)]
    fields = {"time_steps": T, "batch_size": B, "lif": lif or LIFParams()}
    return expand("parity", (channels, size, size), classes, sketch, **fields)


def tasks_by_phase(spec, optimizer: str = "adam"):
    config = default_config().replace(schedule={"micro_batch": B, "optimizer": optimizer})
    activity = activity_from_densities(spec, None, config)
    return {(task.layer, str(task.phase)): task.counts for task in activity.tasks}


def add_counts(*parts: dict) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for name, value in part.items():
            total[name] = total.get(name, 0.0) + float(value)
    return total


def tally(counts: dict, times: int, **per: int) -> None:
    for name, value in per.items():
        counts[name] = counts.get(name, 0) + value * times


def brute_batchnorm_forward(x: torch.Tensor) -> dict:
    counts: dict[str, int] = {}
    for channel in range(x.shape[2]):
        tally(counts, 1, multiplies=4, sqrts=1, divides=1, param_reads=2)
        for _ in x[:, :, channel].flatten():  # pass 1 (statistics) and pass 2 (scale, shift)
            tally(counts, 1, input_reads=2, multiplies=2, adds=3, output_writes=1)
    return counts


def brute_batchnorm_backward(x: torch.Tensor) -> dict:
    counts: dict[str, int] = {}
    for channel in range(x.shape[2]):
        tally(counts, 1, multiplies=2, adds=-2, divides=1, param_reads=3, output_writes=2)
        for _ in x[:, :, channel].flatten():
            tally(counts, 1, input_reads=4, multiplies=5, adds=5, output_writes=1)
    return counts


def brute_lif_forward(x: torch.Tensor, keep_potential: bool) -> dict:
    counts: dict[str, int] = {}
    for _ in x.flatten():  # every neuron-step: decay, integrate, reset, threshold, window
        tally(counts, 1, multiplies=1, adds=1, selects=1, compares=3, input_reads=1)
        tally(counts, 1, state_reads=2, state_writes=2, spike_writes=1, mask_writes=1)
        tally(counts, 1, potential_writes=int(keep_potential))
    return counts


def brute_lif_backward(x: torch.Tensor, height: float, reset_grad: bool) -> dict:
    counts: dict[str, int] = {}
    for _ in x[0].flatten():
        for t in range(x.shape[0] - 1, -1, -1):
            tally(counts, 1, grad_reads=1, state_reads=1, output_writes=1, selects=1)
            tally(counts, 1, multiplies=int(height != 1.0))
            if t < x.shape[0] - 1:  # a carry from step t+1: gate, add, and alpha * du
                tally(counts, 1, selects=1, adds=1, multiplies=1)
                if reset_grad:  # the reset path: u[t] * carry, subtracted
                    tally(counts, 1, multiplies=1, adds=1, potential_reads=1)
    return counts


def brute_bias(x: torch.Tensor) -> tuple[dict, dict]:
    forward: dict[str, int] = {}
    backward: dict[str, int] = {}
    tally(forward, x.shape[2], param_reads=1)
    tally(forward, x.numel(), adds=1)
    tally(backward, x.numel(), adds=1)
    return forward, backward


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("reset_grad", "height"), [(True, 1.0), (False, 0.5)])
def test_elementwise_forward_and_backward(seed, reset_grad, height):
    spec = small_network(seed, LIFParams(reset_grad=reset_grad, height=height))
    tasks = tasks_by_phase(spec)
    gen = torch.Generator().manual_seed(seed)
    lif = spec.lif
    for layer in spec.weighted_layers[:2]:
        x = torch.randn(T, B, *layer.out_shape, generator=gen)
        fired = lif_forward_unit(x, lif.alpha, lif.v_th, lif.window, keep_potential=lif.reset_grad)
        back = lif_backward_unit(
            torch.randn_like(x), fired.extra["u"], fired.output, fired.extra["mask"],
            lif.alpha, lif.height, lif.reset_grad,
        )  # fmt: skip
        brute_fwd = brute_lif_forward(x, lif.reset_grad)
        brute_bwd = brute_lif_backward(x, lif.height, lif.reset_grad)
        assert_same(brute_fwd, fired.counts, lif_forward_counts(x.numel(), lif.reset_grad))
        formula = lif_backward_counts(T, x[0].numel(), lif.height, lif.reset_grad)
        assert_same(brute_bwd, back.counts, formula)
        if layer.batch_norm:
            gamma, beta = torch.ones(layer.out_channels), torch.zeros(layer.out_channels)
            norm = batchnorm_forward(x, gamma, beta)
            norm_back = batchnorm_backward(
                torch.randn_like(x), x, gamma, norm.extra["mean"], norm.extra["inv_std"]
            )
            channels = layer.out_channels
            assert_same(
                brute_batchnorm_forward(x),
                norm.counts,
                batchnorm_forward_counts(x.numel(), channels),
            )
            assert_same(
                brute_batchnorm_backward(x),
                norm_back.counts,
                batchnorm_backward_counts(x.numel(), channels),
            )
            unit_fwd = add_counts(norm.counts, fired.counts)
            unit_bwd = add_counts(back.counts, norm_back.counts)
            brute_all_fwd = add_counts(brute_batchnorm_forward(x), brute_fwd)
            brute_all_bwd = add_counts(brute_bwd, brute_batchnorm_backward(x))
        else:
            bias_fwd, bias_bwd = brute_bias(x)
            residual = {"adds": x.numel(), "input_reads": x.numel()}
            unit_fwd = add_counts(bias_fwd, residual, fired.counts)
            unit_bwd = add_counts(back.counts, bias_bwd)
            brute_all_fwd = add_counts(bias_fwd, residual, brute_fwd)
            brute_all_bwd = add_counts(brute_bwd, bias_bwd)
        names = set(unit_fwd) | set(tasks[(layer.name, "forward_elementwise")])
        assert_same(
            brute_all_fwd, unit_fwd, tasks[(layer.name, "forward_elementwise")], names=names
        )
        names = set(unit_bwd) | set(tasks[(layer.name, "backward_elementwise")])
        assert_same(
            brute_all_bwd, unit_bwd, tasks[(layer.name, "backward_elementwise")], names=names
        )


# --------------------------------------------------------------------------
# Pooling, loss, optimizer
# --------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_pooling(seed):
    spec = small_network(seed)
    tasks = tasks_by_phase(spec)
    gen = torch.Generator().manual_seed(seed)
    layer = next(layer for layer in spec.layers if layer.kind in ("avgpool", "maxpool"))
    x = torch.randn(T, B, *layer.in_shape, generator=gen)
    avg = layer.kind == "avgpool"
    forward = pool_forward(x, layer.kind, layer.kernel, layer.stride, layer.padding)
    dy = torch.randn_like(forward.output)
    backward = pool_backward(
        dy, layer.kind, layer.kernel, tuple(layer.in_shape), layer.stride, layer.padding,
        forward.extra.get("indices"),
    )  # fmt: skip
    (channels, height, width), (_, out_h, out_w) = layer.in_shape, layer.out_shape
    brute_fwd: dict[str, int] = {}
    hits = torch.zeros(T * B, channels, height, width, dtype=torch.int64)
    for _ in range(T * B * channels):
        for _oy in range(out_h):
            for _ox in range(out_w):
                window = layer.kernel * layer.kernel
                tally(brute_fwd, 1, input_reads=window, output_writes=1)
                tally(brute_fwd, 1, adds=(window - 1) * avg, multiplies=int(avg))
                tally(brute_fwd, 1, compares=(window - 1) * (not avg))
    for oy in range(out_h):  # which inputs each output's gradient reaches (average pooling)
        for ox in range(out_w):
            for dy_ in range(layer.kernel):
                for dx_ in range(layer.kernel):
                    y, x_ = oy * layer.stride + dy_, ox * layer.stride + dx_
                    if y < height and x_ < width:
                        hits[:, :, y, x_] += 1
    outputs = T * B * channels * out_h * out_w
    brute_bwd = {
        "multiplies": outputs if avg else 0,
        "adds": int((hits - 1).clamp(min=0).sum()) if avg else 0,  # windows tile for max
        "input_reads": outputs * (1 if avg else 2),
        "output_writes": hits.numel(),
    }
    assert_same(brute_fwd, forward.counts, pool_forward_counts(layer.kind, layer.kernel, outputs))
    formula = pool_backward_counts(layer.kind, outputs, hits.numel(), brute_bwd["adds"])
    assert_same(brute_fwd, tasks[(layer.name, "forward_elementwise")], names=brute_fwd.keys())
    assert_same(brute_bwd, backward.counts, formula, names=brute_bwd.keys())
    assert_same(brute_bwd, tasks[(layer.name, "backward_elementwise")], names=brute_bwd.keys())


@pytest.mark.parametrize("seed", SEEDS)
def test_loss(seed):
    spec = small_network(seed)
    tasks = tasks_by_phase(spec)
    gen = torch.Generator().manual_seed(seed)
    classes = spec.num_classes
    spikes = (torch.rand(T, B, classes, generator=gen) < 0.5).float()
    targets = torch.randint(0, classes, (B,), generator=gen)
    unit = loss_unit(spikes, targets).counts
    brute: dict[str, int] = {}
    for _sample in range(B):
        tally(brute, 1, compares=classes - 1, adds=classes - 1, logs=1)  # max, sum of exps
        tally(brute, 1, adds=1)  # log-sum-exp minus the target's logit
        for _value in range(classes):
            tally(brute, 1, input_reads=T, adds=T - 1, multiplies=1)  # time mean
            tally(brute, 1, adds=1, exps=1, divides=1, multiplies=1, output_writes=1)
    tally(brute, 1, adds=B - 1, multiplies=1, output_writes=1)  # batch mean of the loss
    assert_same(brute, unit, loss_counts(T, B, classes), tasks[("loss", "loss")], names=unit.keys())


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_optimizer(optimizer):
    spec = small_network(0)
    tasks = tasks_by_phase(spec, optimizer)
    parameters = sum(p.numel() for p in SpikingNetwork(spec).parameters() if p.requires_grad)
    assert parameter_count(spec) == parameters
    brute: dict[str, int] = {}
    for _ in range(parameters):
        if optimizer == "sgd":  # w -= lr * g
            tally(brute, 1, multiplies=1, adds=1, param_reads=1, input_reads=1, output_writes=1)
        else:  # m, v moving averages, bias corrections, w -= lr * m_hat / (sqrt(v_hat) + eps)
            tally(brute, 1, multiplies=6, adds=4, sqrts=1, divides=1, param_reads=1)
            tally(brute, 1, input_reads=3, output_writes=3)
    formula = optimizer_counts(float(parameters), optimizer)
    names = set(brute) | set(formula)
    assert_same(brute, formula, tasks[("optimizer", "optimizer")], names=names)
