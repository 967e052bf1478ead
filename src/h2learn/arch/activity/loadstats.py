"""The busiest unit's expected load: the numerical core of statistical mode.

An engine task lasts as long as its busiest lane or MAC unit.  With random
data every unit's load is a random variable, and the task's cycles are the
expected *maximum* of the loads, not their mean.  :func:`expected_max` treats
the loads as independent normals (LUT lanes); :func:`expected_busiest_mac_unit`
uses a binomial mixture of normals for the Backward Engine's MAC units, whose
loads are skewed when a unit serves few elements.  Both integrate the
distribution of the maximum, ``E[M] = low + int (1 - P(M <= x)) dx``, on a
grid; the grid sizes are the named constants below.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

from h2learn.arch.mapping import mac_unit_of, unit_sums

MAX_TAIL_SDS = 9
"""Lanes whose mean is more than this many standard deviations below the top never hold the
maximum (the chance is below 1e-19 per lane); they are dropped."""
MERGE_STEPS_PER_SD = 200
"""Lanes whose means and deviations differ by less than 1/200 of a standard deviation are
merged into one type (their maxima are indistinguishable on the grid)."""
NORMAL_GRID_SDS = 8
"""Half-width of the integration grid around the top mean, in standard deviations."""
NORMAL_GRID_POINTS = 401
"""Points of the :func:`expected_max` grid (trapezoid rule; 0.04 standard deviations apart)."""
MAC_GRID_SDS = 10
"""Half-width of the MAC-unit grid around the extreme type means, in standard deviations."""
MAC_GRID_POINTS = 257
"""Points of the :func:`expected_busiest_mac_unit` grid."""
NORMAL_MIXTURE_VARIANCE = 50
"""Above this binomial variance ``n p (1 - p)`` of unmasked elements the mixture is replaced
by one normal (the binomial is then close to normal itself)."""
MIXTURE_TAIL_SDS = 7
"""Binomial terms further than this many standard deviations from the mean are left out."""


def expected_max(
    means: np.ndarray, variances: np.ndarray, upper: np.ndarray | float | None = None
) -> float:
    """``E[max_i X_i]`` for independent ``X_i ~ N(mean_i, var_i)`` (numerical integration).

    Represents the busiest lane of an engine whose lanes carry random loads
    (statistical mode's load imbalance).  Identical (mean, var) pairs are
    merged; zero variances make a lane deterministic.  ``upper`` bounds each
    load (every element active): the normal tail would overshoot it when many
    lanes are close to full, so the result never exceeds ``max(upper)``.
    """
    if upper is not None:
        return min(expected_max(means, variances), float(np.max(upper)))
    means = np.asarray(means, dtype=np.float64).ravel()
    variances = np.maximum(np.asarray(variances, dtype=np.float64).ravel(), 0.0)
    if means.size == 0:
        return 0.0
    sigmas = np.sqrt(variances)
    top = float(means.max())
    spread = float(sigmas.max())
    if spread <= 1e-9 * max(1.0, abs(top)):
        return top
    keep = means > top - MAX_TAIL_SDS * spread
    means, sigmas = means[keep], sigmas[keep]
    step = spread / MERGE_STEPS_PER_SD
    rounded = np.round(means / step) * step + 1j * np.round(sigmas / step) * step
    pairs, counts = np.unique(rounded, return_counts=True)
    grid = np.linspace(
        top - NORMAL_GRID_SDS * spread, top + NORMAL_GRID_SDS * spread, NORMAL_GRID_POINTS
    )
    sigma = np.maximum(pairs.imag, 1e-12 * spread)
    z = (grid[:, None] - pairs.real[None, :]) / sigma[None, :]
    log_cdf = (special.log_ndtr(z) * counts[None, :]).sum(1)
    return float(grid[0] + np.trapezoid(1.0 - np.exp(log_cdf), grid))


def _unit_types(links: np.ndarray, units: int, steps: int):
    """Distinct (element-steps, mean links, link variance) of the used MAC units, with counts."""
    count = np.bincount(mac_unit_of(links.size, units), minlength=units)
    s1 = unit_sums(links, units)
    s2 = unit_sums(links * links, units)
    used = count > 0
    n = steps * count[used]
    lbar = s1[used] / count[used]
    lvar = np.maximum(s2[used] / count[used] - lbar**2, 0.0)
    keys = np.stack([n, lbar, lvar], axis=1)
    return s1, used, np.unique(np.round(keys, 9), axis=0, return_counts=True)


def expected_busiest_mac_unit(
    links: np.ndarray, units: int, steps: int, active: float, density: float
) -> tuple[float, float]:
    """Expected load of the busiest MAC unit under output and input sparsity, and the mean load.

    A unit serves ``n`` element-steps; ``K ~ Binomial(n, active)`` of them are
    unmasked, and each performs ``Binomial(links, density)`` MACs.  Given
    ``K`` the load is close to normal (mean ``K*Lbar*d``, variance
    ``K*Lbar*d*(1-d) + K*var(L)*d^2*(1 - K/n)``, the last term sampling which
    elements are unmasked), so a unit's load is a binomial mixture
    of normals, which keeps the skew a plain normal approximation misses when
    units serve few elements.  Units with identical statistics are merged.
    """
    s1, used, (types, multiplicity) = _unit_types(links, units, steps)
    mean_load = float((steps * s1 * active * density).mean())
    if not used.any():
        return 0.0, mean_load
    upper = float((types[:, 0] * types[:, 1]).max())
    if upper <= 0:
        return 0.0, mean_load
    if active >= 1.0 and density in (0.0, 1.0):  # deterministic loads
        return upper * density, mean_load
    tn, tl, tv = types[:, 0], types[:, 1], types[:, 2]
    type_mean = tn * active * tl * density
    type_sd = np.sqrt(
        tn * active * (tl * density * (1 - density) + tv * density**2 * (1 - active))
        + tn * active * (1 - active) * (tl * density) ** 2
    )
    low = max(0.0, float((type_mean - MAC_GRID_SDS * type_sd).max()))
    high = min(upper, float((type_mean + MAC_GRID_SDS * type_sd).max()))
    if high <= low:
        return min(upper, float(type_mean.max())), mean_load
    grid = np.linspace(low, high, MAC_GRID_POINTS)
    log_cdf = np.zeros_like(grid)
    for (n_t, l_t, v_t), m_t, mu_t, sd_t in zip(
        types, multiplicity, type_mean, type_sd, strict=True
    ):
        if active >= 1.0 or n_t * active * (1 - active) >= NORMAL_MIXTURE_VARIANCE:
            z = (grid - mu_t) / max(sd_t, 1e-12)
            log_cdf += float(m_t) * special.log_ndtr(z)
        else:
            log_cdf += float(m_t) * _log_cdf_mixture(grid, int(n_t), l_t, v_t, active, density)
    return low + float(np.trapezoid(1.0 - np.exp(log_cdf), grid)), mean_load


def _log_cdf_mixture(
    grid: np.ndarray, n: int, lbar: float, lvar: float, active: float, density: float
) -> np.ndarray:
    """``log P(load <= x)`` on ``grid`` for one type of MAC unit (a binomial mixture of normals)."""
    centre, spread = n * active, math.sqrt(n * active * (1 - active))
    low = max(0, int(centre - MIXTURE_TAIL_SDS * spread) - 1)
    high = min(n, int(centre + MIXTURE_TAIL_SDS * spread) + 1)
    ks = np.arange(low, high + 1, dtype=np.float64)
    log_pmf = (
        math.lgamma(n + 1)
        - special.gammaln(ks + 1)
        - special.gammaln(n - ks + 1)
        + ks * math.log(max(active, 1e-300))
        + (n - ks) * math.log(max(1 - active, 1e-300))
    )
    mean = ks * lbar * density
    sampling = lvar * density**2 * (1 - ks / n) if n else 0.0
    sd = np.sqrt(ks * (lbar * density * (1 - density) + sampling))
    z = (grid[:, None] - mean[None, :]) / np.maximum(sd, 1e-9)[None, :]
    cdf = np.where(sd[None, :] > 1e-9, special.ndtr(z), grid[:, None] >= mean[None, :])
    total = (cdf * np.exp(log_pmf)[None, :]).sum(1)
    return np.log(np.maximum(total, 1e-300))
