"""What ``h2learn rtl`` writes: Verilog, synthesis statistics, the derived table, the comparison."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from h2learn.arch.config import HardwareConfig
from h2learn.arch.cost import build_cost_table
from h2learn.rtl import activity as act
from h2learn.rtl.cost_table import (
    SynthesizedTable,
    measure_parts,
    pe_details,
    ratio,
    table_from_parts,
)
from h2learn.rtl.datapath import rtl_format
from h2learn.rtl.fixed import RtlError
from h2learn.rtl.pe_forward import forward_pe
from h2learn.rtl.pe_update import update_pe
from h2learn.rtl.synth import synthesize

WHY_FIXED = {
    "adder": "published: one bare adder of the word width (Horowitz); RTL: the lane's whole "
    "datapath per add (adder, accumulator register, operand/entry muxes, write-out saturation)",
    "lut": "published: SRAM power law extrapolated below 8 KB, 6T cell / 0.5 efficiency; RTL: "
    "a flip-flop register-file bank (DFF + enable mux per bit, mux-tree read port)",
    "multiplier": "published: Horowitz's 32-bit multiplier scaled quadratically in the width; "
    "RTL: a generic array multiplier from Yosys, activity from real operands",
    "backward_engine.adder": "published: one bare adder of the word width; RTL: the MAC "
    "without its multiplier (a 2W+14-bit accumulator, rounding and saturation, sparsity gating)",
    "elementwise.adder": "published: one bare adder of the word width; RTL: the LIF lane "
    "without multiplier and comparators (adder, reset select, state registers, two fits)",
    "elementwise.multiplier": "published: Horowitz's 32-bit multiplier scaled in the width; RTL: "
    "a generic multiplier whose operand alpha is constant between steps (few toggles)",
    "comparator": "published: a compare priced as an adder of the word width; RTL: one "
    "magnitude comparator (a subtractor's carry chain only)",
}
"""Why the synthesized and published prices differ, per component, for a fixed-point datapath."""
WHY_FLOAT = {
    "adder": "published: one bare floating adder of the format (Horowitz's FP16/FP32; bfloat16 "
    "as FP16); RTL: the lane's whole datapath per add (IEEE adder with alignment and "
    "normalization shifters, accumulator register, operand/entry muxes)",
    "lut": WHY_FIXED["lut"],
    "multiplier": "published: Horowitz's FP16/FP32 multiplier; RTL: a generic significand "
    "multiplier from Yosys with normalization and rounding, activity from real operands",
    "backward_engine.adder": "published: one bare floating adder of the format; RTL: the MAC "
    "without its multiplier (an IEEE adder, the accumulator word, sparsity gating)",
    "elementwise.adder": "published: one bare floating adder; RTL: the LIF lane without "
    "multiplier and comparators (IEEE adder, reset select, state registers)",
    "elementwise.multiplier": "published: Horowitz's FP16/FP32 multiplier; RTL: a generic "
    "multiplier whose operand alpha is constant between steps (few toggles)",
    "comparator": "published: a compare priced as an adder of the word width; RTL: an IEEE "
    "comparator (sign-magnitude order keys and one integer compare)",
}
"""The same for a floating datapath (float16, bfloat16, float32)."""


def why(component: str, floating: bool) -> str:
    """Why a component's synthesized price differs from the published one."""
    table = WHY_FLOAT if floating else WHY_FIXED
    return table.get(component, table[component.rsplit(".", 1)[-1]])


def rtl_config(config: HardwareConfig, fmt_text: str | None) -> HardwareConfig:
    """``config`` with the datapath format the RTL is built for (``fmt_text``, or its own).

    Checked here, so an unsupported format (float64, stochastic rounding) is
    one line before any synthesis starts.
    """
    if fmt_text is not None:
        config = config.replace(datapath_format=fmt_text)
    rtl_format(config.datapath_format)
    return config


def _k_sweep(
    config, ks: Sequence[int], verilog_dir: Path, step, done: dict[str, Any]
) -> dict[str, Any]:
    """Forward and update lanes for every ``k`` (cell counts per PE and k); reuses ``done``."""
    fmt = rtl_format(config.datapath_format)
    block = config.update_engine.partial_sum_groups
    sweep: dict[str, Any] = {}
    for k in ks:
        designs = {
            f"forward_pe_k{k}": lambda k=k: forward_pe(k, fmt, act.SYNTH_TABLES),
            f"update_pe_k{k}": lambda k=k: update_pe(
                k, fmt, act.SYNTH_TABLES, block, max_points=2**20
            ),
        }
        for name, make in designs.items():
            step(f"synthesize {name}")
            if name in done:
                sweep[name] = done[name]
                continue
            design = make()
            sweep[name] = pe_details(synthesize(design, name, design.ports(), verilog_dir))
    return sweep


def comparison_markdown(config: HardwareConfig, table: SynthesizedTable) -> str:
    """Published vs synthesized per action and per component, with the ratio and why."""
    published = build_cost_table(config)
    floating = not config.number_format.is_fixed
    lines = [
        f"# Published vs synthesized cost table ({config.datapath_format}, "
        f"{config.technology_nm} nm, {config.vdd} V)",
        "",
        "Energy per action (pJ):",
        "",
        "| component | action | published | synthesized | ratio | why the factor |",
        "|---|---|---|---|---|---|",
    ]
    for (component, action), entry in table.energy.items():
        pub = published.energy_pj(component, action)
        lines.append(
            f"| {component} | {action} | {pub:.4g} | {entry.value:.4g} | "
            f"{ratio(entry.value, pub):.2f} | {why(component, floating)} |"
        )
    lines += [
        "",
        "Area (mm^2, whole chip):",
        "",
        "| component | published | synthesized | ratio | why the factor |",
        "|---|---|---|---|---|",
    ]
    for component, entry in table.area.items():
        pub = published.area[component].value
        lines.append(
            f"| {component} | {pub:.4g} | {entry.value:.4g} | {ratio(entry.value, pub):.2f} "
            f"| {why(component, floating)} |"
        )
    lines += [
        "",
        "Not covered by the RTL (the published entries stay): " + ", ".join(table.uncovered) + ".",
        "",
    ]
    return "\n".join(lines)


def write_rtl_outputs(
    config: HardwareConfig,
    out: Path,
    ks: Sequence[int],
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, Path]:
    """Write ``verilog/*.v``, ``synthesis.json``, ``cost_table.json`` and ``comparison.md``."""
    if not ks or any(k < 1 or k > 12 for k in ks):
        raise RtlError(f"--k {list(ks)}: give LUT group sizes between 1 and 12")
    fmt = rtl_format(config.datapath_format)
    verilog_dir = out / "verilog"
    verilog_dir.mkdir(parents=True, exist_ok=True)
    parts, details = measure_parts(
        fmt,
        config.forward_group_size,
        config.update_group_size,
        config.update_engine.partial_sum_groups,
        str(verilog_dir),
        step,
    )
    details["k_sweep"] = _k_sweep(config, ks, verilog_dir, step, details)
    table = table_from_parts(config, fmt, parts, details)
    for scratch in verilog_dir.iterdir():
        if scratch.suffix != ".v":
            scratch.unlink()
    paths = {
        "synthesis": out / "synthesis.json",
        "cost_table": out / "cost_table.json",
        "comparison": out / "comparison.md",
    }
    synthesis = {"format": fmt.describe(), "per_pe": details}
    paths["synthesis"].write_text(json.dumps(synthesis, indent=1))
    paths["cost_table"].write_text(json.dumps(table.to_dict(), indent=1))
    paths["comparison"].write_text(comparison_markdown(config, table))
    paths["verilog"] = verilog_dir
    return paths
