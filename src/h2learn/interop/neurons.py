"""NIR neuron nodes translated to h2learn's iterative LIF.

NIR describes neurons as continuous-time ODEs (``tau dv/dt = (v_leak - v) + r I``
for ``LIF``, ``dv/dt = r I`` for ``IF``, both firing when ``v > v_threshold``
and then set to ``v_reset``).  NIR carries no time step, so a simulator picks
one: ``dt``.  One forward-Euler step of the LIF ODE with ``v_leak = 0`` is

    v[t] = (1 - dt/tau) * v[t-1] + (r * dt / tau) * I[t]

and with the reset to zero on a spike this is h2learn's neuron
``u[t] = alpha * u[t-1] * (1 - o[t-1]) + x[t]`` with

    alpha = 1 - dt / tau,     V_th = v_threshold,     x[t] = gain * I[t],  gain = r * dt / tau

(``IF``: ``alpha = 1``, ``gain = r * dt``).  The gain is folded into the
weights and bias of the layer that feeds the neuron (exact: the current is
linear in them).  snnTorch's exporter writes ``Leaky(beta)`` as
``tau = dt / (1 - beta)``, ``r = tau / dt`` with ``dt = 1e-4``, so with the same
``dt`` the translation gives back ``alpha = beta`` and ``gain = 1``.

What h2learn's neuron cannot express is rejected, one line naming the node:
a non-zero ``v_leak`` or ``v_reset``, ``tau < dt`` (``alpha < 0``), a
non-positive gain, and parameters that differ between the neurons of a node.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from h2learn.errors import H2LearnError

DEFAULT_DT = 1e-4
"""Seconds per step, snnTorch's fixed ``dt`` in its NIR exporter and importer."""

NEURON_TYPES = ("LIF", "IF")


class NIRError(H2LearnError, ValueError):
    """A NIR file or graph cannot be read or represented; the message names the node."""


@dataclass(frozen=True)
class NeuronTranslation:
    """One NIR neuron node as h2learn LIF parameters.

    ``gain`` multiplies the neuron's input current; the importer folds it into
    the weights and bias of the layer before the neuron.
    """

    alpha: float
    v_th: float
    gain: float


def significant_digits(dtype: np.dtype) -> int:
    """Decimal digits to which a *derived* parameter (the input gain) is rounded.

    A gain ``r * dt / tau`` computed from float32 ``r`` and ``tau`` that an
    exporter wrote as ``tau = dt / (1 - beta)``, ``r = tau / dt`` is 1 only
    to about 7 digits, so 6 digits give back its exact value; float64 keeps 12.
    """
    size = np.dtype(dtype).itemsize if np.dtype(dtype).kind == "f" else 8
    return {2: 3, 4: 6}.get(size, 12)


def rounded(value: float, digits: int) -> float:
    """``value`` rounded to ``digits`` significant decimal digits."""
    return float(f"{value:.{digits}g}") if value != 0 else 0.0


def _narrow(dtype: np.dtype) -> type[np.floating] | None:
    """The numpy float type of a parameter stored narrower than float64, else ``None``."""
    dtype = np.dtype(dtype)
    return dtype.type if dtype.kind == "f" and dtype.itemsize < 8 else None


def as_stored(value: float, dtype: np.dtype) -> float:
    """The shortest decimal that is the same ``dtype`` number as ``value``.

    A threshold stored as float32 is exact in float32, and h2learn computes
    in float32: the shortest decimal that rounds to the same float32 keeps
    it bit for bit (``0.5`` stays ``0.5``, a trained ``0.7654321`` is not
    cut to 6 digits).  float64 values are returned unchanged.
    """
    narrow = _narrow(dtype)
    return float(value) if narrow is None else float(str(narrow(value)))


def decay_from_tau(tau: float, dt: float, dtype: np.dtype) -> float:
    """``alpha = 1 - dt / tau``, given back as the decay the exporter started from.

    An exporter computes ``tau = dt / (1 - beta)`` in the dtype it stores
    (snnTorch: float32; h2learn: float64), which rounds ``beta`` away.  The
    candidates are ``1 - dt/tau`` rounded to 1 ... 17 significant digits and
    the numbers of that dtype within 8 units in the last place of it; of those
    whose export ``dt / (1 - alpha)`` in that dtype gives back the stored
    ``tau`` exactly, the shortest decimal (then the nearest) is the decay.
    For float32 ``beta > 0.5`` only the exporter's ``beta`` qualifies, so it
    comes back bit for bit; below, several may and the roundest wins.  None
    qualifies (another exporter's arithmetic): ``1 - dt/tau`` to the dtype's
    precision (12 digits for float64).
    """
    estimate = 1.0 - dt / tau
    dtype = np.dtype(dtype)
    kind = dtype.type if dtype.kind == "f" else np.float64
    one, stored = kind(1.0), kind(tau)
    candidates = {kind(rounded(estimate, digits)) for digits in range(1, 18)}
    up = down = kind(estimate)
    for _ in range(8):
        candidates |= {up, down}
        up, down = np.nextafter(up, kind(2.0)), np.nextafter(down, kind(-1.0))
    with np.errstate(all="ignore"):
        exact = [c for c in candidates if 0 <= c < one and kind(kind(dt) / (one - c)) == stored]
    if exact:
        return float(str(min(exact, key=lambda c: (len(str(c)), abs(float(c) - estimate)))))
    return as_stored(estimate, dtype) if _narrow(dtype) else rounded(estimate, 12)


def uniform_value(key: str, kind: str, field: str, value: Any) -> tuple[float, np.dtype]:
    """The one value of parameter ``field`` of node ``key`` and its stored dtype.

    NIR stores one value per neuron; h2learn has one per layer, so every
    neuron of the node must share it.
    """
    if value is None:
        raise NIRError(f"node {key!r} ({kind}): parameter {field} is missing")
    array = np.asarray(value)
    if array.size == 0 or array.dtype.kind not in "fiu":
        raise NIRError(f"node {key!r} ({kind}): parameter {field} is not a number array")
    values = array.astype(np.float64).ravel()
    if not np.all(np.isfinite(values)):
        raise NIRError(f"node {key!r} ({kind}): parameter {field} is not finite")
    first = float(values[0])
    if not np.all(values == first):
        raise NIRError(
            f"node {key!r} ({kind}): {field} differs between its neurons "
            f"({values.min():g} to {values.max():g}); h2learn uses one value per layer"
        )
    return first, array.dtype


def translate_neuron(key: str, node: Any, dt: float = DEFAULT_DT) -> NeuronTranslation:
    """Translate NIR ``LIF`` or ``IF`` node ``key`` with forward Euler at step ``dt``."""
    kind = type(node).__name__
    if not (math.isfinite(dt) and dt > 0):
        raise NIRError(f"dt={dt} must be a positive number of seconds")
    if kind == "LIF":
        tau, tau_type = uniform_value(key, kind, "tau", node.tau)
        r, r_type = uniform_value(key, kind, "r", node.r)
        v_leak, _ = uniform_value(key, kind, "v_leak", node.v_leak)
        if v_leak != 0:
            raise NIRError(
                f"node {key!r} (LIF): v_leak={v_leak:g} is not zero; h2learn's LIF decays to 0"
            )
        if tau <= 0:
            raise NIRError(f"node {key!r} (LIF): tau={tau:g} must be positive")
        if tau < dt:
            raise NIRError(
                f"node {key!r} (LIF): tau={tau:g} s is shorter than dt={dt:g} s, so "
                "alpha = 1 - dt/tau < 0; pass a smaller --dt"
            )
        alpha, gain = decay_from_tau(tau, dt, tau_type), r * dt / tau
        digits = min(significant_digits(tau_type), significant_digits(r_type))
    elif kind == "IF":
        r, r_type = uniform_value(key, kind, "r", node.r)
        alpha, gain, digits = 1.0, r * dt, significant_digits(r_type)
    else:
        raise NIRError(
            f"node {key!r} ({kind}): not a neuron h2learn can run; "
            f"supported neurons: {', '.join(NEURON_TYPES)}"
        )
    v_th, th_type = uniform_value(key, kind, "v_threshold", node.v_threshold)
    v_reset, _ = uniform_value(key, kind, "v_reset", _reset_of(node))
    if v_reset != 0:
        raise NIRError(
            f"node {key!r} ({kind}): v_reset={v_reset:g} is not zero; h2learn resets to 0"
        )
    gain = rounded(gain, digits)
    if gain <= 0:
        raise NIRError(f"node {key!r} ({kind}): input gain r*dt/tau={gain:g} must be positive")
    return NeuronTranslation(
        alpha=min(1.0, max(0.0, alpha)), v_th=as_stored(v_th, th_type), gain=gain
    )


def _reset_of(node: Any) -> Any:
    """``v_reset`` of a node, zero where the file leaves it out (NIR's default)."""
    reset = getattr(node, "v_reset", None)
    return np.zeros(1) if reset is None else reset


__all__ = [
    "DEFAULT_DT",
    "NIRError",
    "NeuronTranslation",
    "as_stored",
    "decay_from_tau",
    "significant_digits",
    "translate_neuron",
]
