"""The stated alternatives the waterfall tries, each with its source (data, no logic).

Every :class:`Assumption` changes one of our assumptions (docs/cost-model.md)
to a cited alternative; :mod:`h2learn.report.waterfall` applies them one at a
time and in combinations.  ``configs/lonic-h2learn.yaml`` mirrors
:data:`LONIC_PRESET` (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PAPER_V100: dict[str, tuple[float, float]] = {
    "area_saving": (7.38, 7.38),
    "speedup": (5.74, 10.20),
    "energy_saving": (5.25, 7.12),
}
"""H2Learn vs the NVIDIA V100, the paper's headline figures as ``(low, high)`` ranges.

Liang et al., "H2Learn", IEEE TCAD 2022 (arXiv 2107.11746), abstract: "7.38x area
saving, 5.74-10.20x speedup, and 5.25-7.12x energy saving".  The one copy of these
numbers: the reproduction report and the waterfall read them from here."""

LONIC = "Lonic re-model of H2Learn (peilin-chen/Lonic, ICCAD 2026, H2Learn_baseline_simulator_*)"


@dataclass(frozen=True)
class Assumption:
    """One stated alternative to one of our assumptions, with its source.

    ``hardware``/``workload``/``baseline`` are the fields it sets (dotted
    hardware paths, :class:`~h2learn.compare.WorkloadSection` and
    :class:`~h2learn.compare.BaselineSection` fields); ``preset`` replaces the
    hardware first; ``sized`` re-sizes the design to the paper's area
    after every other change.  Assumptions on one ``axis`` exclude each other.
    """

    name: str
    axis: str
    label: str
    source: str
    hardware: Mapping[str, Any] = field(default_factory=dict)
    workload: Mapping[str, Any] = field(default_factory=dict)
    baseline: Mapping[str, Any] = field(default_factory=dict)
    preset: Mapping[str, Any] | None = None
    sized: bool = False
    excludes: tuple[str, ...] = ()


LONIC_PRESET: dict[str, Any] = {
    "name": "lonic-h2learn",
    "clock_ghz": 0.8,
    "forward_engine": {"pe_count": 256},
    "backward_engine": {"pe_count": 512},
    "update_engine": {"pe_count": 256},
    "elementwise": {"lanes": 512},
    "buffers": {
        "weight": {"size_kib": 15897.9},
        "activation": {"size_kib": 12718.3},
        "gradient": {"size_kib": 25436.7},
        "membrane": {"size_kib": 6359.2},
    },
    "dram": {"kind": "HBM2", "energy_pj_per_bit": 5.7},
}
"""``configs/lonic-h2learn.yaml`` as a dict (a test keeps the two equal).

From Lonic: clock 0.8 GHz, HBM2 at 5.7 pJ/bit and the 110.46 mm^2 area.  Ours:
everything else.  PE counts and element-wise lanes are 2x our default and the
buffers 1.55x, the best (lowest time x energy over the suite) of the area
sweep of :func:`choose_pe_scale` run at 0.8 GHz and 5.7 pJ/bit with the area
target 110.46 mm^2 (:func:`~h2learn.report.area.size_to_area`)."""


ASSUMPTIONS: tuple[Assumption, ...] = (
    Assumption(
        "node-28nm",
        "node",
        "technology node 28 nm",
        "a planar node of the paper's period (TSMC 28 nm); the abstract names none. "
        "Scaling interpolated between Stillmaker & Baas's 32 and 20 nm rows, geometric in "
        "the feature size [ours: they tabulate no 28 nm row]",
        hardware={"technology_nm": 28},
    ),
    Assumption(
        "node-32nm",
        "node",
        "technology node 32 nm (vdd kept)",
        "Stillmaker & Baas 2017 HP32 row; the abstract names no node",
        hardware={"technology_nm": 32},
    ),
    Assumption(
        "clock-0.8ghz", "clock", "clock 0.8 GHz", f"{LONIC}: 0.8 GHz", hardware={"clock_ghz": 0.8}
    ),
    Assumption(
        "area-110mm2",
        "area",
        "PEs and buffers sized to 110.4 mm^2",
        "the paper's 7.38x area saving: V100 815 mm^2 / 7.38 (abstract)",
        sized=True,
    ),
    Assumption(
        "bn-sample-stats",
        "bn",
        "batch norm on per-sample statistics",
        "the abstract's 'pipeline optimization between different engines', read as FE(b+1) "
        "beside BE(b) (docs/cost-model.md), which only per-sample order allows",
        hardware={"schedule.bn_batch_statistics": False},
    ),
    Assumption(
        "batch-64",
        "batch",
        "batch size 64",
        "the first author's GPU BPTT library, train_test_cifar.py: batch = 64",
        workload={"batch_size": 64},
    ),
    Assumption(
        "gpu-fp16-tensor-core",
        "gpu",
        "V100 in fp16 on tensor cores",
        "NVIDIA V100 datasheet: 125 TFLOP/s FP16 tensor; mixed precision as torch.amp runs it",
        baseline={"gpu_numerics": "fp16-tensor-core"},
    ),
    Assumption(
        "dram-5.7pj",
        "dram",
        "DRAM 5.7 pJ/bit",
        f"{LONIC}: HBM2 at 5.7 pJ/bit",
        hardware={"dram.energy_pj_per_bit": 5.7},
    ),
    Assumption(
        "datapath-fixed16.16",
        "datapath",
        "fixed16.16 datapath",
        "the abstract names no number format; fixed point of the same width as our float32 "
        "is the usual accelerator choice (h2learn.arch.numerics)",
        hardware={"datapath_format": "fixed16.16"},
    ),
    Assumption(
        "cost-synthesized",
        "cost",
        "synthesized cost table",
        "this project's RTL of the PEs (IEEE float32 units in our default datapath) synthesized "
        "with Yosys, NanGate 45 nm cells scaled by Stillmaker & Baas, switching activity from "
        "RTL simulation (docs/rtl.md)",
        hardware={"cost_table": "synthesized"},
    ),
    Assumption(
        "lonic-preset",
        "preset",
        "Lonic preset (configs/lonic-h2learn.yaml)",
        f"{LONIC}: 0.8 GHz, 110.46 mm^2, HBM2 at 5.7 pJ/bit",
        preset=LONIC_PRESET,
        excludes=("clock", "dram"),
    ),
)
"""The waterfall's steps, in order; each is a cited alternative to one of our assumptions."""
