"""The shared names, the one copy of the reference data, and the workload's densities."""

from __future__ import annotations

import json
import math

import pytest

from h2learn.arch.config import default_config
from h2learn.arch.cost import build_cost_table, category
from h2learn.arch.cost.reference import (
    HOROWITZ_NODE_NM,
    HOROWITZ_VDD,
    STILLMAKER_AREA_FROM_45NM,
    STILLMAKER_ENERGY_POLY,
    STILLMAKER_ENERGY_POLY_BY_NODE,
    CostModelError,
    area_scale,
    energy_row,
    energy_scale,
    stillmaker_energy_factor,
)
from h2learn.arch.names import BUFFERS, Buffer, Engine, Part, Phase, TaskKey, buffer_of, component
from h2learn.spec import build_spec
from h2learn.workload.densities import (
    STATED_DENSITIES,
    DensityError,
    default_densities,
    resolve_densities,
)


def test_names_print_compare_and_serialise_as_their_values():
    assert str(Phase.FORWARD) == f"{Phase.FORWARD}" == "forward" == Phase.FORWARD
    assert {Engine.BACKWARD: 1}["backward_engine"] == 1
    assert json.dumps({Phase.LOSS: Buffer.WEIGHT}) == '{"loss": "weight_buffer"}'
    assert component(Engine.FORWARD, Part.LUT) == "forward_engine.lut"
    assert TaskKey.loss(3) == (-1, "loss", 3) and TaskKey.optimizer() == (-1, "optimizer", 0)
    assert buffer_of("weight") is buffer_of("weight_buffer") is Buffer.WEIGHT
    with pytest.raises(KeyError):
        buffer_of("scratchpad")


def test_every_priced_component_is_built_from_names():
    table = build_cost_table(default_config(), mac_array_units=8)
    parts = {str(part) for part in Part}
    for name, _action in table.energy:
        assert name in BUFFERS or name == "dram" or name.rsplit(".", 1)[1] in parts
        assert category(name) in ("logic", "lut", "sram", "dram")


def test_the_two_polynomial_lookups_are_the_same_rows():
    for node in STILLMAKER_AREA_FROM_45NM:
        assert STILLMAKER_ENERGY_POLY_BY_NODE[node] is STILLMAKER_ENERGY_POLY[energy_row(node)]
    assert energy_row(45) == "LP45" and energy_row(16) == "HP16" and energy_row(90) == "90"


def test_scaling_from_the_source_node_is_one_and_factors_compose():
    assert energy_scale(HOROWITZ_NODE_NM, HOROWITZ_VDD) == pytest.approx(1.0)
    assert area_scale(HOROWITZ_NODE_NM) == 1.0
    direct = stillmaker_energy_factor(45, 0.9, 16, 0.8)
    assert direct == pytest.approx(energy_scale(16, 0.8), rel=1e-12)
    there_and_back = stillmaker_energy_factor(45, 0.9, 14, 0.7) * stillmaker_energy_factor(
        14, 0.7, 45, 0.9
    )
    assert there_and_back == pytest.approx(1.0)
    with pytest.raises(CostModelError, match="no scaling row"):
        stillmaker_energy_factor(45, 0.9, 12, 0.8)


def test_28nm_is_interpolated_between_the_32_and_20nm_rows():
    """Geometric in the feature size: exact for a power law, between its neighbours otherwise."""
    from h2learn.arch.cost.reference import INTERPOLATED_NODES_NM, interpolate_node

    assert INTERPOLATED_NODES_NM == {28: (32, 20)}
    assert interpolate_node(28, lambda node: node**2.0) == pytest.approx(28.0**2, rel=1e-12)
    weight = math.log(32 / 28) / math.log(32 / 20)
    assert area_scale(28) == pytest.approx(0.46 * (0.21 / 0.46) ** weight, rel=1e-12)
    assert area_scale(20) < area_scale(28) < area_scale(32)
    for vdd in (0.7, 0.8, 0.9):
        low, high = energy_scale(20, vdd), energy_scale(32, vdd)
        assert energy_scale(28, vdd) == pytest.approx(high * (low / high) ** weight, rel=1e-12)
        assert low < energy_scale(28, vdd) < high
    factor = stillmaker_energy_factor(45, 0.9, 28, 0.8)
    assert factor == pytest.approx(energy_scale(28, 0.8), rel=1e-12)


def test_the_config_accepts_exactly_the_nodes_with_scaling_factors():
    """config.py keeps its own node list (importing the cost package from it would cycle)."""
    from h2learn.arch.config import SUPPORTED_NODES_NM
    from h2learn.arch.cost.reference import INTERPOLATED_NODES_NM

    assert set(SUPPORTED_NODES_NM) == {*STILLMAKER_AREA_FROM_45NM, *INTERPOLATED_NODES_NM}


def test_stated_densities_apply_to_every_layer():
    spec = build_spec("cifar-vgg")
    resolved = resolve_densities(spec, STATED_DENSITIES)
    assert set(resolved) == set(default_densities(spec))
    for fields in resolved.values():
        assert {key: fields[key] for key in STATED_DENSITIES["*"]} == STATED_DENSITIES["*"]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"nope": {"input": 0.1}}, "unknown layers"),
        ({"*": {"inptu": 0.1}}, "unknown field"),
        ({"*": {"mask": 1.5}}, r"must be in \[0, 1\]"),
    ],
)
def test_bad_densities_give_one_clear_error(given, message):
    with pytest.raises(DensityError, match=message):
        resolve_densities(build_spec("digits-mlp"), given)
