"""Sparsity statistics of a trace: what the engines can skip.

Densities are fractions of non-zero entries, per weighted layer and time step:
``input`` (input spikes; analog for the encoding layer), ``spikes`` (o),
``mask`` (surrogate mask h(u) != 0), ``du`` (the neuron's gradient
dL/d(current), zero wherever the mask is and the carry from t+1 are zero),
``du_psum`` (dL/d(psum), what the Backward and Weight Update Engines consume;
batch norm's backward makes it dense even where ``du`` is sparse) and
``lower_mask`` (the Backward Engine's output sparsity).  ``encoding`` and
``input_kind`` say what the first layer's input is: analog pixels or event
counts, or binary spikes of a spike encoding (then ``input`` is a spike density).
"""

from __future__ import annotations

from typing import Any

import torch

from h2learn.workload.trace import Trace

STAT_FIELDS = {
    "input": "input",
    "spikes": "spikes",
    "mask": "mask",
    "du": "grad_current",
    "du_psum": "grad_psum",
    "lower_mask": "lower_mask",
}


def density(tensor: torch.Tensor) -> float:
    """Fraction of non-zero entries."""
    return float((tensor != 0).float().mean()) if tensor.numel() else 0.0


def per_step_density(tensor: torch.Tensor) -> list[float]:
    """Fraction of non-zero entries at each time step of a ``[T, B, ...]`` tensor."""
    return (tensor != 0).flatten(1).float().mean(1).tolist()


def trace_stats(trace: Trace) -> dict[str, Any]:
    """Per-layer densities: overall and per time step, for every field the layer has."""
    layers = []
    for record in trace:
        entry: dict[str, Any] = {"layer": record.spec.name, "kind": record.spec.kind}
        for label, field in STAT_FIELDS.items():
            tensor = record.tensors.get(field)
            if tensor is None:
                continue
            entry[label] = density(tensor)
            entry[f"{label}_per_step"] = per_step_density(tensor)
        layers.append(entry)
    return {
        "model": trace.spec.name,
        "time_steps": trace.time_steps,
        "batch_size": trace.batch_size,
        "source": trace.meta.get("source", {}),
        # how the images became the input (h2learn.snn.encoding); traces without it: direct
        "encoding": trace.meta.get("source", {}).get("encoding", "direct"),
        "input_kind": trace.spec.input_kind,
        "layers": layers,
    }
