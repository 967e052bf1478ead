"""Run H2Learn's engines over a whole trace and compare them with the trace's tensors.

Per weighted layer:

- Forward Engine: ``W (*) input`` against the trace's ``psum``;
- Backward Engine: ``W^T (*) grad_psum`` against ``grad_input`` at the
  positions the lower layer's mask keeps (elsewhere the engine computes nothing,
  by design: those values are multiplied by ``h(u) = 0``);
- Weight Update Engine: against ``grad_weight``;
- LIF units: ``u``/spikes/mask from ``current``, and ``du`` from the incoming
  ``grad_output``.

Errors are normwise: ``max |engine - trace| / max |trace|``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from h2learn.arch.engines import (
    backward_engine,
    forward_engine,
    lif_backward_unit,
    lif_forward_unit,
    update_engine,
)
from h2learn.arch.numerics import as_format, relative_error
from h2learn.workload.trace import LayerRecord, Trace


def _masked_error(result: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None):
    if mask is None:
        return relative_error(result, reference)
    keep = mask.to(torch.bool)
    if not keep.any():
        return 0.0
    return relative_error(result[keep], reference[keep])


def verify_layer(
    record: LayerRecord,
    lif_params,
    k: int = 4,
    fmt: str = "float32",
    skip_zero_patterns: bool = False,
) -> dict[str, Any]:
    """Engines on one layer: errors against the trace (keys with ``err``) and event counts."""
    layer, tensors = record.spec, record.tensors
    dtype = torch.float64 if as_format(fmt).name == "float64" else torch.float32
    weight = tensors["weight"].to(dtype)
    inputs = tensors["input"].to(dtype)
    grad_psum = tensors["grad_psum"].to(dtype)
    report: dict[str, Any] = {"layer": layer.name, "kind": layer.kind, "counts": {}}

    fe = forward_engine(weight, inputs, layer, k=k, fmt=fmt, skip_zero_patterns=skip_zero_patterns)
    report["forward_err"] = relative_error(fe.output, tensors["psum"].to(dtype))
    report["counts"]["forward"] = fe.counts

    if "grad_input" in tensors:
        lower = tensors.get("lower_mask")
        be = backward_engine(weight, grad_psum, lower, layer, fmt=fmt)
        report["backward_err"] = _masked_error(be.output, tensors["grad_input"].to(dtype), lower)
        report["counts"]["backward"] = be.counts

    wue = update_engine(
        grad_psum, inputs, layer, k=k, fmt=fmt, skip_zero_patterns=skip_zero_patterns
    )
    report["update_err"] = relative_error(wue.output, tensors["grad_weight"].to(dtype))
    report["counts"]["update"] = wue.counts

    if layer.fires:
        p = lif_params
        lif = lif_forward_unit(tensors["current"].to(dtype), p.alpha, p.v_th, p.window, fmt=fmt)
        report["lif_u_err"] = relative_error(lif.extra["u"], tensors["u"].to(dtype))
        report["lif_spike_mismatches"] = int((lif.output != tensors["spikes"]).sum())
        report["counts"]["lif_forward"] = lif.counts
        back = lif_backward_unit(
            tensors["grad_output"].to(dtype),
            tensors["u"].to(dtype),
            tensors["spikes"],
            tensors["mask"],
            p.alpha,
            p.height,
            p.reset_grad,
            fmt=fmt,
        )
        report["lif_du_err"] = relative_error(back.output, tensors["grad_current"].to(dtype))
        report["counts"]["lif_backward"] = back.counts
    return report


def verify_trace(
    trace: Trace,
    k: int = 4,
    fmt: str = "float32",
    skip_zero_patterns: bool = False,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Verify every layer; ``max_err`` is the largest error over all layers and engines."""
    as_format(fmt)  # fail early on a bad format
    layers = []
    for record in trace:
        if progress is not None:
            progress(record.spec.name)
        layers.append(verify_layer(record, trace.spec.lif, k, fmt, skip_zero_patterns))
    errors = [v for layer in layers for key, v in layer.items() if key.endswith("_err")]
    return {
        "model": trace.spec.name,
        "k": k,
        "format": fmt,
        "time_steps": trace.time_steps,
        "batch_size": trace.batch_size,
        "max_err": max(errors, default=0.0),
        "spike_mismatches": sum(layer.get("lif_spike_mismatches", 0) for layer in layers),
        "layers": layers,
    }
