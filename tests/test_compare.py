"""One way to edit a config, one comparison, one loadable comparison config."""

from __future__ import annotations

from pathlib import Path

import pytest

from h2learn.arch.config import (
    ConfigError,
    config_from_dict,
    default_config,
    dump_config,
    field_paths,
    get_field,
    load_config,
    set_field,
    set_fields,
)
from h2learn.arch.simulate import simulate
from h2learn.baselines.dense import simulate_dense
from h2learn.baselines.gpu import v100_training_step
from h2learn.compare import (
    ComparisonConfig,
    check_cost_table,
    compare_config,
    compare_designs,
    comparison_from_dict,
    dump_comparison,
    load_comparison,
)
from h2learn.errors import H2LearnError
from h2learn.spec import build_spec

ROOT = Path(__file__).resolve().parents[1]


# -- set_field ---------------------------------------------------------------------------------


def test_set_field_matches_a_hand_written_config():
    config = set_field(default_config(), "forward_engine.lut_group_size", 3)
    expected = config_from_dict({"forward_engine": {"lut_group_size": 3}})
    assert config == expected
    assert config.update_engine.lut_group_size == 4  # nothing else moved


def test_alias_k_sets_both_lut_engines():
    config = set_field(default_config(), "k", 6)
    assert (config.forward_engine.lut_group_size, config.update_engine.lut_group_size) == (6, 6)
    several = set_fields(default_config(), {"k": 2, "clock_ghz": 0.8, "schedule.micro_batch": 2})
    assert several == config_from_dict(
        {
            "clock_ghz": 0.8,
            "forward_engine": {"lut_group_size": 2},
            "update_engine": {"lut_group_size": 2},
            "schedule": {"micro_batch": 2},
        }
    )


def test_every_path_round_trips():
    config = default_config()
    paths = field_paths(config)
    assert "buffers.weight.size_kib" in paths and "cost_table" in paths
    for path in paths:
        node = config
        for part in path.split("."):
            node = getattr(node, part)
        assert set_field(config, path, node) == config, path


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        ("forward_engine.nope", 1, r"no field 'forward_engine.nope'; valid in forward_engine: "),
        ("nope", 1, r"no field 'nope'; valid: .*clock_ghz.*k"),
        ("forward_engine", 1, r"'forward_engine' \(it is a section\); set one of: forward_engine"),
        ("clock_ghz.x", 1, r"clock_ghz is a value"),
        ("k", 0, r"lut_group_size: must be >= 1"),
        ("cost_table", "guessed", r"cost_table: "),
    ],
)
def test_set_field_errors_are_one_line(path, value, match):
    with pytest.raises(ConfigError, match=match) as info:
        set_field(default_config(), path, value)
    assert "\n" not in str(info.value)


def test_get_field_reads_what_set_field_writes():
    config = set_field(default_config(), "buffers.membrane.banks", 8)
    assert get_field(config, "buffers.membrane.banks") == 8
    assert get_field(config, "buffers.membrane") == config.buffers.membrane
    with pytest.raises(ConfigError, match=r"no field 'buffers.nope'; valid in buffers: "):
        get_field(config, "buffers.nope")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"forward_engine": {"pe_count": True}}, r"forward_engine.pe_count: must be a number"),
        ({"clock_ghz": False}, r"clock_ghz: must be a number, got false"),
        ({"optimizations": {"lut": 1}}, r"optimizations.lut: must be true or false, got 1"),
    ],
)
def test_numbers_and_switches_are_not_coerced(data, match):
    """pydantic would read ``pe_count: true`` as 1 and ``lut: 1`` as True; a config refuses."""
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)
    assert config_from_dict({"clock_ghz": 1}).clock_ghz == 1.0  # an int is a number


def test_the_synthesized_cost_table_replaces_the_rtl_covered_prices():
    """``cost_table: synthesized`` replaces the RTL-covered prices; float64 has no RTL."""
    from h2learn.arch.cost import build_cost_table

    wide = set_field(default_config(), "datapath_format", "float64")
    spec = build_spec("digits-mlp", batch_size=2)
    with pytest.raises(ConfigError, match="float16, bfloat16 or float32"):
        compare_designs(spec, set_field(wide, "cost_table", "synthesized"))
    check_cost_table(wide)  # published is always priced
    for fmt in ("fixed8.8", "float16"):
        plain = set_field(default_config(), "datapath_format", fmt)
        synthesized = set_field(plain, "cost_table", "synthesized")
        check_cost_table(synthesized)
        published, derived = build_cost_table(plain), build_cost_table(synthesized)
        adder = ("forward_engine.adder", "add")
        assert derived.energy[adder].value != published.energy[adder].value
        source = derived.energy[adder].source
        assert "yosys" in source.lower() and fmt in source
        dram = ("dram", "read")
        assert derived.energy[dram] == published.energy[dram]  # not covered by the RTL: kept


def test_the_dense_baseline_is_priced_with_the_synthesized_mac():
    """Under ``synthesized`` the dense array's MAC is the Backward Engine's synthesized MAC,
    per action and per unit of area, and the equal-area sizing uses that area."""
    from h2learn.arch.cost import build_cost_table
    from h2learn.arch.cost.table import mac_unit_area_mm2
    from h2learn.baselines.dense import simulate_dense

    plain = set_field(default_config(), "datapath_format", "float16")
    config = set_field(plain, "cost_table", "synthesized")
    table = build_cost_table(config, mac_array_units=100)
    for part, action in (("multiplier", "multiply"), ("adder", "add")):
        dense, backward = f"mac_array.{part}", f"backward_engine.{part}"
        assert table.energy[(dense, action)].value == table.energy[(backward, action)].value
        per_unit = table.area[backward].value / config.backward_mac_units
        assert table.area[dense].value == pytest.approx(100 * per_unit, rel=1e-12)
    assert mac_unit_area_mm2(config) != mac_unit_area_mm2(plain)
    result = simulate_dense(build_spec("digits-mlp", batch_size=2), config)
    assert result.area_mm2 == pytest.approx(result.h2learn_area_mm2, rel=0.01)


def test_cost_table_field_defaults_to_published_and_round_trips(tmp_path):
    assert default_config().cost_table == "published"
    file = tmp_path / "c.yaml"
    file.write_text(dump_config(set_field(default_config(), "cost_table", "synthesized")))
    assert load_config(file).cost_table == "synthesized"


# -- the comparison ----------------------------------------------------------------------------


def test_compare_designs_is_the_three_models_and_their_ratios():
    spec = build_spec("digits-mlp", batch_size=4)
    config = set_field(default_config(), "clock_ghz", 0.8)
    densities = {"*": {"input": 0.3}}
    comparison = compare_designs(spec, config, densities)
    h2, gpu = simulate(spec, config, densities), v100_training_step(spec)
    dense = simulate_dense(spec, config)
    assert comparison.h2learn.seconds == h2.seconds and comparison.dense.energy_j == dense.energy_j
    assert comparison.vs_v100 == {
        "speedup": gpu.seconds / h2.seconds,
        "energy_saving": gpu.energy_j / h2.energy_j,
        "area_saving": gpu.area_mm2 / h2.area_mm2,
    }
    assert comparison.vs_dense["area_saving"] == pytest.approx(1.0, rel=0.01)
    data = comparison.to_dict()
    assert set(data) == {"h2learn", "v100_model", "dense_accelerator", "v100", "dense"}


def test_gpu_numerics_reach_the_v100_model():
    spec = build_spec("fmnist-conv", batch_size=4)
    fp16 = compare_designs(spec, gpu_numerics="fp16-tensor-core").v100
    reference = v100_training_step(spec, numerics="fp16-tensor-core")
    assert fp16.numerics == "fp16-tensor-core" and fp16.seconds == reference.seconds
    assert compare_designs(spec).v100.seconds == v100_training_step(spec).seconds
    with pytest.raises(ConfigError, match="fp16-tensor-core"):
        compare_designs(spec, gpu_numerics="int8")


def test_gpu_numerics_choices_are_the_v100_models_own(monkeypatch):
    """The accepted names are read from baselines.gpu.NUMERICS, not from a list of our own:
    a preset added there is accepted here (and reaches the model), one removed is refused."""
    from h2learn.baselines import gpu as gpu_package
    from h2learn.baselines.gpu import NUMERICS, Numerics
    from h2learn.compare import GPU_NUMERICS, BaselineSection

    assert GPU_NUMERICS == tuple(NUMERICS)
    # pure half precision is one of the model's numerics, but not a named preset: refused
    with pytest.raises(ConfigError, match=r"baseline.gpu_numerics: 'fp16' is not known"):
        comparison_from_dict({"baseline": {"gpu_numerics": "fp16"}})
    half = Numerics.uniform("float16")
    monkeypatch.setitem(NUMERICS, half.name, half)
    assert BaselineSection(gpu_numerics="fp16").gpu_numerics == "fp16"
    spec = build_spec("digits-mlp", batch_size=2)
    step = compare_designs(spec, gpu_numerics="fp16").v100
    assert step.numerics == "fp16"
    assert step.seconds == gpu_package.v100_training_step(spec, dtype="float16").seconds
    monkeypatch.delitem(NUMERICS, "fp16-tensor-core")
    with pytest.raises(ConfigError, match="choose one of: fp32, fp16$"):
        comparison_from_dict({"baseline": {"gpu_numerics": "fp16-tensor-core"}})


def test_amp_is_not_pure_half_precision():
    """The tensor-core step is PyTorch AMP: float32 parameters and casts, unlike dtype=float16."""
    spec = build_spec("fmnist-conv", batch_size=4)
    amp = compare_designs(spec, gpu_numerics="fp16-tensor-core").v100
    half = v100_training_step(spec, dtype="float16")
    assert amp.seconds != half.seconds
    assert {k.dtype for k in amp.kernels if k.engine == "gemm"} == {"float16"}
    assert any(k.kernel.startswith("weight_to_float16") for k in amp.kernels)
    casts = ("weight_to_float16", "input_to_float16", "weight_grad_to_float32")
    assert not any(k.kernel in casts for k in half.kernels)


# -- the comparison config ---------------------------------------------------------------------


def test_comparison_config_round_trips_and_simulates_alone(tmp_path):
    data = {
        "clock_ghz": 0.8,
        "workload": {"model": "digits-mlp", "batch_size": 4, "densities": {"*": {"mask": 0.2}}},
        "baseline": {"gpu_numerics": "fp16-tensor-core"},
    }
    setup = comparison_from_dict(data)
    file = tmp_path / "step.yaml"
    file.write_text(dump_comparison(setup))
    loaded = load_comparison(file)
    assert loaded == setup
    result = compare_config(loaded)
    spec = build_spec("digits-mlp", batch_size=4)
    h2 = simulate(spec, setup.hardware, {"*": {"mask": 0.2}})
    gpu = v100_training_step(spec, numerics="fp16-tensor-core")
    assert result.vs_v100["speedup"] == gpu.seconds / h2.seconds


def test_a_plain_hardware_file_is_a_comparison_config():
    setup = load_comparison(ROOT / "configs" / "h2learn.yaml")
    assert setup == ComparisonConfig(default_config())
    assert setup.baseline.gpu_numerics == "fp32" and setup.workload.model is None


def test_zero_on_the_command_line_is_refused_not_replaced_by_the_default():
    setup = comparison_from_dict({"workload": {"model": "digits-mlp", "batch_size": 8}})
    assert setup.spec(batch_size=2).batch_size == 2 and setup.spec().batch_size == 8
    with pytest.raises(H2LearnError, match="batch_size=0"):
        setup.spec(batch_size=0)
    with pytest.raises(H2LearnError, match="time_steps=0"):
        setup.spec(time_steps=0)


def test_yaml_errors_name_the_line(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("clock_ghz: 0.8\nworkload: {model: [\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML \(line 3\)"):
        load_comparison(file)
    with pytest.raises(ConfigError, match="no comparison config at"):
        load_comparison(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"workload": {"modle": "x"}}, r"workload.modle: unknown field; valid: model"),
        ({"workload": {"batch_size": 0}}, r"workload.batch_size: must be >= 1"),
        ({"workload": {"batch_size": -3}}, r"workload.batch_size: must be >= 1"),
        ({"workload": {"batch_size": True}}, r"workload.batch_size: input should be a valid int"),
        ({"workload": {"time_steps": "6"}}, r"workload.time_steps: input should be a valid int"),
        ({"workload": [1]}, r"workload: must be a section \(a mapping of model, "),
        ({"baseline": "fp32"}, r"baseline: must be a section"),
        (
            {"workload": {"densities": {"*": {"input": 2.0}}}},
            r"workload.densities: '\*'.input=2.0 must be in \[0, 1\]",
        ),
        (
            {"workload": {"densities": {"conv1": {"bogus": 0.2}}}},
            r"workload.densities: 'conv1': unknown field 'bogus'; valid: du, du_psum, input",
        ),
        ({"baseline": {"gpu_numerics": "fp8"}}, r"baseline.gpu_numerics: "),
        ({"clock_ghz": -1}, r"clock_ghz: must be > 0"),
        ([1, 2], r"must be a mapping"),
    ],
)
def test_comparison_config_errors_are_one_line(data, match):
    with pytest.raises(ConfigError, match=match) as info:
        comparison_from_dict(data)
    assert "\n" not in str(info.value)


def test_lonic_preset_cites_lonic_and_has_their_area():
    from h2learn.report.area import design_area_mm2
    from h2learn.report.assumptions import LONIC_PRESET

    preset = load_config(ROOT / "configs" / "lonic-h2learn.yaml")
    assert preset == config_from_dict(LONIC_PRESET)
    assert preset.clock_ghz == 0.8 and preset.dram.energy_pj_per_bit == 5.7
    assert preset.dram.kind == "HBM2"
    assert design_area_mm2(preset) == pytest.approx(110.46, rel=0.005)
    # the [ours] sizes are size_to_area's at 2x engines and Lonic's area, recomputed here
    from h2learn.report.area import size_to_area

    lonic_given = config_from_dict({"clock_ghz": 0.8, "dram": {"energy_pj_per_bit": 5.7}})
    sized = size_to_area(lonic_given, 110.46, pe_scale=2.0)
    assert sized.model_dump() == {**preset.model_dump(), "name": sized.name}
    lines = (ROOT / "configs" / "lonic-h2learn.yaml").read_text().splitlines()
    cited = {line.split(":")[0].strip(): line for line in lines if not line.startswith("#")}
    for key in ("clock_ghz", "kind", "energy_pj_per_bit"):
        assert "[lonic]" in cited[key], key
    for key in ("pe_count", "lanes", "buffers"):
        assert "[ours]" in cited[key], key
