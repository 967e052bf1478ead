"""Predicted against measured step time, per layer: the rows, the totals, what dominates the error.

A row is a layer of the network (or a group of layers that ran as one fused
kernel and could only be timed together, e.g. ``conv2+maxpool2``), plus
``loss`` and ``optimizer``.  Each row holds seconds per phase -- ``forward``,
``backward`` (BPTT, batch norm, input and weight gradients) and ``optimizer``
-- predicted and measured, and the prediction's split into compute-bound
roofline time, memory-bound roofline time and dispatch overhead.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from h2learn.baselines.gpu import GPUResult

PHASE_COLUMNS = ("forward", "backward", "optimizer")
_MODEL_PHASE = {  # the GPU model's phases -> this comparison's columns
    "forward": "forward",
    "backward": "backward",
    "weight_gradient": "backward",
    "optimizer": "optimizer",
}


@dataclass(frozen=True)
class LayerComparison:
    """One row: predicted and measured seconds per phase, and the prediction's parts."""

    layer: str
    predicted: dict[str, float]
    measured: dict[str, float]
    compute_s: float  # roofline time of compute-bound kernels
    memory_s: float  # roofline time of memory-bound kernels
    overhead_s: float  # launches x dispatch overhead
    launches: int

    @property
    def predicted_s(self) -> float:
        """Predicted seconds of the row, all phases."""
        return sum(self.predicted.values())

    @property
    def measured_s(self) -> float:
        """Measured seconds of the row, all phases."""
        return sum(self.measured.values())

    @property
    def error_s(self) -> float:
        """Predicted minus measured seconds (negative: the model is too fast)."""
        return self.predicted_s - self.measured_s

    @property
    def relative_error(self) -> float:
        """``predicted / measured - 1`` (``inf`` if nothing was measured)."""
        if self.measured_s <= 0:
            return float("inf")
        return self.predicted_s / self.measured_s - 1.0

    @property
    def dominant_part(self) -> str:
        """Which part of the prediction is largest: ``compute``, ``memory`` or ``overhead``."""
        parts = {"compute": self.compute_s, "memory": self.memory_s, "overhead": self.overhead_s}
        return max(parts, key=parts.__getitem__)

    def to_dict(self) -> dict[str, Any]:
        """The row and its derived errors as a JSON-ready dictionary."""
        return {
            **asdict(self),
            "predicted_s": self.predicted_s,
            "measured_s": self.measured_s,
            "error_s": self.error_s,
            "relative_error": None if math.isinf(self.relative_error) else self.relative_error,
            "dominant_part": self.dominant_part,
        }


def layer_groups(layer_names: list[str], measured: set[str]) -> list[tuple[str, list[str]]]:
    """``(row label, layers)``: a layer never timed joins the measured layer before it.

    A fused conv block + max pooling is timed as one call of the conv block;
    the pooling layer then has no time of its own and is compared together
    with the conv, as ``conv2+maxpool2``.
    """
    groups: list[tuple[str, list[str]]] = []
    for name in layer_names:
        if name in measured or not groups:
            groups.append((name, [name]))
        else:
            label, members = groups[-1]
            groups[-1] = (f"{label}+{name}", [*members, name])
    return groups


def compare_layers(
    prediction: GPUResult,
    layer_names: list[str],
    measured_forward: dict[str, float],
    measured_backward: dict[str, float],
    measured_optimizer: float,
) -> list[LayerComparison]:
    """Rows for the network's layers, then ``loss`` and ``optimizer``."""
    timed = {n for n, s in measured_forward.items() if s > 0} | set(measured_backward)
    groups = layer_groups(layer_names, timed)
    groups += [("loss", ["loss"]), ("optimizer", ["optimizer"])]
    rows = []
    for label, members in groups:
        predicted = dict.fromkeys(PHASE_COLUMNS, 0.0)
        compute = memory = overhead = 0.0
        launches = 0
        for kernel in prediction.kernels:
            if kernel.layer not in members:
                continue
            predicted[_MODEL_PHASE[kernel.phase]] += kernel.seconds
            roofline = kernel.seconds - kernel.overhead_seconds
            if kernel.bound == "compute":
                compute += roofline
            else:
                memory += roofline
            overhead += kernel.overhead_seconds
            launches += kernel.launches
        measured = dict.fromkeys(PHASE_COLUMNS, 0.0)
        if label == "optimizer":
            measured["optimizer"] = measured_optimizer
        else:
            measured["forward"] = sum(measured_forward.get(m, 0.0) for m in members)
            measured["backward"] = sum(measured_backward.get(m, 0.0) for m in members)
        rows.append(
            LayerComparison(label, predicted, measured, compute, memory, overhead, launches)
        )
    return rows


def dominant_error(rows: list[LayerComparison], measured_total_s: float, top: int = 3) -> str:
    """One paragraph: the rows whose error is largest, their share, and the part that dominates.

    Shares are of the sum of absolute per-row errors, so rows whose errors
    cancel in the total are still visible.
    """
    absolute = sum(abs(r.error_s) for r in rows)
    if absolute <= 0:
        return "no per-row error"
    worst = sorted(rows, key=lambda r: abs(r.error_s), reverse=True)[:top]
    parts = []
    for r in worst:
        direction = "under" if r.error_s < 0 else "over"
        parts.append(
            f"{r.layer} {direction}-predicted by {abs(r.error_s) * 1e3:.2f} ms "
            f"({abs(r.error_s) / absolute:.0%} of the summed per-row error; predicted "
            f"{r.predicted_s * 1e3:.2f} ms, mostly {r.dominant_part}, measured "
            f"{r.measured_s * 1e3:.2f} ms)"
        )
    by_part: dict[str, float] = {}
    for r in rows:
        by_part[r.dominant_part] = by_part.get(r.dominant_part, 0.0) + r.error_s
    summary = ", ".join(
        f"{part}-dominated rows {err * 1e3:+.2f} ms" for part, err in sorted(by_part.items())
    )
    return (
        f"summed per-row error {absolute * 1e3:.2f} ms "
        f"({absolute / measured_total_s:.0%} of the measured step); largest: "
        + "; ".join(parts)
        + f". Net error by the prediction's dominant part: {summary}."
    )
