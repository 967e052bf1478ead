"""What every modelled design's result offers: time, energy, area and power of one step.

:class:`DesignResult` is the protocol that H2Learn's
:class:`~h2learn.arch.simulate.SimResult`, the dense accelerator's
:class:`~h2learn.baselines.dense.DenseResult` and the GPU model's
:class:`~h2learn.baselines.gpu.GPUResult` all satisfy, so that code comparing
designs (speedup, energy and area saving) can take any of them, and a new
baseline only has to offer these four attributes to be compared.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

DESIGN_FIGURES: tuple[str, ...] = ("seconds", "energy_j", "area_mm2", "power_w")
"""The attributes of :class:`DesignResult`, in the order :func:`design_figures` lists them."""


@runtime_checkable
class DesignResult(Protocol):
    """One BPTT training iteration of a network on one design.

    ``seconds``: time of the iteration; ``energy_j``: energy it takes (static
    and dynamic); ``area_mm2``: silicon area of the design; ``power_w``:
    average power over the iteration (``energy_j / seconds``).
    """

    @property
    def seconds(self) -> float: ...

    @property
    def energy_j(self) -> float: ...

    @property
    def area_mm2(self) -> float: ...

    @property
    def power_w(self) -> float: ...


def design_figures(result: DesignResult) -> dict[str, float]:
    """``{"seconds", "energy_j", "area_mm2", "power_w"}`` of ``result`` as plain floats."""
    return {name: float(getattr(result, name)) for name in DESIGN_FIGURES}
