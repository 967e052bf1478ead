"""Per-layer densities: the statistical description of a workload's data (Sparseloop style).

Statistical mode does not look at tensors; it takes, per weighted layer, the
fraction of non-zero values of the tensors the engines skip on:

* ``input`` -- binary input spikes the Forward and Weight Update Engines see
  (1 for analog inputs);
* ``mask`` -- surrogate-gradient masks set (``|u - V_th| < a``) of the
  layer's own neurons;
* ``du_psum`` -- non-zero gradients at the partial sums (the Backward
  Engine's input sparsity);
* ``lower_mask`` -- the mask of the neurons below, routed through pooling
  (the Backward Engine's output sparsity).

As in timeloopfe's ``Problem.Density``, densities belong to the workload, not
to the architecture: this module holds the defaults, the stated densities
used where no trace can be recorded, the validation of user-given values and
the measurement of a recorded trace's densities.
"""

from __future__ import annotations

from collections.abc import Mapping

from h2learn.errors import H2LearnError
from h2learn.graph import NETWORK_INPUT, producer
from h2learn.spec import AnyNetwork

Densities = dict[str, dict[str, float | None]]
"""``{layer name: {field: density or None}}``."""

DEFAULT_SPIKE_DENSITY = 0.2
"""[ours] fraction of binary inputs that are spikes, when no density is given."""
DEFAULT_MASK_DENSITY = 0.35
"""[ours] fraction of surrogate masks set (|u - V_th| < a); cifar-vgg traces give 0.35."""

FIELDS: tuple[str, ...] = ("input", "mask", "du_psum", "lower_mask")
"""The density fields of a weighted layer."""
ACCEPTED_FIELDS: tuple[str, ...] = FIELDS + ("spikes", "du")
"""Fields a user may give (``spikes`` and ``du`` are accepted and carried, but not read)."""

STATED_DENSITIES: dict[str, dict[str, float]] = {
    "*": {"input": 0.45, "mask": 0.40, "du_psum": 1.0},
}
"""Densities used where no trace can be recorded, measured on trained networks.

From the characterization of trained networks on real data
(docs/characterization.md: ``h2learn train --trace-every``): fmnist-conv
after 3 epochs on Fashion-MNIST (92.2%) reads input spikes at densities
0.36, 0.59 and 0.41 in its three spike-fed layers (mean 0.45; max pooling
ORs spikes, so pooled layers read more than the 0.24-0.41 their producers
fire), and its surrogate masks are 0.52, 0.39 and 0.28 dense (mean 0.40);
digits-mlp after 30 epochs reads 0.44 with a mask of 0.26.  dL/d(psum) is
dense (0.99-1.0) because batch norm's backward mixes every position.  The
Backward Engine's output mask (``lower_mask``) is routed from the producer's
mask as for every statistical run (OR over pooling windows).  The report's
sensitivity sweep varies spike and mask density around these values.
"""


class DensityError(H2LearnError, ValueError):
    """Densities do not fit the network (the message names the layer and field)."""


def _routed_mask(spec: AnyNetwork, index: int, densities: Densities) -> float | None:
    """The producer's mask density, OR-ed over every max/avg-pooling window in between."""
    layer = spec.layers[index]
    if layer.encoding:
        return None
    source, pools = producer(spec, index)
    if source == NETWORK_INPUT:
        return None
    mask = densities[spec.layers[source].name].get("mask")
    if mask is None:
        return None
    for pool in pools:
        mask = 1.0 - (1.0 - mask) ** (pool.kernel * pool.kernel)
    return mask


def default_densities(spec: AnyNetwork) -> Densities:
    """Per weighted layer: ``input``, ``mask``, ``du_psum`` and ``lower_mask`` densities [ours].

    ``input``: :data:`DEFAULT_SPIKE_DENSITY` for binary inputs, 1 for analog;
    ``mask``: :data:`DEFAULT_MASK_DENSITY` for firing layers; ``du_psum``: 1
    after batch norm (its backward makes the gradient dense), else the mask
    density (``du`` is zero where the mask and the carry are); ``lower_mask``:
    the producer's mask, OR-ed over max-pooling windows (``1 - (1-m)**(k*k)``).
    """
    out: Densities = {}
    for layer in spec.weighted_layers:
        mask = DEFAULT_MASK_DENSITY if layer.fires else None
        du = 1.0 if layer.batch_norm or mask is None else mask
        out[layer.name] = {
            "input": DEFAULT_SPIKE_DENSITY if layer.binary_input else 1.0,
            "mask": mask,
            "du_psum": du,
        }
    for index, layer in enumerate(spec.layers):
        if layer.weighted:
            out[layer.name]["lower_mask"] = _routed_mask(spec, index, out)
    return out


def _check_value(name: str, key: str, value: float | None) -> float | None:
    if key not in ACCEPTED_FIELDS:
        raise DensityError(f"densities[{name!r}]: unknown field {key!r}")
    if value is not None and not 0.0 <= float(value) <= 1.0:
        raise DensityError(f"densities[{name!r}].{key}={value} must be in [0, 1]")
    return None if value is None else float(value)


def resolve_densities(
    spec: AnyNetwork, densities: Mapping[str, Mapping[str, float | None]] | None
) -> Densities:
    """Defaults overridden by ``densities`` (per layer name; ``"*"`` applies to every layer).

    ``lower_mask`` is re-derived from the producers' masks unless given.
    Raises :class:`DensityError` for unknown layers or fields and values
    outside ``[0, 1]``.
    """
    resolved = default_densities(spec)
    given = dict(densities or {})
    names = {layer.name for layer in spec.weighted_layers}
    unknown = set(given) - names - {"*"}
    if unknown:
        raise DensityError(
            f"densities name unknown layers {', '.join(sorted(unknown))}; "
            f"weighted layers: {', '.join(sorted(names))}"
        )
    explicit_lower = set()
    for name in names:
        fields = {**given.get("*", {}), **given.get(name, {})}
        for key, value in fields.items():
            resolved[name][key] = _check_value(name, key, value)
        if "lower_mask" in fields:
            explicit_lower.add(name)
    for index, layer in enumerate(spec.layers):
        if layer.weighted and layer.name not in explicit_lower:
            resolved[layer.name]["lower_mask"] = _routed_mask(spec, index, resolved)
    return resolved


def densities_from_trace(trace) -> Densities:
    """The measured densities of a trace, in the form :func:`resolve_densities` takes."""
    from h2learn.workload.stats import trace_stats

    out: Densities = {}
    for entry in trace_stats(trace)["layers"]:
        out[entry["layer"]] = {key: entry.get(key) for key in FIELDS}
    return out
