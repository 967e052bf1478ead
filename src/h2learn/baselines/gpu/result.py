"""One modelled training step on a GPU: its priced kernels, totals and aggregations.

:class:`GPUResult` has the attributes every design result shares
(``seconds``, ``energy_j``, ``power_w``, ``area_mm2``; see
:class:`h2learn.baselines.design.DesignResult`), plus per-kernel rows and
totals grouped by layer, phase or bound.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, overload

from h2learn.baselines.gpu.device import GPUSpec, KernelCost

_SUMMED = ("seconds", "energy_j", "flops", "bytes", "launches", "overhead_seconds")
"""The :class:`KernelCost` fields that add up over a step (its totals and aggregations)."""


class _Total:
    """A read-only attribute of :class:`GPUResult`: the sum of one kernel field over the step."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.field = name
        self.__doc__ = f"``{name}`` summed over every kernel of the step."

    @overload
    def __get__(self, result: None, owner: type) -> _Total: ...
    @overload
    def __get__(self, result: GPUResult, owner: type) -> float: ...
    def __get__(self, result: GPUResult | None, owner: type) -> float | _Total:
        if result is None:
            return self
        return result.total(self.field)


@dataclass(frozen=True)
class GPUResult:
    """One modelled training step: a row per kernel group, totals and aggregations.

    ``dtype`` is the step's ``dtype`` argument (the parameters' dtype under
    mixed precision); ``numerics`` the name of its
    :class:`~h2learn.baselines.gpu.numerics.Numerics` (``"fp32"``,
    ``"fp16-tensor-core"``, ...).  Every kernel row carries its own dtype.
    """

    network: str
    time_steps: int
    batch_size: int
    dtype: str
    implementation: str
    gpu: GPUSpec
    kernels: tuple[KernelCost, ...]
    numerics: str = "fp32"

    seconds = _Total()
    energy_j = _Total()
    flops = _Total()
    bytes = _Total()
    launches = _Total()
    overhead_seconds = _Total()

    def total(self, field: str) -> float:
        """``field`` (a :class:`KernelCost` field) summed over the kernels, in launch order.

        Integer fields (``launches``) stay integers.
        """
        if field not in _SUMMED:
            raise ValueError(f"{field!r} does not add up over kernels; use one of {_SUMMED}")
        return sum(getattr(k, field) for k in self.kernels)

    @property
    def power_w(self) -> float:
        """Average board power over the step."""
        return self.energy_j / self.seconds if self.seconds > 0 else 0.0

    @property
    def area_mm2(self) -> float:
        """Die area of the modelled GPU (the :class:`DesignResult` figure)."""
        return self.gpu.die_area_mm2

    @property
    def compute_floor_seconds(self) -> float:
        """All FLOPs at the *peak* rate of their unit: a hard lower bound on the step time."""
        return sum(k.flops / self.gpu.peak_flops(k.engine, k.dtype) for k in self.kernels)  # type: ignore[arg-type]

    def _aggregate(self, key: Callable[[KernelCost], Any]) -> dict[Any, dict[str, float]]:
        groups: dict[Any, dict[str, float]] = {}
        for k in self.kernels:
            totals = groups.setdefault(key(k), dict.fromkeys(_SUMMED, 0.0))
            for name in _SUMMED:
                totals[name] += getattr(k, name)
        return groups

    def by_layer(self) -> dict[str, dict[str, float]]:
        """Totals per layer (plus ``loss`` and ``optimizer``), in launch order."""
        return self._aggregate(lambda k: k.layer)

    def by_phase(self) -> dict[str, dict[str, float]]:
        """Totals per phase: forward, backward, weight_gradient, optimizer."""
        return self._aggregate(lambda k: k.phase)

    def by_layer_phase(self) -> dict[str, dict[str, float]]:
        """Totals per ``"layer/phase"``."""
        return self._aggregate(lambda k: f"{k.layer}/{k.phase}")

    def by_bound(self) -> dict[str, dict[str, float]]:
        """Totals of compute-bound and memory-bound kernels."""
        return self._aggregate(lambda k: k.bound)

    def totals(self) -> dict[str, float]:
        """The step's headline figures: time, energy, power, counts, overhead, floor, area."""
        return {
            "seconds": self.seconds,
            "energy_j": self.energy_j,
            "power_w": self.power_w,
            "flops": self.flops,
            "bytes": self.bytes,
            "launches": self.launches,
            "overhead_seconds": self.overhead_seconds,
            "compute_floor_seconds": self.compute_floor_seconds,
            "area_mm2": self.area_mm2,
        }

    def to_dict(self) -> dict[str, Any]:
        """The whole result, kernels included, as a JSON-ready dictionary."""
        return {
            "network": self.network,
            "time_steps": self.time_steps,
            "batch_size": self.batch_size,
            "dtype": self.dtype,
            "numerics": self.numerics,
            "implementation": self.implementation,
            "gpu": self.gpu.to_dict(),
            "totals": self.totals(),
            "by_phase": self.by_phase(),
            "by_layer": self.by_layer(),
            "kernels": [k.to_dict() for k in self.kernels],
        }
