"""The V100 baseline: hand-checkable kernel counts, roofline and power properties, measured mode."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from h2learn.baselines import (
    FUSED_LIF,
    PYTORCH_EAGER,
    V100,
    GPUModelError,
    GPUSpec,
    Kernel,
    gpu_measure,
    kernel_cost,
    measure_training_step,
    training_step_kernels,
    v100_training_step,
)
from h2learn.baselines.gpu import arithmetic_floor_fp32_flop_energy_pj
from h2learn.errors import H2LearnError
from h2learn.spec import FC, Conv, LIFParams, Pool, build_spec, expand


def two_fc(
    batch: int = 8,
    steps: int = 3,
    hidden: int = 32,
    reset_grad: bool = True,
    input_kind: str = "image",
    height: float = 1.0,
):
    """input 64 -> fc1 (hidden, fires) -> fc2 (10, current read-out)."""
    return expand(
        "two-fc",
        (64,),
        10,
        [FC(hidden), FC(10, fires=False)],
        time_steps=steps,
        batch_size=batch,
        lif=LIFParams(reset_grad=reset_grad, height=height),
        input_kind=input_kind,
    )


def rows(result, layer: str, kernel: str):
    return [k for k in result.kernels if k.layer == layer and k.kernel == kernel]


# -- hand-checkable cases -----------------------------------------------------------------------


def test_fc_gemm_flops_are_2btio_for_forward_dgrad_and_wgrad():
    batch, steps = 8, 3
    result = v100_training_step(two_fc(batch, steps, input_kind="events"))
    expected = 2 * batch * steps * 32 * 10
    for name in ("fc_forward", "fc_dgrad", "fc_wgrad"):
        (row,) = rows(result, "fc2", name)
        assert row.flops == expected
    (fwd,) = rows(result, "fc1", "fc_forward")
    (wgrad,) = rows(result, "fc1", "fc_wgrad")
    assert fwd.flops == wgrad.flops == 2 * batch * steps * 64 * 32


# -- the time-invariant first layer and compact max-pooling indices (h2learn.snn.layers) -------


def kernel_row(result, layer: str, kernel: str):
    (row,) = rows(result, layer, kernel)
    return row


def test_repeated_image_first_layer_computes_once_per_sample():
    # cifar-vgg conv1: 3x32x32 -> 128x32x32, 3x3 kernel: 128*32*32 outputs x 27 MACs per sample.
    image = build_spec("cifar-vgg")
    events = image.with_network(input_kind="events")
    steps, batch = image.time_steps, image.batch_size
    macs_per_sample = 128 * 32 * 32 * 3 * 3 * 3
    once, every_step = v100_training_step(image), v100_training_step(events)
    for kernel in ("conv_forward", "conv_wgrad"):
        assert kernel_row(once, "conv1", kernel).flops == 2 * batch * macs_per_sample
        assert kernel_row(every_step, "conv1", kernel).flops == 2 * steps * batch * macs_per_sample
    # operands: input, weights, output; batch norm on the same B (or T*B) rows
    outputs, weights = 128 * 32 * 32, 128 * 27
    assert kernel_row(once, "conv1", "conv_forward").bytes == 4 * (
        batch * 3 * 32 * 32 + weights + batch * outputs
    )
    assert kernel_row(once, "conv1", "bn_normalize").bytes == 4 * 2 * batch * outputs
    assert kernel_row(every_step, "conv1", "bn_normalize").bytes == 4 * 2 * steps * batch * outputs
    assert kernel_row(once, "conv1", "bn_backward_elemt").bytes == 4 * 3 * batch * outputs
    # the image is copied once per sample to channels-last, events once per step
    assert kernel_row(once, "conv1", "input_to_channels_last").bytes == 4 * 2 * batch * 3 * 1024
    assert rows(once, "conv1", "input_to_time_major") == []
    assert kernel_row(every_step, "conv1", "input_to_time_major").bytes == (
        4 * 2 * steps * batch * 3 * 1024
    )
    # running statistics kept by hand: 7 per-channel kernels, only when running once
    stats = [k for k in once.kernels if k.layer == "conv1" and k.kernel.startswith("bn_once_")]
    assert len(stats) == 7 and all(k.bytes <= 3 * 4 * 128 for k in stats)
    assert not any(k.kernel.startswith("bn_once_") for k in every_step.kernels)
    # layers fed spikes run on every step either way
    for result in (once, every_step):
        conv2 = kernel_row(result, "conv2", "conv_forward")
        assert conv2.flops == 2 * steps * batch * 128 * 32 * 32 * 128 * 9
    assert once.flops < every_step.flops and once.bytes < every_step.bytes


def test_first_layer_with_batch_norm_over_one_value_runs_every_step():
    # WeightedBlock._runs_once: batch norm must not see one value per channel (B * L == 1).
    spec = expand("bn-fc", (64,), 10, [FC(32, batch_norm=True), FC(10, fires=False)], batch_size=1)
    steps = spec.time_steps
    result = v100_training_step(spec)
    assert kernel_row(result, "fc1", "fc_forward").flops == 2 * steps * 64 * 32
    assert kernel_row(result, "fc1", "input_to_time_major").bytes == 4 * 2 * steps * 64
    assert not any(k.kernel.startswith("bn_once_") for k in result.kernels)
    wider = v100_training_step(dataclasses.replace(spec, batch_size=2))
    assert kernel_row(wider, "fc1", "fc_forward").flops == 2 * 2 * 64 * 32


def test_non_firing_once_layer_sums_its_gradient_over_time():
    # fc1 does not fire: its current stays expanded over T and autograd sums its gradient.
    spec = expand("lin", (64,), 10, [FC(10, fires=False)], time_steps=5, batch_size=4)
    result = v100_training_step(spec)
    assert kernel_row(result, "fc1", "fc_forward").flops == 2 * 4 * 64 * 10
    total = kernel_row(result, "fc1", "expand_backward_sum_over_t")
    assert total.bytes == 4 * (5 + 1) * 4 * 10  # read T*B*10, write B*10
    # a firing fc1 (two_fc, batch 8): the LIF hands back the summed gradient itself
    fc = v100_training_step(two_fc())
    for kernel in ("fc_forward", "fc_wgrad"):
        assert kernel_row(fc, "fc1", kernel).flops == 2 * 8 * 64 * 32
    assert rows(fc, "fc1", "expand_backward_sum_over_t") == []


def test_max_pooling_keeps_16_bit_indices_for_backward():
    spec = build_spec("fmnist-conv")  # maxpool1: 32x28x28 -> 32x14x14, 2x2 windows
    outputs = spec.time_steps * spec.batch_size * 32 * 14 * 14
    result = v100_training_step(spec)
    # PyTorch's kernel writes int64 indices next to its float output ...
    forward = kernel_row(result, "maxpool1", "maxpool_forward")
    assert forward.bytes == 4 * (4 * outputs + outputs) + 8 * outputs
    # ... h2learn narrows them to int16 (2 bytes per output) for backward ...
    assert kernel_row(result, "maxpool1", "maxpool_indices_to_compact").bytes == (8 + 2) * outputs
    # ... and widens them again for the scatter, which reads int64
    assert kernel_row(result, "maxpool1", "maxpool_indices_to_int64").bytes == (2 + 8) * outputs
    scatter = kernel_row(result, "maxpool1", "maxpool_backward")
    assert scatter.bytes == 4 * 2 * outputs + 8 * outputs


def test_compact_indices_only_where_h2learn_keeps_them():
    # overlapping windows (AlexNet's 3x3, stride 2): PyTorch's own pooling, int64 indices
    alexnet = v100_training_step(build_spec("alexnet"))
    assert not any("indices" in k.kernel for k in alexnet.kernels)
    assert rows(alexnet, "maxpool1", "maxpool_backward")
    # a plane above 2**15 positions keeps int32 indices
    big = expand(
        "big", (2, 256, 256), 10, [Conv(4), Pool("maxpool", 2), FC(10, fires=False)], batch_size=2
    )
    outputs = big.time_steps * 2 * 4 * 128 * 128
    result = v100_training_step(big)
    assert kernel_row(result, "maxpool1", "maxpool_indices_to_compact").bytes == (8 + 4) * outputs
    # pooling the image itself: no gradient, no kept indices, once per sample
    first = expand("pool-first", (1, 8, 8), 10, [Pool("maxpool", 2), Conv(4), FC(10)], batch_size=3)
    result = v100_training_step(first)
    assert not any("indices" in k.kernel for k in result.kernels)
    pool = kernel_row(result, "maxpool1", "maxpool_forward")
    assert pool.bytes == 4 * 3 * (64 + 16) + 8 * 3 * 16
    assert kernel_row(result, "conv1", "conv_forward").flops == 2 * 3 * 4 * 16 * 9


def test_encoding_layer_has_no_input_gradient():
    result = v100_training_step(two_fc())
    assert rows(result, "fc1", "fc_dgrad") == []
    assert len(rows(result, "fc2", "fc_dgrad")) == 1


def test_gemm_bytes_are_the_minimum_traffic():
    batch, steps = 8, 3
    result = v100_training_step(two_fc(batch, steps))
    (row,) = rows(result, "fc2", "fc_forward")
    n = batch * steps
    assert row.bytes == 4 * (n * 32 + 32 * 10 + n * 10)


# -- the LIF neuron's kernels (h2learn.snn.neuron._LIFFunction) -----------------------------------
#
# The ATen ops torch.profiler records for one lif(...) forward and backward (CPU, T = 4),
# grouped by the steps they run at.  Forward: "first" is t = 0, "later" t >= 1.  Backward
# runs t = T-1 down to 0: "first" is t = T-1, "later" the other T - 1 steps.  Allocations
# and views (empty_strided, empty_like, select, detach) are not kernels.
PROFILED_FORWARD = {
    "every": ("gt",),  # spikes[t] = u > v_th
    "first": ("copy_",),  # u[0] = x[0]
    "later": ("le", "addcmul"),  # keep = u[t-1] <= v_th; u[t] = x[t] + alpha * u[t-1] * keep
}
PROFILED_FORWARD_NO_RESET_GRAD = ("sub", "abs_", "lt_", "mul_", "add_", "copy_")  # every step
PROFILED_BACKWARD = {
    True: {  # reset_grad on
        "every": ("sub", "abs_", "lt_"),  # h(u[t]) from u
        "first": ("mul",),  # du = h * g
        "later": ("addcmul", "mul_", "le", "addcmul"),
    },
    False: {
        "every": ("ge",),  # h from the mask bit
        "first": ("mul",),
        "later": ("mul", "bitwise_and", "copy_", "neg_", "add_", "addcmul"),
    },
}
PROFILED_BACKWARD_HEIGHT = ("mul_",)  # every step, when height != 1
PROFILED_BACKWARD_REPEATED = {"first": ("copy_",), "later": ("add_",)}  # lif(x, p, steps=T)

# The model's kernel names and the ATen op each stands for.
ATEN_OP = {
    "lif_copy_u0": "copy_",
    "lif_gt_spike": "gt",
    "lif_le_keep": "le",
    "lif_addcmul_charge": "addcmul",
    "lif_sub_vth": "sub",
    "lif_abs": "abs_",
    "lif_lt_window": "lt_",
    "lif_mul_mask_bit": "mul_",
    "lif_add_spike_bit": "add_",
    "lif_copy_state_to_uint8": "copy_",
    "lif_ge_mask_bit": "ge",
    "lif_mul_height": "mul_",
    "lif_mul_grad_surrogate": "mul",
    "lif_addcmul_reset": "addcmul",
    "lif_mul_surrogate": "mul_",
    "lif_and_spike_bit": "bitwise_and",
    "lif_copy_spike_bit_to_float": "copy_",
    "lif_neg_spike": "neg_",
    "lif_add_one": "add_",
    "lif_addcmul_carry": "addcmul",
    "lif_copy_total": "copy_",
    "lif_add_total": "add_",
}


def profiled_launches(steps: int, reset_grad: bool, repeated: bool, height: float):
    """``(forward, backward)`` LIF launches of one layer: every * T + later * (T-1) + first."""
    every = len(PROFILED_FORWARD["every"])
    if not reset_grad:
        every += len(PROFILED_FORWARD_NO_RESET_GRAD)
    forward = every * steps + len(PROFILED_FORWARD["later"]) * (steps - 1) + 1
    back = PROFILED_BACKWARD[reset_grad]
    every = len(back["every"]) + (len(PROFILED_BACKWARD_HEIGHT) if height != 1.0 else 0)
    later, first = len(back["later"]), len(back["first"])
    if repeated:
        later += len(PROFILED_BACKWARD_REPEATED["later"])
        first += len(PROFILED_BACKWARD_REPEATED["first"])
    return forward, every * steps + later * (steps - 1) + first


def lif_rows(result_or_kernels, layer: str, phase: str):
    kernels = getattr(result_or_kernels, "kernels", result_or_kernels)
    return [
        k for k in kernels if k.layer == layer and k.phase == phase and k.kernel.startswith("lif_")
    ]


@pytest.mark.parametrize("steps", [1, 2, 5])
@pytest.mark.parametrize("reset_grad", [True, False])
@pytest.mark.parametrize("input_kind", ["events", "image"])
@pytest.mark.parametrize("height", [1.0, 0.5])
def test_lif_launches_per_layer_follow_the_profiled_loop(steps, reset_grad, input_kind, height):
    # An image is repeated over T: fc1 runs once per sample and calls lif(z, p, steps=T).
    spec = two_fc(steps=steps, reset_grad=reset_grad, input_kind=input_kind, height=height)
    kernels = training_step_kernels(spec)
    repeated = input_kind == "image" and steps > 1
    forward, backward = profiled_launches(steps, reset_grad, repeated, height)
    assert sum(k.launches for k in lif_rows(kernels, "fc1", "forward")) == forward
    assert sum(k.launches for k in lif_rows(kernels, "fc1", "backward")) == backward
    assert not [k for k in kernels if k.layer == "fc2" and k.kernel.startswith("lif_")]


def test_lif_launches_closed_form_for_the_default_setting():
    # reset_grad on, no repetition: forward T + 2 (T-1) + 1 = 3T - 1,
    # backward 3T + 4 (T-1) + 1 = 7T - 3.
    for steps in (1, 4, 6):
        assert profiled_launches(steps, True, False, 1.0) == (3 * steps - 1, 7 * steps - 3)
    # without the reset path 9T - 1 and 7T - 5; a repeated input adds T to backward.
    assert profiled_launches(4, False, False, 1.0) == (35, 23)
    assert profiled_launches(4, True, True, 1.0) == (11, 29)


def test_lif_kernels_move_one_step_at_a_time():
    # float32, reset_grad on, events: every LIF kernel runs on one step (M = B * 32 elements).
    batch, steps, hidden = 8, 5, 32
    result = v100_training_step(two_fc(batch, steps, hidden, input_kind="events"))
    m = batch * hidden
    forward = lif_rows(result, "fc1", "forward")
    # copy 2, gt 2 per step, then per later step addcmul 3 reads + 1 write and le 2 values
    values = 2 + 2 * steps + (4 + 2) * (steps - 1)
    assert sum(k.bytes for k in forward) == 4 * m * values
    backward = lif_rows(result, "fc1", "backward")
    # sub/abs/lt 2 each per step; last step mul 3; later: addcmul 4, mul_ 3, le 2, addcmul 4
    values = 6 * steps + 3 + (4 + 3 + 2 + 4) * (steps - 1)
    assert sum(k.bytes for k in backward) == 4 * m * values
    (charge,) = rows(result, "fc1", "lif_addcmul_charge")
    assert charge.launches == steps - 1 and charge.bytes == 4 * 4 * m * (steps - 1)


def _profile_lif(steps: int, reset_grad: bool, repeated: bool, height: float):
    """Top-level ATen ops of one lif(...) forward and backward on CPU, as two Counters."""
    from collections import Counter

    import torch
    from torch.profiler import ProfilerActivity, profile

    from h2learn.snn.kernels import kernel_backend
    from h2learn.snn.neuron import lif

    not_kernels = {
        "aten::empty",
        "aten::empty_like",
        "aten::empty_strided",
        "aten::select",
        "aten::as_strided",
        "aten::detach",
        "aten::alias",
        "aten::view",
    }

    def top_level(prof) -> Counter:
        return Counter(
            e.name.removeprefix("aten::")
            for e in prof.events()
            if e.name.startswith("aten::")
            and e.name not in not_kernels
            and not (e.cpu_parent is not None and e.cpu_parent.name.startswith("aten::"))
        )

    params = LIFParams(reset_grad=reset_grad, height=height)
    shape = (3, 5) if repeated else (steps, 3, 5)
    x = torch.rand(shape, requires_grad=True)
    grad = torch.rand(steps, 3, 5)
    # On a GPU the neuron runs as PyTorch operators (the fused C++ kernel is CPU-only):
    # profile that path.
    with kernel_backend("torch"):
        with profile(activities=[ProfilerActivity.CPU]) as forward:
            y = lif(x, params, steps=steps if repeated else None)
        with profile(activities=[ProfilerActivity.CPU]) as backward:
            torch.autograd.backward(y, grad)
    return top_level(forward), top_level(backward)


@pytest.mark.parametrize(
    ("reset_grad", "repeated", "height"),
    [(True, False, 1.0), (False, False, 1.0), (True, True, 1.0), (False, True, 0.5)],
)
def test_lif_kernel_list_matches_torch_profiler(reset_grad, repeated, height):
    """The model's LIF kernels are the ATen ops h2learn.snn.neuron really runs, step by step."""
    from collections import Counter

    steps = 4
    profiled_forward, profiled_backward = _profile_lif(steps, reset_grad, repeated, height)
    assert (sum(profiled_forward.values()), sum(profiled_backward.values())) == (
        profiled_launches(steps, reset_grad, repeated, height)
    )
    kind = "image" if repeated else "events"
    spec = two_fc(steps=steps, reset_grad=reset_grad, input_kind=kind, height=height)
    kernels = training_step_kernels(spec, implementation=PYTORCH_EAGER)
    for phase, profiled in (("forward", profiled_forward), ("backward", profiled_backward)):
        modelled: Counter = Counter()
        for k in lif_rows(kernels, "fc1", phase):
            modelled[ATEN_OP[k.kernel]] += k.launches
        assert modelled == profiled, phase


def test_fused_lif_launches_one_kernel_per_layer_and_direction():
    eager = v100_training_step(two_fc(steps=6))
    fused = v100_training_step(two_fc(steps=6), implementation=FUSED_LIF)
    fused_lif = [k for k in fused.kernels if k.kernel.startswith("lif_")]
    assert sum(k.launches for k in fused_lif) == 2
    assert fused.launches < eager.launches
    assert fused.seconds < eager.seconds


def test_compute_heavy_conv_is_compute_bound_and_lif_steps_are_memory_bound():
    result = v100_training_step(build_spec("cifar-vgg"))
    (conv,) = rows(result, "conv2", "conv_forward")
    assert conv.bound == "compute"
    (lif,) = rows(result, "conv2", "lif_addcmul_charge")
    assert lif.bound == "memory"


def test_roofline_time_of_a_single_kernel():
    gemm = Kernel("x", "forward", "gemm", "gemm", flops=1e12, bytes=1e6)
    cost = kernel_cost(gemm, V100, "float32")
    rate = V100.peak_fp32_flops * V100.gemm_efficiency_cuda_cores
    assert cost.bound == "compute"
    assert cost.seconds == pytest.approx(1e12 / rate + V100.launch_overhead_seconds)
    stream = Kernel("x", "forward", "copy", "elementwise", flops=1e6, bytes=1e9)
    cost = kernel_cost(stream, V100, "float32")
    bandwidth = V100.dram_bandwidth_bytes_per_s * V100.dram_bandwidth_efficiency
    assert cost.bound == "memory"
    assert cost.seconds == pytest.approx(1e9 / bandwidth + V100.launch_overhead_seconds)


def test_launch_overhead_is_counted_once_per_kernel_launch():
    spec = build_spec("fmnist-conv")
    base = v100_training_step(spec)
    slower = v100_training_step(spec, gpu=V100.replace(launch_overhead_seconds=15e-6))
    assert slower.seconds - base.seconds == pytest.approx(base.launches * 10e-6)
    roofline = sum(max(k.compute_seconds, k.memory_seconds) for k in base.kernels)
    assert base.seconds == pytest.approx(roofline + base.launches * V100.launch_overhead_seconds)
    repeated = Kernel("x", "forward", "k", "elementwise", flops=0, bytes=0, launches=7)
    assert kernel_cost(repeated, V100, "float32").seconds == pytest.approx(
        7 * V100.launch_overhead_seconds
    )


def test_aggregations_add_up_to_the_totals():
    result = v100_training_step(build_spec("dvs-cifar10"))
    for groups in (result.by_layer(), result.by_phase(), result.by_layer_phase()):
        assert sum(g["seconds"] for g in groups.values()) == pytest.approx(result.seconds)
        assert sum(g["energy_j"] for g in groups.values()) == pytest.approx(result.energy_j)
    assert set(result.by_phase()) == {"forward", "backward", "weight_gradient", "optimizer"}
    data = json.loads(json.dumps(result.to_dict()))
    assert data["totals"]["area_mm2"] == 815
    assert len(data["kernels"]) == len(result.kernels)


def test_reset_grad_off_changes_the_lif_kernels():
    on = training_step_kernels(two_fc(reset_grad=True))
    off = training_step_kernels(two_fc(reset_grad=False))
    assert any(k.kernel == "lif_addcmul_reset" for k in on)
    assert not any(k.kernel == "lif_addcmul_reset" for k in off)
    assert any(k.kernel == "lif_copy_state_to_uint8" for k in off)
    assert not any(k.kernel == "lif_copy_state_to_uint8" for k in on)
    assert any(k.kernel == "lif_and_spike_bit" for k in off)


def test_residual_network_accumulates_gradients():
    spec = expand(
        "res",
        (4, 8, 8),
        10,
        [Conv(8), Conv(8), Conv(8, source=1, residual=0), FC(10, fires=False)],
        time_steps=2,
        batch_size=2,
    )
    result = v100_training_step(spec)
    assert rows(result, "conv1", "grad_accumulate")
    assert rows(result, "conv3", "residual_add")


# -- properties -----------------------------------------------------------------------------------


def test_doubling_the_batch_roughly_doubles_time_and_energy_for_large_layers():
    small = v100_training_step(build_spec("cifar-vgg", batch_size=64))
    large = v100_training_step(build_spec("cifar-vgg", batch_size=128))
    assert 1.8 < large.seconds / small.seconds < 2.05
    assert 1.8 < large.energy_j / small.energy_j < 2.05


def test_more_time_steps_take_longer():
    times = [v100_training_step(build_spec("dvs-gesture", time_steps=t)).seconds for t in (2, 4, 8)]
    assert times[0] < times[1] < times[2]


@settings(max_examples=25, deadline=None)
@given(
    batch=st.integers(1, 64),
    steps=st.integers(1, 12),
    hidden=st.integers(1, 512),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
)
def test_energy_is_at_least_static_power_times_time_and_power_at_most_tdp(
    batch, steps, hidden, dtype
):
    result = v100_training_step(two_fc(batch, steps, hidden), dtype=dtype)
    assert result.energy_j >= V100.static_power_w * result.seconds * (1 - 1e-12)
    assert result.power_w <= V100.tdp_w * (1 + 1e-12)
    assert result.seconds >= result.compute_floor_seconds
    for k in result.kernels:
        assert k.energy_j <= V100.tdp_w * k.seconds * (1 + 1e-12)


def test_cifar_vgg_step_time_lies_between_the_compute_floor_and_100x_it():
    # Floor: every FLOP at the datasheet peak with no memory traffic or launch cost.
    # 100x the floor would mean the GPU idles 99% of the step, which a step of large
    # convolutions on the merged T*B batch cannot do; the modelled step must lie between.
    result = v100_training_step(build_spec("cifar-vgg"))  # T=6, batch 16
    floor = result.flops / V100.peak_fp32_flops
    assert floor == pytest.approx(result.compute_floor_seconds)
    assert floor < result.seconds < 100 * floor
    assert 0.3 * V100.tdp_w < result.power_w <= V100.tdp_w


def test_float16_uses_tensor_cores_and_is_faster():
    spec = build_spec("cifar-vgg")
    assert v100_training_step(spec, dtype="float16").seconds < v100_training_step(spec).seconds


def test_derived_flop_energy_lies_far_above_the_arithmetic_floor():
    derived = V100.flop_energy_pj("gemm", "float32")
    assert derived == pytest.approx(
        (V100.tdp_w - V100.static_power_w) / V100.peak_fp32_flops * 1e12
    )
    assert 0.2 < arithmetic_floor_fp32_flop_energy_pj() < 0.5
    assert derived > 10 * arithmetic_floor_fp32_flop_energy_pj()
    assert V100.replace(fp32_flop_energy_pj=5.0).flop_energy_pj("gemm", "float32") == 5.0


def test_v100_preset_is_self_consistent_and_every_field_has_a_source():
    peak = V100.sm_count * 64 * 2 * V100.boost_clock_hz
    assert peak == pytest.approx(V100.peak_fp32_flops, rel=0.01)
    assert V100.die_area_mm2 == 815
    for name, source in GPUSpec.sources().items():
        assert source, f"{name} has no source"


# -- bad inputs -----------------------------------------------------------------------------------


def one_line(exc: BaseException) -> bool:
    return "\n" not in str(exc) and isinstance(exc, H2LearnError)


def test_unknown_dtype_is_a_one_line_error():
    with pytest.raises(GPUModelError) as info:
        v100_training_step(two_fc(), dtype="int8")
    assert one_line(info.value) and "float32" in str(info.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"peak_fp32_flops": 0},
        {"dram_bandwidth_bytes_per_s": -1.0},
        {"tdp_w": float("nan")},
        {"gemm_efficiency_cuda_cores": 1.5},
        {"static_power_w": 400.0},
        {"launch_overhead_seconds": -1e-6},
        {"no_such_field": 1},
        {"name": " "},
        {"tdp_w": None},
    ],
)
def test_invalid_gpu_fields_are_one_line_errors(changes):
    with pytest.raises(GPUModelError) as info:
        V100.replace(**changes)
    assert one_line(info.value)


def test_non_spec_input_is_a_one_line_error():
    with pytest.raises(GPUModelError) as info:
        v100_training_step("cifar-vgg")  # type: ignore[arg-type]
    assert one_line(info.value)


# -- measured mode ---------------------------------------------------------------------------------


def test_measured_mode_without_a_gpu_returns_none(monkeypatch, caplog):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with caplog.at_level("WARNING"):
        assert measure_training_step("digits-mlp", batch_size=4, steps=1, warmup=0) is None
    assert "CUDA" in caplog.text


def test_measured_mode_rejects_bad_arguments_in_one_line():
    with pytest.raises(H2LearnError) as info:
        measure_training_step("digits-mlp", batch_size=0)
    assert one_line(info.value)
    with pytest.raises(H2LearnError):
        measure_training_step("no-such-model", batch_size=4)


def test_measure_command_prints_json_without_a_gpu(monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_measure.main(["--model", "digits-mlp", "--batch-size", "4"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["available"] is False and data["reason"]
    assert math.isfinite(data["modelled_v100"]["seconds"])
