"""End-to-end simulation: trace mode vs the engines and vs statistical mode, sanity properties."""

from __future__ import annotations

import json

import pytest
import torch

from h2learn.arch.activity import (
    LutWork,
    activity_from_trace,
    densities_from_trace,
    resolve_densities,
)
from h2learn.arch.config import SWITCHES, default_config
from h2learn.arch.pipeline import TaskGraph
from h2learn.arch.simulate import LAYER_COLUMNS, SimulationError, ablations, simulate
from h2learn.arch.verify import verify_layer
from h2learn.baselines.dense import simulate_dense
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import FC, Conv, Pool, build_spec, expand
from h2learn.workload.trace import LayerRecord, Trace, record_trace


def small_spec(batch: int = 4, steps: int = 3):
    sketch = [Conv(8), Pool("maxpool", 2), Conv(16, stride=2), FC(24), FC(4)]
    return expand("small", (2, 8, 8), 4, sketch, time_steps=steps, batch_size=batch)


@pytest.fixture(scope="module")
def real_trace() -> Trace:
    torch.manual_seed(0)
    spec = small_spec()
    model = SpikingNetwork(spec)
    x = torch.rand(4, 2, 8, 8) * 3
    return record_trace(model, x, torch.randint(0, 4, (4,)))


def synthetic_trace(spec, d_in: float, d_du: float, d_mask: float, seed: int = 0) -> Trace:
    """Tensors drawn i.i.d. at the given densities (only what the cost model reads)."""
    g = torch.Generator().manual_seed(seed)
    steps, batch = spec.time_steps, spec.batch_size
    records = []
    for layer in spec.weighted_layers:
        inp = (steps, batch, *layer.in_shape)
        out = (steps, batch, *layer.out_shape)
        if layer.binary_input:
            x = torch.rand(inp, generator=g) < d_in
        else:
            x = torch.rand(inp, generator=g)
        grad = torch.randn(out, generator=g) * (torch.rand(out, generator=g) < d_du)
        tensors = {
            "weight": torch.zeros(layer.weight_shape),
            "input": x,
            "psum": torch.zeros(out),
            "grad_psum": grad,
            "grad_weight": torch.zeros(layer.weight_shape),
        }
        if not layer.encoding:
            tensors["lower_mask"] = torch.rand(inp, generator=g) < d_mask
            tensors["grad_input"] = torch.zeros(inp)
        records.append(LayerRecord(layer, tensors))
    return Trace(spec, records, {})


# -- trace mode is exact ---------------------------------------------------------------------------


def test_trace_counts_equal_the_engines_counts(real_trace):
    """One task per layer (micro-batch = batch): the counts are the engines' own, exactly."""
    config = default_config().replace(schedule={"micro_batch": real_trace.batch_size})
    activity = activity_from_trace(real_trace, config)
    totals = activity.by_layer_phase()
    works = {(t.layer, t.phase): t.work for t in activity.tasks}
    for record in real_trace:
        report = verify_layer(record, real_trace.spec.lif, k=4, skip_zero_patterns=True)
        for phase in ("forward", "update", "backward"):
            if phase not in report["counts"]:
                continue
            mine = dict(totals[(record.spec.name, phase)])
            work = works[(record.spec.name, phase)]
            if isinstance(work, LutWork):  # tables replicated in idle lanes: written once per copy
                assert mine["table_entries_written"] == work.engine_table_entries_written * (
                    work.replicas
                )
                mine["table_entries_written"] = work.engine_table_entries_written
            for name, value in report["counts"][phase].items():
                assert mine[name] == pytest.approx(value, abs=1e-6), (record.spec.name, phase, name)


@pytest.mark.parametrize(
    ("d_in", "d_du", "d_mask"), [(0.2, 0.5, 0.35), (0.05, 1.0, 0.1), (0.5, 0.3, 0.8)]
)
def test_statistical_mode_agrees_with_trace_mode_on_synthetic_traces(d_in, d_du, d_mask):
    sketch = [Conv(32), Conv(64, stride=2), Conv(64), Pool("maxpool", 2), FC(128), FC(10)]
    spec = expand("syn", (3, 32, 32), 10, sketch, time_steps=4, batch_size=8)
    trace = synthetic_trace(spec, d_in, d_du, d_mask)
    exact = simulate(trace)
    expected = simulate(
        spec, densities={"*": {"input": d_in, "du_psum": d_du, "lower_mask": d_mask}}
    )
    assert exact.mode == "trace" and expected.mode == "statistical"
    assert expected.cycles == pytest.approx(exact.cycles, rel=0.05)
    assert expected.energy_j == pytest.approx(exact.energy_j, rel=0.05)
    for phase, name in (("forward", "lookups"), ("update", "lookups"), ("backward", "macs_done")):
        total = [
            sum(c.get(name, 0.0) for (_, p), c in r.activity.by_layer_phase().items() if p == phase)
            for r in (exact, expected)
        ]
        assert total[1] == pytest.approx(total[0], rel=0.05), (phase, name)


def test_densities_from_a_trace_feed_statistical_mode(real_trace):
    densities = densities_from_trace(real_trace)
    result = simulate(real_trace.spec, densities=densities)
    assert result.mode == "statistical" and result.cycles > 0
    assert (
        resolve_densities(real_trace.spec, densities)["conv2"]["input"]
        == densities["conv2"]["input"]
    )


# -- sanity properties -----------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "batch"), [("fmnist-conv", 64), ("cifar-vgg", 16)])
def test_doubling_the_batch_roughly_doubles_time_and_energy(name, batch):
    one = simulate(build_spec(name, batch_size=batch))
    two = simulate(build_spec(name, batch_size=2 * batch))
    assert two.seconds / one.seconds == pytest.approx(2.0, rel=0.1)
    assert two.energy_j / one.energy_j == pytest.approx(2.0, rel=0.1)


@pytest.mark.parametrize("name", ["fmnist-conv", "dvs-gesture", "cifar-vgg"])
def test_switching_an_optimisation_off_never_helps(name):
    spec = build_spec(name, batch_size=8)
    results = ablations(spec)
    base = results["h2learn"]
    for label, result in results.items():
        assert result.seconds >= base.seconds * (1 - 1e-9), label
        assert result.energy_j >= base.energy_j * (1 - 1e-9), label
    assert set(results) == {"h2learn", "all_off"} | {f"no_{s}" for s in SWITCHES}
    assert results["all_off"].seconds > base.seconds


def test_lut_pays_off_only_when_tables_are_reused_by_enough_points():
    """A k=4 table costs 16 writes and 11 adds per 4 weights: a binary fc layer needs points.

    digits-mlp's 256->10 read-out layer sees only T*B points; there the LUT
    costs a little more energy than plain accumulation (documented exception).
    """
    from h2learn.arch.activity import expected_forward
    from h2learn.spec import LayerSpec

    layer = LayerSpec("fc", "fc", (256,), (10,), binary_input=True)
    lut, plain = default_config(), default_config().with_switches(lut=False)

    def adds_and_table_ops(config, steps):
        counts, _ = expected_forward(layer, config, steps, 0.2)
        return (
            counts["accumulations"] + counts["table_build_adds"] + counts["table_entries_written"]
        )

    assert adds_and_table_ops(lut, 24) > adds_and_table_ops(plain, 24)
    assert adds_and_table_ops(lut, 6 * 256) < adds_and_table_ops(plain, 6 * 256)


def test_energy_breakdowns_sum_to_the_total():
    result = simulate(build_spec("fmnist-conv", batch_size=8))
    for breakdown in (
        result.energy_by_component_j,
        result.energy_by_category_j,
        result.energy_by_engine_j,
        result.energy_by_layer_j,
        result.energy_by_phase_j,
    ):
        assert sum(breakdown.values()) == pytest.approx(result.energy_j, rel=1e-9)
    assert set(result.energy_by_category_j) == {"logic", "lut", "sram", "dram", "leakage"}
    assert result.leakage_j == pytest.approx(
        result.config.leakage_mw_per_mm2 * 1e-3 * result.area_mm2 * result.seconds
    )
    assert sum(result.area_by_component_mm2.values()) == pytest.approx(result.area_mm2)


def test_pipeline_respects_dependencies_and_engines(real_trace):
    result = simulate(real_trace)
    graph = TaskGraph(result.activity.spec, result.activity.tasks, result.config)
    end = {}
    for entry in result.timeline:
        end[(entry.layer, entry.phase, entry.sample)] = entry
    names = {t.key: (t.layer, t.phase, t.micro_batch) for t in result.activity.tasks}
    for key, deps in graph.deps.items():
        task = end[names[key]]
        for dep in deps:
            assert end[names[dep]].end_cycle <= task.start_cycle + 1e-9
    for engine in {e.engine for e in result.timeline}:
        spans = sorted((e.start_cycle, e.end_cycle) for e in result.timeline if e.engine == engine)
        for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False):
            assert a_end <= b_start + 1e-9
    assert result.makespan_pipelined_cycles <= result.makespan_sequential_cycles
    assert result.cycles == result.makespan_pipelined_cycles >= result.dram_bound_cycles


def test_sample_pipeline_overlaps_forward_and_backward_engines():
    """Without batch statistics the Forward Engine starts sample b+1 while BE works on b."""
    config = default_config().replace(schedule={"bn_batch_statistics": False, "micro_batch": 1})
    result = simulate(build_spec("fmnist-conv", batch_size=4), config)
    forward = [e for e in result.timeline if e.engine == "forward_engine"]
    backward = [e for e in result.timeline if e.phase == "backward"]
    overlap = any(
        f.start_cycle < b.end_cycle and b.start_cycle < f.end_cycle and f.sample > b.sample
        for f in forward
        for b in backward
    )
    assert overlap
    sequential = simulate(
        build_spec("fmnist-conv", batch_size=4), config.with_switches(pipeline=False)
    )
    assert sequential.cycles == pytest.approx(result.makespan_sequential_cycles)


def test_result_serialises_and_has_layer_rows(real_trace):
    result = simulate(real_trace)
    data = json.loads(json.dumps(result.to_dict()))
    assert data["network"] == "small" and data["mode"] == "trace"
    assert len(data["timeline"]) == len(result.activity.tasks)
    rows = result.layer_rows()
    assert {row["layer"] for row in rows} >= {"conv1", "conv2", "fc1", "fc2", "optimizer"}
    assert all(set(row) == set(LAYER_COLUMNS) for row in rows)
    assert result.layer_csv().splitlines()[0] == ",".join(LAYER_COLUMNS)


def test_bad_workloads_and_densities_fail_clearly(real_trace):
    with pytest.raises(SimulationError, match="Trace or a Workload"):
        simulate("cifar-vgg")
    with pytest.raises(SimulationError, match="densities"):
        simulate(real_trace, densities={"*": {"input": 0.1}})
    with pytest.raises(ValueError, match="unknown layers"):
        simulate(small_spec(), densities={"conv9": {"input": 0.1}})
    with pytest.raises(ValueError, match=r"must be in \[0, 1\]"):
        simulate(small_spec(), densities={"*": {"input": 1.5}})


def test_dense_baseline_runs_on_a_trace_and_is_data_independent(real_trace):
    from_trace = simulate_dense(real_trace)
    from_spec = simulate_dense(real_trace.spec)
    assert from_trace.energy_j == pytest.approx(from_spec.energy_j)
    assert from_trace.area_mm2 == pytest.approx(from_trace.h2learn_area_mm2, rel=0.01)
    assert json.loads(json.dumps(from_trace.to_dict()))["energy_j"] > 0


def test_spike_coded_input_runs_the_encoding_layer_on_the_lut_engines():
    from h2learn.spec import SpecError

    image = build_spec("fmnist-conv")
    spikes = build_spec("fmnist-conv", input_kind="spikes")
    assert not image.layers[0].binary_input and spikes.layers[0].binary_input
    engines = {
        (t.layer, t.phase): t.engine for t in simulate(spikes).activity.tasks if t.layer == "conv1"
    }
    assert engines[("conv1", "forward")] == "forward_engine"
    assert engines[("conv1", "update")] == "update_engine"
    with pytest.raises(SpecError, match="input_kind"):
        build_spec("fmnist-conv", input_kind="audio")
