"""The GPU model's method validated on the CPU (h2learn.baselines.cpu).

No test here depends on timing: predictions are checked against hand
computations on a made-up device, measurements only for being present,
positive and consistent in structure.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from h2learn.baselines.cpu import (
    CPUValidation,
    CPUValidationError,
    LayerComparison,
    MachineRates,
    compare_layers,
    cpu_device_spec,
    cpu_step_implementation,
    layer_groups,
    measure_rates,
    predict_step,
    validate_cpu_model,
)
from h2learn.baselines.cpu.step_timer import StepRunner, backward_segments
from h2learn.baselines.gpu_measure import gpu_unavailable_reason, measure_training_step
from h2learn.errors import H2LearnError
from h2learn.snn.kernels import kernel_backend
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import FC, build_spec, expand

TINY_PROBE = {"mm_size": 32, "stream_bytes": 1 << 14}
TIMED = {"flatten1": 1.0, "fc1": 1.0}  # measured forward seconds: both layers timed


def made_up_rates(flops: float = 1e9, bandwidth: float = 1e9, dispatch: float = 1e-6):
    return MachineRates(
        flops_per_s=flops,
        bandwidth_bytes_per_s=bandwidth,
        dispatch_seconds=dispatch,
        flops_per_s_best=flops,
        bandwidth_bytes_per_s_best=bandwidth,
        dispatch_seconds_best=dispatch,
        samples=1,
        threads=1,
        cpu="made-up CPU",
        mm_size=1,
        stream_bytes_per_vector=4,
    )


# -- prediction --------------------------------------------------------------------------------


def test_prediction_of_a_linear_readout_matches_a_hand_computation():
    """flatten -> fc(4 -> 3, no firing), T=2, B=1, float32, 1 GFLOP/s, 1 GB/s, 1 us per op.

    By hand (h2learn's step, docs/gpu-baseline.md): the image is repeated over
    T, so fc1 runs once per sample (B = 1 row).  Every kernel here is
    memory-bound at 1 byte/ns, so a kernel costs bytes ns + 1 us.
    fc1 forward: GEMM reads 4 inputs + 12 weights, writes 3 outputs = 76 B.
    loss forward: mean over T (2 reads + 1 write of 3 floats = 36 B),
    log_softmax (24 B), nll_loss (12 B).  loss backward: seed (4 B), zero
    (12 B), nll backward (24 B), log_softmax backward (36 B), mean backward
    (1 read + 1 write of 6 floats = 48 B).  fc1 backward: the expanded
    current's gradient summed over T (36 B), bias gradient (12 B), wgrad (76 B).
    Adam, one launch per op and tensor (2 tensors, 15 elements): 7 ops moving
    12+8+16+8+8+8+16 = 76 B per element = 1140 B, 14 launches.
    """
    spec = expand("tiny", (1, 2, 2), 3, [FC(3, fires=False)], time_steps=2, batch_size=1)
    device = cpu_device_spec(made_up_rates())
    rows = compare_layers(predict_step(spec, device, "torch"), ["flatten1", "fc1"], TIMED, {}, 0.0)
    ns, us = 1e-9, 1e-6
    expected = {  # row: (forward, backward, optimizer)
        "flatten1": (0.0, 0.0, 0.0),
        "fc1": (76 * ns + us, (36 + 12 + 76) * ns + 3 * us, 0.0),
        "loss": ((36 + 24 + 12) * ns + 3 * us, (4 + 12 + 24 + 36 + 48) * ns + 5 * us, 0.0),
        "optimizer": (0.0, 0.0, 1140 * ns + 14 * us),
    }
    assert [r.layer for r in rows] == list(expected)
    for row in rows:
        got = (row.predicted["forward"], row.predicted["backward"], row.predicted["optimizer"])
        assert got == pytest.approx(expected[row.layer], rel=1e-12, abs=1e-18), row.layer
    fc1 = rows[1]
    assert fc1.launches == 4 and fc1.overhead_s == pytest.approx(4 * us)
    assert fc1.memory_s == pytest.approx((76 + 36 + 12 + 76) * ns) and fc1.compute_s == 0.0
    total = sum(sum(e) for e in expected.values())
    assert predict_step(spec, device).seconds == pytest.approx(total, rel=1e-12)


def test_a_compute_bound_gemm_is_priced_at_the_measured_flop_rate():
    """Same network, 1 FLOP/s: fc1's GEMMs (24 FLOPs each) take 24 s, everything else is tiny."""
    spec = expand("tiny", (1, 2, 2), 3, [FC(3, fires=False)], time_steps=2, batch_size=1)
    device = cpu_device_spec(made_up_rates(flops=1.0, bandwidth=1e12, dispatch=0.0))
    fc1 = compare_layers(predict_step(spec, device), ["flatten1", "fc1"], TIMED, {}, 0.0)[1]
    # forward GEMM 24 FLOPs; backward: sum over T (3 FLOPs), bias reduce (3), wgrad (24)
    assert fc1.predicted["forward"] == pytest.approx(24.0)
    assert fc1.predicted["backward"] == pytest.approx(30.0)
    assert fc1.dominant_part == "compute"


def test_device_spec_carries_the_measured_rates_with_unit_efficiency():
    device = cpu_device_spec(made_up_rates(3e10, 2e10, 5e-6))
    assert device.achievable_flops("gemm", "float32") == 3e10
    assert device.achievable_flops("elementwise", "float32") == 3e10
    assert device.achievable_bandwidth_bytes_per_s == 2e10
    assert device.launch_overhead_seconds == 5e-6
    assert "made-up CPU" in device.name


def test_cpu_implementations_run_adam_per_tensor():
    assert cpu_step_implementation("torch").foreach_tensors_per_launch == 1
    assert cpu_step_implementation("cpp").foreach_tensors_per_launch == 1
    assert "fused" in cpu_step_implementation("cpp").name
    with pytest.raises(CPUValidationError, match="backend"):
        cpu_step_implementation("cuda")


def test_cpu_adam_launches_one_kernel_per_parameter_tensor():
    """What cpu_step_implementation assumes: on the CPU Adam does not take the foreach path."""
    model = SpikingNetwork(build_spec("digits-mlp", batch_size=2, time_steps=2))
    params = [p for p in model.parameters()]
    optimizer = torch.optim.Adam(params)
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()  # creates the state
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        optimizer.step()
    sqrt_calls = sum(1 for e in prof.events() if e.name == "aten::sqrt")
    assert sqrt_calls == len(params)


def test_a_fused_pooling_layer_is_compared_together_with_its_conv():
    assert layer_groups(["conv1", "maxpool1", "conv2", "fc1"], {"conv1", "conv2", "fc1"}) == [
        ("conv1+maxpool1", ["conv1", "maxpool1"]),
        ("conv2", ["conv2"]),
        ("fc1", ["fc1"]),
    ]
    spec = build_spec("fmnist-conv", batch_size=2, time_steps=2)
    prediction = predict_step(spec, cpu_device_spec(made_up_rates()))
    names = [layer.name for layer in spec.layers]
    timed = {n: 1.0 for n in names if not n.startswith("maxpool")}
    rows = compare_layers(prediction, names, timed, {}, 0.0)
    by_layer = prediction.by_layer()
    merged = rows[0]
    assert merged.layer == "conv1+maxpool1"
    expected = by_layer["conv1"]["seconds"] + by_layer["maxpool1"]["seconds"]
    assert merged.predicted_s == pytest.approx(expected)
    assert sum(r.predicted_s for r in rows) == pytest.approx(prediction.seconds)


# -- error arithmetic ---------------------------------------------------------------------------


def _row(name, pred, meas, compute=0.0, memory=0.0, overhead=0.0):
    zero = {"forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    return LayerComparison(
        name,
        {**zero, "forward": pred[0], "backward": pred[1]},
        {**zero, "forward": meas[0], "backward": meas[1]},
        compute,
        memory,
        overhead,
        1,
    )


def test_row_errors():
    row = _row("conv2", (1.0, 2.0), (2.0, 2.0), compute=2.5, memory=0.4, overhead=0.1)
    assert row.predicted_s == 3.0 and row.measured_s == 4.0
    assert row.error_s == -1.0
    assert row.relative_error == pytest.approx(-0.25)
    assert row.dominant_part == "compute"
    assert _row("x", (1.0, 0.0), (0.0, 0.0)).relative_error == math.inf


def test_total_error_and_what_dominates_it():
    rows = (
        _row("conv2", (3.0, 0.0), (4.0, 0.0), compute=3.0),  # -1.0
        _row("fc1", (1.0, 0.0), (0.5, 0.0), memory=1.0),  # +0.5
        _row("loss", (0.1, 0.0), (0.6, 0.0), overhead=0.1),  # -0.5
    )
    rates = made_up_rates()
    result = CPUValidation(
        model="m",
        batch_size=1,
        time_steps=1,
        backend="torch",
        implementation="i",
        steps=1,
        rates=rates,
        device=cpu_device_spec(rates),
        rows=rows,
        predicted_total_s=4.1,
        measured_total_s=5.0,
        measured_instrumented_s=5.1,
        measured_unattributed_s=0.0,
        plain_step_seconds=(5.0,),
    )
    assert result.total_error == pytest.approx(4.1 / 5.0 - 1)
    text = result.dominant_error
    assert "summed per-row error 2000.00 ms (40% of the measured step)" in text
    assert text.index("conv2 under-predicted by 1000.00 ms (50%") < text.index("fc1 over")
    assert "compute-dominated rows -1000.00 ms" in text
    assert "memory-dominated rows +500.00 ms" in text
    data = json.loads(json.dumps(result.to_dict()))
    assert data["total_error"] == pytest.approx(-0.18)
    assert [r["layer"] for r in data["rows"]] == ["conv2", "fc1", "loss"]
    assert "conv2" in result.table()


def test_backward_segments_run_from_each_mark_to_the_next_stamp():
    marks = [("fc1", 3.0), ("fc2", 1.5), ("conv1", 6.0)]  # appended in any order
    seg = backward_segments(marks, start=1.0, end=10.0)
    assert seg == {"loss": 0.5, "fc2": 1.5, "fc1": 3.0, "conv1": 4.0}


# -- measurement ---------------------------------------------------------------------------------


def test_micro_benchmarks_return_positive_finite_rates():
    rates = measure_rates(repeats=2, **TINY_PROBE)
    for value in (rates.flops_per_s, rates.bandwidth_bytes_per_s, rates.dispatch_seconds):
        assert 0 < value < math.inf
    assert rates.flops_per_s <= rates.flops_per_s_best
    assert rates.dispatch_seconds >= rates.dispatch_seconds_best
    assert rates.threads == torch.get_num_threads() and rates.samples == 2
    with pytest.raises(H2LearnError):
        measure_rates(repeats=0)


@pytest.mark.parametrize("backend", ["torch", "cpp"])
def test_backward_marks_come_in_reverse_layer_order(backend):
    """The attribution's premise: autograd reaches each layer's output after all later layers."""
    if backend == "cpp":
        from h2learn.snn.kernels import kernels_available

        if not kernels_available():
            pytest.skip("the C++ kernels do not build here")
    spec = build_spec("fmnist-conv", batch_size=2, time_steps=2)
    torch.manual_seed(0)
    x, y = torch.rand(2, 1, 28, 28), torch.randint(0, 10, (2,))
    runner = StepRunner(SpikingNetwork(spec), x, y, lr=1e-3)
    with kernel_backend(backend):
        times = runner.instrumented()
    order = [name for name, _ in sorted(runner.clock.marks, key=lambda m: m[1])]
    names = [layer.name for layer in spec.layers]
    assert order == [n for n in reversed(names) if n in order]
    if backend == "torch":
        assert sorted(order) == sorted(names)
    else:  # a pooling layer fused into the conv block before it has no call of its own
        unmarked = [i for i, n in enumerate(names) if n not in order]
        assert unmarked and all(
            spec.layers[i].kind.endswith("pool") and spec.layers[i - 1].kind == "conv"
            for i in unmarked
        )
    assert set(times.backward) == {*order, "loss"}
    assert times.total > 0 and times.optimizer > 0
    assert all("forward" not in vars(layer) for layer in runner.model.layers)  # unwrapped


def test_validate_cpu_model_smoke():
    result = validate_cpu_model("digits-mlp", 2, 2, steps=1, warmup=0, **TINY_PROBE)
    assert [r.layer for r in result.rows] == ["flatten1", "fc1", "fc2", "loss", "optimizer"]
    assert result.measured_total_s > 0 and result.predicted_total_s > 0
    assert result.predicted_total_s == pytest.approx(sum(r.predicted_s for r in result.rows))
    assert all(r.measured_s >= 0 for r in result.rows)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["model"] == "digits-mlp" and data["time_steps"] == 2
    assert math.isfinite(data["total_error"])
    assert result.table().count("\n") == len(result.rows) + 3
    assert result.measured_gemm_s is not None and result.measured_gemm_s > 0  # fc1, fc2 ran
    assert 0 < result.predicted_gemm_s < result.predicted_total_s
    assert "Split: GEMMs" in result.dominant_error
    quick = validate_cpu_model("digits-mlp", 2, 2, 1, warmup=0, profile_gemm=False, **TINY_PROBE)
    assert quick.measured_gemm_s is None and "Split" not in quick.dominant_error


def test_validate_cpu_model_rejects_bad_input_in_one_line():
    with pytest.raises(CPUValidationError, match="steps=0"):
        validate_cpu_model("digits-mlp", 2, 2, steps=0)
    with pytest.raises(CPUValidationError, match="batch_size=0"):
        validate_cpu_model("digits-mlp", 0, 2)
    with pytest.raises(CPUValidationError, match="backend"):
        validate_cpu_model("digits-mlp", 2, 2, backend="gpu")
    with pytest.raises(CPUValidationError, match="chain"):
        validate_cpu_model("resnet", 1, 1, steps=1)
    with pytest.raises(H2LearnError, match="unknown model"):
        validate_cpu_model("no-such-model", 2, 2)


def test_measured_gpu_mode_runs_where_a_gpu_is():
    reason = gpu_unavailable_reason()
    if reason is not None:
        pytest.skip(f"measured GPU mode skipped: {reason}")
    result = measure_training_step("digits-mlp", 4, time_steps=2, steps=3, warmup=1)
    assert result is not None
    assert result["seconds_per_step"] > 0 and len(result["step_seconds"]) == 3
    assert result["modelled_v100"]["seconds"] > 0


def test_no_module_of_the_validation_imports_a_private_name():
    """Rooms talk through public names only: the cpu package, its benchmark and this test."""
    import ast
    from pathlib import Path

    import h2learn.baselines.cpu as cpu_package

    root = Path(__file__).resolve().parents[2]
    files = [
        *Path(cpu_package.__file__).parent.glob("*.py"),
        root / "benchmarks" / "validate_cpu_model.py",
        Path(__file__),
    ]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("h2learn"):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports private {private} from {node.module}"
