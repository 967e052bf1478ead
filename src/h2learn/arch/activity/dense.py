"""Dense MAC tasks: forward and weight update of layers with analog inputs.

The encoding layer's inputs are analog, so its forward pass and weight update
run as dense multiply-accumulates on the Backward Engine's MAC units (the
only engine with multipliers).  Their counts are the engines' data-free
:func:`~h2learn.arch.engines.forward.dense_forward_counts` and
:func:`~h2learn.arch.engines.update.dense_update_counts`; their loads do not
depend on the data, so trace and statistical mode share this module, and the
dense equal-area baseline (:mod:`h2learn.baselines.dense`) prices every
forward and update task with it.
"""

from __future__ import annotations

import math

from h2learn.arch.activity.tasks import MacWork
from h2learn.arch.engines.forward import dense_forward_counts
from h2learn.arch.engines.update import dense_update_counts
from h2learn.arch.names import Phase
from h2learn.spec import LayerSpec


def dense_forward_work(
    layer: LayerSpec, steps: int, units: int, binary_input: bool = False
) -> MacWork:
    """MAC-unit loads of a forward task on ``units`` MAC units, without sparsity.

    The outputs ``(o, position)`` of every step are dealt round-robin to
    ``units`` MAC units, each output costing ``fan_in`` MACs.
    """
    outputs = layer.out_channels * layer.out_positions
    per_unit = math.ceil(outputs / units) * steps * layer.fan_in
    mean = outputs * steps * layer.fan_in / units
    return MacWork(float(units), float(per_unit), mean, binary_input)


def dense_update_work(
    layer: LayerSpec, steps: int, units: int, binary_input: bool = False
) -> MacWork:
    """MAC-unit loads of a weight-update task ``dW = du (x) x`` without sparsity.

    The ``out_channels * fan_in`` weight-gradient elements are dealt
    round-robin to ``units`` MAC units, each summing over all ``steps *
    out_positions`` points.
    """
    outputs = layer.out_channels * layer.fan_in
    points = steps * layer.out_positions
    per_unit = math.ceil(outputs / units) * points
    return MacWork(float(units), float(per_unit), outputs * points / units, binary_input)


def as_floats(counts: dict[str, int]) -> dict[str, float]:
    """An engine's integer counts as the float counts tasks carry."""
    return {name: float(value) for name, value in counts.items()}


def dense_task(
    phase: str, layer: LayerSpec, steps: int, units: int, binary_input: bool = False
) -> tuple[dict[str, float], MacWork]:
    """Counts and MAC-unit loads of a ``forward`` or ``update`` task over ``steps`` steps."""
    if phase == Phase.FORWARD:
        counts = dense_forward_counts(layer, steps)
        return as_floats(counts), dense_forward_work(layer, steps, units, binary_input)
    counts = dense_update_counts(layer, steps)
    return as_floats(counts), dense_update_work(layer, steps, units, binary_input)
