"""Hardware configuration, the cost tables and hand-checked cycles and energy of tiny cases."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from h2learn.arch.activity import (
    ActionContext,
    TaskActivity,
    expected_backward,
    expected_forward,
    expected_max,
    expected_update,
    task_actions,
)
from h2learn.arch.config import (
    ConfigError,
    HardwareConfig,
    default_config,
    dump_config,
    load_config,
)
from h2learn.arch.cost import (
    HOROWITZ_FP_ADD,
    HOROWITZ_FP_MULT,
    HOROWITZ_SRAM_64BIT_PJ,
    CostModelError,
    area_scale,
    build_cost_table,
    energy_scale,
    price,
    sram_energy_pj_per_64bit,
)
from h2learn.arch.cycles import compute_cycles, task_cycles
from h2learn.baselines.dense import dense_mac_units, simulate_dense
from h2learn.baselines.gpu import arithmetic_floor_fp32_flop_energy_pj
from h2learn.errors import H2LearnError
from h2learn.spec import LayerSpec, build_spec

ROOT = Path(__file__).resolve().parents[2]


# -- configuration -------------------------------------------------------------------------------


def test_default_yaml_equals_the_code_defaults():
    assert load_config(ROOT / "configs" / "h2learn.yaml") == default_config()


def test_yaml_round_trip_and_partial_files_keep_defaults(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(dump_config(default_config()))
    assert load_config(path) == default_config()
    path.write_text("backward_engine:\n  pe_count: 64\nbuffers:\n  weight: {size_kib: 512}\n")
    config = load_config(path)
    assert config.backward_engine.pe_count == 64
    assert config.backward_engine.macs_per_pe == default_config().backward_engine.macs_per_pe
    assert config.buffers.weight.size_kib == 512 and config.buffers.weight.banks == 32


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("backward_engine:\n  pe_count: 0\n", "backward_engine.pe_count: must be >= 1"),
        ("forward_engine:\n  lut_group_size: 40\n", "forward_engine.lut_group_size: must be <= 12"),
        ("clock_ghz: -1\n", "clock_ghz: must be > 0"),
        ("buffers:\n  gradient: {size_kib: 0}\n", "buffers.gradient.size_kib: must be > 0"),
        ("forward_engine:\n  pes: 3\n", "forward_engine.pes: unknown field"),
        ("technology_nm: 24\n", "technology_nm: 24 nm has no scaling data"),
        ("datapath_format: int8\n", "datapath_format: unknown number format"),
        ("optimizations:\n  lut: maybe\n", "optimizations.lut: input should be a valid boolean"),
        ("schedule:\n  optimizer: lamb\n", "schedule.optimizer:"),
    ],
)
def test_config_errors_name_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, H2LearnError)


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="no hardware config"):
        load_config(tmp_path / "none.yaml")
    path = tmp_path / "broken.yaml"
    path.write_text("clock_ghz: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(path)
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(path)


def test_with_switches_changes_only_the_switch():
    config = default_config().with_switches(lut=False, pipeline=False)
    assert not config.optimizations.lut and not config.optimizations.pipeline
    assert config.optimizations.output_sparsity
    assert config.forward_group_size == 1 and config.update_group_size == 1
    assert default_config().forward_group_size == 4
    with pytest.raises(ConfigError, match="unknown switch"):
        default_config().with_switches(magic=True)


# -- cost table ------------------------------------------------------------------------------------


def test_every_cost_entry_has_a_source_units_and_node():
    table = build_cost_table(default_config(), mac_array_units=100)
    entries = list(table.entries())
    assert len(entries) > 30
    for label, entry in entries:
        assert entry.source.strip(), label
        assert entry.units.strip(), label
        assert entry.node_nm == 16, label
        assert entry.value >= 0, label


def test_scaling_is_identity_at_the_source_node_and_matches_the_gpu_model():
    assert energy_scale(45, 0.9) == pytest.approx(1.0)
    assert area_scale(45) == 1.0
    # the GPU model's arithmetic floor uses the same Stillmaker & Baas factor
    fma = (HOROWITZ_FP_ADD[32][0] + HOROWITZ_FP_MULT[32][0]) / 2
    assert fma * energy_scale(16, 0.8) == pytest.approx(
        arithmetic_floor_fp32_flop_energy_pj(16, 0.8)
    )
    assert energy_scale(7, 0.7) < energy_scale(16, 0.8) < energy_scale(32, 0.9) < 1.0


def test_sram_fit_reproduces_the_published_points():
    for size_kib, pj in HOROWITZ_SRAM_64BIT_PJ.items():
        assert sram_energy_pj_per_64bit(size_kib) == pytest.approx(pj, rel=0.15)
    assert sram_energy_pj_per_64bit(64) < sram_energy_pj_per_64bit(256)


def test_table_at_45nm_is_horowitz():
    config = default_config().replace(technology_nm=45, vdd=0.9)
    table = build_cost_table(config)
    assert table.energy_pj("backward_engine.multiplier", "multiply") == pytest.approx(3.7)
    assert table.energy_pj("forward_engine.adder", "add") == pytest.approx(0.9)
    assert table.area["backward_engine.adder"].value == pytest.approx(4096 * 4184e-6)


def test_price_sums_counts_times_table_and_rejects_unknown_actions():
    table = build_cost_table(default_config())
    add = table.energy_pj("forward_engine.adder", "add")
    read = table.energy_pj("dram", "read")
    energy = price({("forward_engine.adder", "add"): 10, ("dram", "read"): 8}, table)
    assert energy == {
        "forward_engine.adder": pytest.approx(10 * add),
        "dram": pytest.approx(8 * read),
    }
    with pytest.raises(CostModelError, match="no energy"):
        price({("forward_engine.adder", "multiply"): 1}, table)


def test_fixed_point_datapath_is_cheaper_than_float32():
    fixed = build_cost_table(default_config().replace(datapath_format="fixed16.16"))
    floating = build_cost_table(default_config())
    key = ("backward_engine.multiplier", "multiply")
    assert fixed.energy_pj(*key) < floating.energy_pj(*key)
    assert fixed.area_mm2 < floating.area_mm2


# -- hand-checked tiny fc layer ----------------------------------------------------------------


def binary_fc(inputs: int = 64, outputs: int = 10) -> LayerSpec:
    return LayerSpec("fc", "fc", (inputs,), (outputs,), binary_input=True)


def small_config() -> HardwareConfig:
    return default_config().replace(
        forward_engine={"pe_count": 4, "lanes_per_pe": 4, "lut_entries_per_lane": 256},
        update_engine={"pe_count": 4, "lanes_per_pe": 4},
        backward_engine={"pe_count": 2, "macs_per_pe": 4},
    )


def test_fc_forward_all_ones_cycles_and_counts_by_hand():
    """64 inputs, 10 outputs, k=4: 16 groups, 4 lanes x 4 PEs, every input spiking."""
    config, layer, steps = small_config(), binary_fc(), 6
    counts, work = expected_forward(layer, config, steps, density=1.0)
    assert counts["lookups"] == 16 * 10 * steps
    assert counts["table_build_adds"] == 16 * 11 * 10
    assert counts["table_entries_written"] == 16 * 16 * 10
    assert counts["spike_reads"] == 16 * steps
    task = TaskActivity("fc", 0, "forward", "forward_engine", 0, 1, "lut", counts, work)
    compute, build = compute_cycles(task, config)
    passes, tables = math.ceil(10 / 4), 16 // 4
    assert build == passes * tables * 16
    assert compute == passes * (tables * 16 + tables * steps)  # 4 groups per lane, 1 lookup each


def test_fc_forward_energy_by_hand():
    config, layer, steps = small_config(), binary_fc(), 6
    counts, work = expected_forward(layer, config, steps, density=1.0)
    task = TaskActivity("fc", 0, "forward", "forward_engine", 0, 1, "lut", counts, work)
    actions = task_actions(task, ActionContext.of(config), None)
    table = build_cost_table(config)
    adds = 16 * 11 * 10 + 16 * 10 * steps
    expected = (
        adds * table.energy_pj("forward_engine.adder", "add")
        + 16 * 10 * steps * table.energy_pj("forward_engine.lut", "read")
        + 16 * 16 * 10 * table.energy_pj("forward_engine.lut", "write")
        + 640 * 32 / 512 * table.energy_pj("weight_buffer", "read")
        + 16 * steps * 4 / 512 * table.energy_pj("activation_buffer", "read")
        + 10 * steps * 32 / 512 * table.energy_pj("membrane_buffer", "write")
    )
    assert sum(price(actions, table).values()) == pytest.approx(expected)


def test_fc_backward_cycles_by_hand():
    """64 lower elements on 8 MAC units: 8 elements per unit, 10 MACs each per step."""
    config, layer, steps = small_config(), binary_fc(), 3
    counts, work = expected_backward(layer, config, steps, du_density=1.0, mask_density=None)
    assert counts["macs_done"] == counts["macs_dense"] == 64 * 10 * steps
    task = TaskActivity("fc", 0, "backward", "backward_engine", 0, 1, "mac", counts, work)
    assert compute_cycles(task, config)[0] == pytest.approx(8 * 10 * steps)
    cycles = task_cycles(task, {("gradient_buffer", "read"): 32 * 100}, 1000.0, config)
    assert cycles.buffer == pytest.approx(100)  # 3200 accesses over 32 banks
    assert cycles.dram == pytest.approx(1000 / 256)  # 256 B per cycle at 1 GHz
    assert cycles.total == pytest.approx(8 * 10 * steps)


def test_fc_update_skips_zero_patterns():
    config, layer = small_config(), binary_fc()
    dense, _ = expected_update(layer, config.with_switches(skip_zero_patterns=False), 8, 0.5)
    sparse, _ = expected_update(layer, config, 8, 0.5)
    assert dense["lookups"] == 64 * 10 * 2  # 8 points in 2 groups of 4
    assert sparse["lookups"] == pytest.approx(dense["lookups"] * (1 - 0.5**4))


def test_expected_max_of_identical_lanes_is_blom_like():
    # E[max] of n standard normals: 0 (n=1), 1.029 (n=4), 1.766 (n=16)
    for lanes, value in ((1, 0.0), (4, 1.029), (16, 1.766)):
        assert expected_max([0.0] * lanes, [1.0] * lanes) == pytest.approx(value, abs=0.01)
    assert expected_max([5.0, 3.0], [0.0, 0.0]) == 5.0
    assert expected_max([10.0] * 16, [4.0] * 16, upper=11.0) == 11.0


# -- dense baseline -----------------------------------------------------------------------------


def test_dense_baseline_has_the_same_area():
    config = default_config()
    units = dense_mac_units(config)
    result = simulate_dense(build_spec("digits-mlp"), config)
    assert result.mac_units == units > config.backward_mac_units
    assert result.area_mm2 == pytest.approx(result.h2learn_area_mm2, rel=0.01)
    assert result.area_mm2 <= result.h2learn_area_mm2 * (1 + 1e-9)
    assert result.to_dict()["mac_units"] == units
