"""The V100 model's numerics knob: fp32 (default, unchanged) and fp16-tensor-core (PyTorch AMP).

Hand computations use the datasheet and cited figures as literals (125 TFLOP/s
tensor-core peak at 0.66 efficiency, 15.7 TFLOP/s FP32, 900 GB/s at 0.85,
5 us per launch, 40 W static, 300 W TDP, 31.2 pJ per DRAM byte), so a
changed default or a changed formula shows here.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import h2learn.baselines.gpu as gpu_package
from h2learn.baselines.gpu import (
    FP16_TENSOR_CORE,
    FP32,
    NUMERICS,
    V100,
    GPUModelError,
    Kernel,
    Numerics,
    kernel_cost,
    training_step_kernels,
    v100_training_step,
)
from h2learn.errors import H2LearnError
from h2learn.spec import FC, build_spec, expand

AMP = "fp16-tensor-core"
TENSOR_RATE = 125e12 * 0.66  # V100 datasheet peak x Markidis et al. 2018 efficiency
FP32_RATE = 15.7e12 * 0.76
BANDWIDTH = 900e9 * 0.85
LAUNCH = 5e-6
STATIC_W, TDP_W, DRAM_J_PER_BYTE = 40.0, 300.0, 31.2e-12


def two_fc(batch: int = 8, steps: int = 3, input_kind: str = "events"):
    """input 64 -> fc1 (32, fires, bias) -> fc2 (10, current read-out, bias)."""
    return expand(
        "two-fc",
        (64,),
        10,
        [FC(32), FC(10, fires=False)],
        time_steps=steps,
        batch_size=batch,
        input_kind=input_kind,
    )


def row(result, layer: str, kernel: str):
    (found,) = [k for k in result.kernels if k.layer == layer and k.kernel == kernel]
    return found


def hand_cost(flops: float, nbytes: float, rate: float, flop_j: float) -> tuple[float, float]:
    """``(seconds, energy_j)`` of one launch by the roofline and power formulas, by hand."""
    seconds = max(flops / rate, nbytes / BANDWIDTH) + LAUNCH
    energy = STATIC_W * seconds + flops * flop_j + nbytes * DRAM_J_PER_BYTE
    return seconds, min(energy, TDP_W * seconds)


# -- the default is today's model ------------------------------------------------------------------


@pytest.mark.parametrize("model", ["cifar-vgg", "fmnist-conv", "resnet"])
def test_fp32_numerics_is_the_default_model_exactly(model):
    spec = build_spec(model)
    default = v100_training_step(spec)
    for numerics in ("fp32", FP32):
        named = v100_training_step(spec, numerics=numerics)
        assert named.kernels == default.kernels
        assert named.numerics == default.numerics == "fp32"
    assert all(k.dtype == "float32" for k in default.kernels)


def test_one_dtype_throughout_is_a_uniform_numerics():
    spec = build_spec("fmnist-conv")
    half = v100_training_step(spec, dtype="float16")
    assert half.numerics == "fp16"
    uniform = v100_training_step(spec, numerics=Numerics.uniform("float16"))
    assert uniform.kernels == half.kernels
    casts = ("_to_float16", "_to_float32", "_to_float64")
    assert not any(k.kernel.endswith(casts) or "grad_scaler" in k.kernel for k in half.kernels)


# -- fp16-tensor-core by hand ----------------------------------------------------------------------


def test_amp_gemm_time_and_energy_by_hand_compute_bound():
    spec = build_spec("cifar-vgg")  # conv2: 128 -> 128 channels, 3x3, 32x32, on T*B rows
    n = spec.time_steps * spec.batch_size
    flops = 2 * n * 128 * 32 * 32 * 128 * 9
    nbytes = 2 * (n * 128 * 1024 + 128 * 128 * 9 + n * 128 * 1024)  # fp16 in, weights, out
    conv = row(v100_training_step(spec, numerics=AMP), "conv2", "conv_forward")
    assert (conv.flops, conv.bytes, conv.dtype, conv.bound) == (flops, nbytes, "float16", "compute")
    seconds, energy = hand_cost(flops, nbytes, TENSOR_RATE, (TDP_W - STATIC_W) / 125e12)
    assert conv.seconds == pytest.approx(seconds, rel=1e-12)
    assert conv.energy_j == pytest.approx(energy, rel=1e-12)
    fp32 = row(v100_training_step(spec), "conv2", "conv_forward")
    assert fp32.seconds == pytest.approx(hand_cost(flops, 2 * nbytes, FP32_RATE, 0)[0], rel=1e-12)


def test_amp_gemm_time_by_hand_memory_bound():
    batch, steps = 8, 3
    n = batch * steps
    flops = 2 * n * 32 * 10
    nbytes = 2 * (n * 32 + 32 * 10 + n * 10)
    fc2 = row(v100_training_step(two_fc(batch, steps), numerics=AMP), "fc2", "fc_forward")
    assert (fc2.flops, fc2.bytes, fc2.bound) == (flops, nbytes, "memory")
    seconds, energy = hand_cost(flops, nbytes, TENSOR_RATE, (TDP_W - STATIC_W) / 125e12)
    assert fc2.seconds == pytest.approx(seconds, rel=1e-12)
    assert fc2.energy_j == pytest.approx(energy, rel=1e-12)


def test_amp_element_wise_kernels_use_the_dtype_autocast_leaves_them_in():
    batch, steps = 8, 3
    m = batch * 32  # one step of fc1
    amp = v100_training_step(two_fc(batch, steps), numerics=AMP)
    fp32 = v100_training_step(two_fc(batch, steps))
    # LIF charge (addcmul: 3 reads, 1 write per element, T - 1 steps): float16 activations
    charge = row(amp, "fc1", "lif_addcmul_charge")
    assert (charge.bytes, charge.dtype) == (2 * 4 * m * (steps - 1), "float16")
    assert row(fp32, "fc1", "lif_addcmul_charge").bytes == 2 * charge.bytes
    # log_softmax and nll_loss autocast to float32; the time mean stays float16
    assert row(amp, "loss", "log_softmax").bytes == 4 * 2 * batch * 10
    assert row(amp, "loss", "readout_mean_over_t").bytes == 2 * (steps + 1) * batch * 10
    # Adam on the float32 master parameters: as in fp32
    parameters = 64 * 32 + 32 + 32 * 10 + 10
    assert row(amp, "optimizer", "adam_lerp_exp_avg").bytes == 4 * 3 * parameters
    assert row(amp, "optimizer", "adam_lerp_exp_avg") == row(fp32, "optimizer", "adam_lerp_exp_avg")
    # the event input arrives in float32 and is copied to time-major in float32
    assert row(amp, "fc1", "input_to_time_major").bytes == 4 * 2 * n_input(batch, steps)


def n_input(batch: int, steps: int) -> int:
    return batch * steps * 64


def test_amp_adds_the_casts_and_loss_scaling_kernels():
    batch, steps = 8, 3
    amp = v100_training_step(two_fc(batch, steps), numerics=AMP)
    fp32 = v100_training_step(two_fc(batch, steps))
    fp32_names = {k.kernel for k in fp32.kernels}
    extra = [k for k in amp.kernels if k.kernel not in fp32_names]
    expected = {
        ("fc1", "forward", "input_to_float16"): (4 + 2) * n_input(batch, steps),
        ("fc1", "forward", "weight_to_float16"): (4 + 2) * 64 * 32,
        ("fc1", "forward", "bias_to_float16"): (4 + 2) * 32,
        ("fc2", "forward", "weight_to_float16"): (4 + 2) * 32 * 10,
        ("fc2", "forward", "bias_to_float16"): (4 + 2) * 10,
        ("fc1", "weight_gradient", "weight_grad_to_float32"): (2 + 4) * 64 * 32,
        ("fc1", "weight_gradient", "bias_grad_to_float32"): (2 + 4) * 32,
        ("fc2", "weight_gradient", "weight_grad_to_float32"): (2 + 4) * 32 * 10,
        ("fc2", "weight_gradient", "bias_grad_to_float32"): (2 + 4) * 10,
        ("loss", "forward", "readout_to_float32"): (2 + 4) * batch * 10,
        ("loss", "backward", "readout_grad_to_float16"): (4 + 2) * batch * 10,
        ("loss", "forward", "grad_scaler_scale_loss"): 4 * 2,
        ("loss", "backward", "grad_scaler_scale_grad_seed"): 4 * 2,
        ("optimizer", "optimizer", "grad_scaler_inv_scale_to_float64"): 4 * 2,
        ("optimizer", "optimizer", "grad_scaler_inv_scale_reciprocal"): 4 * 2,
        ("optimizer", "optimizer", "grad_scaler_inv_scale_to_float32"): 4 * 2,
        ("optimizer", "optimizer", "grad_scaler_found_inf_fill"): 4 * 1,
        ("optimizer", "optimizer", "grad_scaler_unscale_and_check"): 4 * 2 * 2410,
        ("optimizer", "optimizer", "grad_scaler_update_scale"): 4 * 5,
    }
    assert {(k.layer, k.phase, k.kernel): k.bytes for k in extra} == expected
    assert all(k.launches == 1 for k in extra)  # 4 tensors, 2410 elements: one foreach chunk
    assert amp.launches == fp32.launches + len(expected)
    # the same kernel names in launch order otherwise
    assert [k.kernel for k in amp.kernels if k.kernel in fp32_names] == [
        k.kernel for k in fp32.kernels
    ]


def test_amp_first_layer_of_an_image_model_casts_its_image_once_per_sample():
    spec = build_spec("cifar-vgg")  # conv1 runs once per sample on the B images
    amp = v100_training_step(spec, numerics=AMP)
    cast = row(amp, "conv1", "input_to_float16")
    assert cast.bytes == (4 + 2) * spec.batch_size * 3 * 32 * 32
    assert row(amp, "conv1", "input_to_channels_last").bytes == 4 * 2 * spec.batch_size * 3 * 1024
    assert not [k for k in amp.kernels if k.layer == "conv2" and k.kernel.startswith("input_")]
    # batch norm (no bias): only the weight is cast
    assert not [k for k in amp.kernels if k.kernel == "bias_to_float16" and k.layer == "conv2"]


def test_amp_copies_of_a_time_invariant_activation_are_float16():
    # fc1 runs once per sample and does not fire: its current stays time-invariant.  fc2's
    # batch norm would see one value per channel on B = 1 row, so fc2 runs on every step and
    # materialises the T copies of fc1's (float16) current; only fc1 reads the float32 input.
    steps = 4
    spec = expand(
        "invariant",
        (64,),
        10,
        [FC(32, fires=False), FC(16, batch_norm=True), FC(10, fires=False)],
        time_steps=steps,
        batch_size=1,
    )
    amp = v100_training_step(spec, numerics=AMP)
    copy = row(amp, "fc2", "input_to_time_major")
    assert (copy.bytes, copy.dtype) == (2 * 2 * steps * 32, "float16")
    assert row(amp, "fc1", "input_to_float16").bytes == (4 + 2) * 64
    assert not [k for k in amp.kernels if k.kernel == "input_to_float16" and k.layer != "fc1"]
    assert row(v100_training_step(spec), "fc2", "input_to_time_major").bytes == 2 * copy.bytes


def test_amp_compute_floor_puts_gemms_at_the_tensor_core_peak():
    result = v100_training_step(build_spec("fmnist-conv"), numerics=AMP)
    gemm = sum(k.flops for k in result.kernels if k.engine == "gemm")
    other = sum(k.flops for k in result.kernels if k.engine != "gemm")
    assert result.compute_floor_seconds == pytest.approx(gemm / 125e12 + other / 15.7e12)
    assert {k.dtype for k in result.kernels if k.engine == "gemm"} == {"float16"}


def test_amp_lies_between_pure_half_and_fp32():
    spec = build_spec("cifar-vgg")
    fp32, amp = v100_training_step(spec), v100_training_step(spec, numerics=AMP)
    half = v100_training_step(spec, dtype="float16")
    assert half.seconds < amp.seconds < fp32.seconds
    assert half.energy_j < amp.energy_j < fp32.energy_j
    assert amp.bytes > half.bytes and amp.launches > half.launches == fp32.launches
    assert amp.flops >= fp32.flops  # same GEMM work, plus casts' and scaler's element-wise work
    assert amp.to_dict()["numerics"] == AMP and amp.dtype == "float32"


def test_kernel_cost_takes_the_kernel_dtype():
    kernel = Kernel("x", "forward", "gemm", "gemm", flops=1e12, bytes=1e6, dtype="float16")
    cost = kernel_cost(kernel, V100)
    assert cost.dtype == "float16"
    assert cost.seconds == pytest.approx(1e12 / TENSOR_RATE + LAUNCH, rel=1e-12)
    as_fp32 = kernel_cost(kernel, V100, "float32")
    assert as_fp32.seconds == pytest.approx(1e12 / FP32_RATE + LAUNCH, rel=1e-12)


def test_training_step_kernels_takes_the_knob_too():
    spec = two_fc()
    by_name = training_step_kernels(spec, numerics=AMP)
    by_object = training_step_kernels(spec, numerics=FP16_TENSOR_CORE)
    assert by_name == by_object and NUMERICS[AMP] is FP16_TENSOR_CORE
    assert training_step_kernels(spec, numerics="fp32") == training_step_kernels(spec)


# -- bad input -----------------------------------------------------------------------------------


def one_line(exc: BaseException) -> bool:
    return "\n" not in str(exc) and isinstance(exc, H2LearnError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"numerics": "bf16"},
        {"numerics": 16},
        {"numerics": "fp32", "dtype": "float16"},
        {"numerics": AMP, "dtype": "float64"},
    ],
)
def test_bad_numerics_are_one_line_errors(kwargs):
    with pytest.raises(GPUModelError) as info:
        v100_training_step(two_fc(), **kwargs)
    assert one_line(info.value)


def test_a_numerics_whose_gemms_and_activations_differ_is_refused():
    with pytest.raises(GPUModelError) as info:
        dataclasses.replace(FP16_TENSOR_CORE, activations="float32")
    assert one_line(info.value) and "activations" in str(info.value)
    with pytest.raises(GPUModelError):
        dataclasses.replace(FP32, loss="int8")


# -- the package ----------------------------------------------------------------------------------


def test_package_exports_and_no_private_imports_between_its_modules():
    for name in gpu_package.__all__:
        assert getattr(gpu_package, name) is not None, name
    package_dir = Path(gpu_package.__file__).parent
    for path in package_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("h2learn"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {node.module}"


# Every public name of the module before it became a package (the API the split must keep).
PRE_SPLIT_NAMES = (
    "BOOL_BYTES Bound COMPACT_INDEX_PLANE DTYPE_BYTES ElementwiseOp Engine FUSED_LIF "
    "GPUModelError GPUResult GPUSpec HOROWITZ_FP32_ADD_PJ HOROWITZ_FP32_MULT_PJ INDEX_BYTES "
    "Kernel KernelCost PHASES PYTORCH_EAGER Phase STILLMAKER_ENERGY_POLY StepImplementation "
    "V100 arithmetic_floor_fp32_flop_energy_pj check_dtype kernel_cost stillmaker_energy_factor "
    "training_step_kernels v100_training_step"
).split()


def test_the_public_names_of_the_unsplit_module_still_import():
    missing = [name for name in PRE_SPLIT_NAMES if name not in gpu_package.__all__]
    assert not missing, missing
    from h2learn.arch.cost import reference

    # One copy of the Stillmaker & Baas data: the old name is the reference's table by node,
    # whose rows for the nodes the old table had are the paper's (45 nm: LP45, 16/14: HP).
    assert gpu_package.STILLMAKER_ENERGY_POLY is reference.STILLMAKER_ENERGY_POLY_BY_NODE
    rows = {45: "LP45", 16: "HP16", 14: "HP14"}
    for node, row in rows.items():
        assert gpu_package.STILLMAKER_ENERGY_POLY[node] == reference.STILLMAKER_ENERGY_POLY[row]
