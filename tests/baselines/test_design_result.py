"""The DesignResult protocol: H2Learn, the dense accelerator and the V100 model all satisfy it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest

from h2learn.arch.simulate import SimResult, simulate
from h2learn.baselines.dense import DenseResult, simulate_dense
from h2learn.baselines.design import DESIGN_FIGURES, DesignResult, design_figures
from h2learn.baselines.gpu import GPUResult, v100_training_step
from h2learn.spec import build_spec


@pytest.fixture(scope="module")
def results():
    spec = build_spec("digits-mlp")
    return [simulate(spec), simulate_dense(spec), v100_training_step(spec)]


def test_every_design_result_satisfies_the_protocol(results):
    assert [type(r) for r in results] == [SimResult, DenseResult, GPUResult]
    for result in results:
        assert isinstance(result, DesignResult), type(result).__name__
        figures = design_figures(result)
        assert list(figures) == list(DESIGN_FIGURES)
        for name, value in figures.items():
            assert isinstance(value, float) and math.isfinite(value) and value > 0, name
        # the protocol's meaning, not only its names: average power over the step
        assert figures["power_w"] == pytest.approx(figures["energy_j"] / figures["seconds"])


def test_a_result_missing_a_figure_is_not_a_design_result():
    @dataclass
    class NoPower:
        seconds: float = 1.0
        energy_j: float = 1.0
        area_mm2: float = 1.0

    @dataclass
    class Complete(NoPower):
        power_w: float = 1.0

    assert not isinstance(NoPower(), DesignResult)
    assert isinstance(Complete(), DesignResult)
