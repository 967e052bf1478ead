"""Design-space exploration: sweeps of hardware-config fields, with Pareto analysis."""

from h2learn.explore.sweep import pareto_flags, parse_vary, run_sweep

__all__ = ["pareto_flags", "parse_vary", "run_sweep"]
