"""The reproduction report: Markdown with PNG figures, every gap to the paper explained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h2learn.report import plots
from h2learn.report.assumptions import PAPER_V100
from h2learn.report.grounding import cpu_section, trained_section

if TYPE_CHECKING:
    from h2learn.arch.config import HardwareConfig

GAP_THRESHOLD = 0.30
"""Gaps to the paper above 30% get an explanation in the report (issue requirement)."""


def _fmt_range(values: Sequence[float]) -> str:
    low, high = values
    return f"{low:.2f}x" if abs(high - low) < 5e-3 else f"{low:.2f}-{high:.2f}x"


def _gap(ours: Sequence[float], paper: float | Sequence[float]) -> float:
    """Relative distance between our range and the paper's (0 when they overlap)."""
    low, high = (paper, paper) if isinstance(paper, int | float) else paper
    if ours[1] < low:
        return (low - ours[1]) / low
    if ours[0] > high:
        return (ours[0] - high) / high
    return 0.0


def figures(out_dir: Path, summary: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]):
    """Write every PNG and return ``{name: relative path}``."""
    fig_dir = out_dir / "figures"
    first = rows[0]
    results = first["_results"]
    paths = {
        "energy": plots.stacked_breakdown(
            {row["benchmark"]: row["_results"]["h2learn"].energy_by_category_j for row in rows},
            "H2Learn energy per training iteration",
            "J",
            fig_dir / "energy_breakdown.png",
        ),
        "area": plots.stacked_breakdown(
            {"H2Learn": results["h2learn"].area_by_component_mm2},
            "H2Learn area",
            "mm^2",
            fig_dir / "area_breakdown.png",
        ),
        "timeline": plots.timeline(
            [e.to_dict() for e in results["h2learn"].timeline],
            f"{first['benchmark']}: pipelined schedule",
            fig_dir / "timeline_pipelined.png",
        ),
        "timeline_sequential": plots.timeline(
            [e.to_dict() for e in results["h2learn"].sequential_timeline],
            f"{first['benchmark']}: sequential schedule",
            fig_dir / "timeline_sequential.png",
        ),
        "ablations": plots.bars(
            {
                name: r["seconds"] / first["ablations"]["h2learn"]["seconds"]
                for name, r in first["ablations"].items()
            },
            f"{first['benchmark']}: time with each optimisation off (1 = full design)",
            "relative time",
            fig_dir / "ablations_time.png",
        ),
        "ablations_energy": plots.bars(
            {
                name: r["energy_j"] / first["ablations"]["h2learn"]["energy_j"]
                for name, r in first["ablations"].items()
            },
            f"{first['benchmark']}: energy with each optimisation off (1 = full design)",
            "relative energy",
            fig_dir / "ablations_energy.png",
        ),
    }
    sweep = summary["sensitivity"]
    sweeps = (
        ("spike", "spike_density", "spike density", "sensitivity_spikes.png"),
        ("mask", "mask_density", "surrogate-mask density", "sensitivity_mask.png"),
        ("k", "k", "LUT group size k", "sensitivity_k.png"),
    )
    for name, axis, label, filename in sweeps:
        paths[name] = plots.lines(
            sweep[axis],
            {"speedup": sweep[f"{name}_speedup"], "energy saving": sweep[f"{name}_energy_saving"]},
            f"{sweep['benchmark']}: sensitivity to {label}",
            label.split()[-1] if name == "k" else label,
            "x vs V100",
            fig_dir / filename,
        )
    return {name: path.relative_to(out_dir).as_posix() for name, path in paths.items()}


def _benchmark_table(rows) -> list[str]:
    lines = [
        "| benchmark | T | sparsity from | H2Learn ms | H2Learn J | V100 model ms | V100 J "
        "| speedup | energy saving | area saving | vs dense: speedup | energy |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        h2, gpu, v, d = row["h2learn"], row["v100_model"], row["v100"], row["dense"]
        lines.append(
            f"| {row['benchmark']} | {row['time_steps']} | {row['sparsity_from']} "
            f"| {h2['seconds'] * 1e3:.2f} | {h2['energy_j']:.3f} | {gpu['seconds'] * 1e3:.2f} "
            f"| {gpu['energy_j']:.3f} | {v['speedup']:.2f}x | {v['energy_saving']:.2f}x "
            f"| {v['area_saving']:.2f}x | {d['speedup']:.2f}x | {d['energy_saving']:.2f}x |"
        )
    return lines


def area_explanation(config: HardwareConfig, area_mm2: float) -> str:
    """Where our area comes from, and the same design at 32 nm (computed, not quoted)."""
    from h2learn.arch.config import set_field
    from h2learn.baselines.gpu import V100
    from h2learn.report.area import design_area_mm2
    from h2learn.report.waterfall import PAPER_AREA_MM2

    older = ""
    if config.technology_nm != 32:
        at_32nm = design_area_mm2(set_field(config, "technology_nm", 32))
        older = f" The same components at 32 nm give {at_32nm:.0f} mm^2."
    return (
        f"Our H2Learn is {area_mm2:.1f} mm^2 at {config.technology_nm} nm (V100: "
        f"{V100.die_area_mm2:.0f} mm^2, {V100.process}; the paper's "
        f"{PAPER_V100['area_saving'][0]}x implies {PAPER_AREA_MM2:.1f} mm^2). The area follows "
        "from the PE counts and buffer sizes of "
        "the config, chosen from the workload (docs/cost-model.md), not fitted; the paper's PE "
        "counts, buffer sizes and node are not in its abstract." + older
    )


def explain(metric: str, rows, summary) -> str:
    """A data-driven explanation of where our figure comes from and why it differs."""
    row = rows[0]
    first = row["_results"]["h2learn"]
    categories = first.energy_by_category_j
    total = sum(categories.values()) or 1.0
    top = sorted(categories.items(), key=lambda item: -item[1])[:3]
    shares = ", ".join(f"{name} {value / total:.0%}" for name, value in top)
    if metric == "area_saving":
        return area_explanation(first.config, first.area_mm2)
    if metric == "speedup":
        util = ", ".join(f"{k} {v:.0%}" for k, v in first.utilization.items())
        abl = row["ablations"]
        pipe = abl["no_pipeline"]["seconds"] / abl["h2learn"]["seconds"]
        return (
            f"Engine utilisation in {row['benchmark']}: {util}. Exact batch norm (tdBN) needs "
            "the statistics of the whole mini-batch, so no sample's backward pass can start "
            "before every forward pass ends: the pipeline overlaps engines only within a phase "
            f"(switching it off costs {pipe:.2f}x, not the cross-phase overlap the paper "
            "describes). The Backward Engine loses further time to load imbalance from real "
            "sparsity under its static mapping. The V100 side is a roofline model "
            "(docs/gpu-baseline.md), not a measurement; the paper's GPU kernels and batch are "
            "unknown."
        )
    gpu = row["v100_model"]
    ratio = first.power_w / gpu["power_w"]
    low = summary["paper"]["v100"]["speedup"][0] / summary["paper"]["v100"]["energy_saving"][1]
    high = summary["paper"]["v100"]["speedup"][1] / summary["paper"]["v100"]["energy_saving"][0]
    return (
        f"Energy saving = speedup x (P_gpu / P_h2learn). Our H2Learn draws {first.power_w:.1f} W "
        f"against the modelled V100's {gpu['power_w']:.0f} W (ratio {ratio:.2f}); the paper's "
        f"own ranges imply a ratio between {low:.2f} and {high:.2f}, i.e. an H2Learn drawing "
        "about as much as the GPU. Our H2Learn energy is dominated by "
        f"{shares}; its per-action energies are cited 45 nm figures scaled to "
        f"{first.config.technology_nm} nm. A chip drawing GPU-class power would need far more "
        "DRAM traffic or an older node than we can justify from the abstract; we do not fit "
        "one. The V100's energy is modelled (TDP, static power, HBM traffic), not measured."
    )


def write_report(out_dir: Path, summary: Mapping[str, Any], rows) -> Path:
    """Write ``report.md`` (and its figures) into ``out_dir``."""
    figs = figures(out_dir, summary, rows)
    ranges = summary["ranges"]
    paper = summary["paper"]["v100"]
    lines = [
        "# H2Learn reproduction report",
        "",
        f"One BPTT training iteration per benchmark, batch {summary['batch_size']}. H2Learn "
        "and the dense accelerator are modelled from event counts and cited per-action "
        "energies (docs/cost-model.md); the V100 is modelled (docs/gpu-baseline.md). "
        "Where no dataset is on the machine, sparsity comes from stated densities "
        "(docs/reproduction.md).",
        "",
        "## Against the paper (H2Learn vs NVIDIA V100)",
        "",
        "| metric | paper | ours | gap |",
        "|---|---|---|---|",
    ]
    explanations = []
    for metric in ("area_saving", "speedup", "energy_saving"):
        ours = ranges["v100"][metric]
        target = paper[metric]
        gap = _gap(ours, target)
        target_text = _fmt_range(target) if isinstance(target, list | tuple) else f"{target:.2f}x"
        lines.append(
            f"| {metric.replace('_', ' ')} | {target_text} | {_fmt_range(ours)} | {gap:.0%} |"
        )
        if gap > GAP_THRESHOLD:
            explanations.append(
                f"- **{metric.replace('_', ' ')}** ({gap:.0%} gap): "
                + explain(metric, rows, summary)
            )
        else:
            explanations.append(
                f"- **{metric.replace('_', ' ')}**: within 30% of the paper. "
                + explain(metric, rows, summary)
            )
    lines += ["", *explanations, "", "## Per benchmark", "", *_benchmark_table(rows), ""]
    lines += trained_section(rows) + cpu_section(summary.get("cpu_validation", {}))
    lines += [
        "## Energy and area",
        "",
        f"![energy]({figs['energy']})",
        "",
        f"![area]({figs['area']})",
        "",
        "## Pipeline",
        "",
        f"![pipelined]({figs['timeline']})",
        "",
        f"![sequential]({figs['timeline_sequential']})",
        "",
        "## Ablations",
        "",
        f"![ablation time]({figs['ablations']})",
        "",
        f"![ablation energy]({figs['ablations_energy']})",
        "",
        "## Sensitivity",
        "",
        f"![spikes]({figs['spike']})",
        "",
        f"![mask]({figs['mask']})",
        "",
        f"![k]({figs['k']})",
        "",
    ]
    if "waterfall" in summary:
        lines += waterfall_section(out_dir, summary)
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path


# --------------------------------------------------------------------------
# The waterfall: the gap to the paper, taken apart
# --------------------------------------------------------------------------


def _cell(value: float) -> str:
    return f"{value:.2f}x"


def _legend_table(steps: Sequence[Mapping[str, Any]]) -> list[str]:
    """The steps once: what each changes and its source (or why it is skipped)."""
    lines = ["| step | assumption | change | source |", "|---|---|---|---|"]
    for step in steps:
        change = ", ".join(f"`{key}: {value}`" for key, value in step["change"].items()) or "-"
        source = step["source"] + (
            f" (**skipped**: {step['skipped']})" if "skipped" in step else ""
        )
        lines.append(
            f"| {step['step']:02d} {step['name']} | {step['assumption']} | {change} | {source} |"
        )
    return lines


def _steps_table(waterfall: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[str]:
    """Speedup / energy saving / area saving of every step (rows) on every benchmark (columns)."""
    names = list(waterfall)
    lines = [
        "| step | " + " | ".join(names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for index, first in enumerate(waterfall[names[0]]):
        if "skipped" in first:
            continue
        cells = []
        for name in names:
            step = waterfall[name][index]
            cells.append(
                " / ".join(
                    f"**{step[m]:.2f}**" if step["lands"][m] else f"{step[m]:.2f}"
                    for m in ("speedup", "energy_saving", "area_saving")
                )
            )
        lines.append(f"| {first['step']:02d} {first['name']} | " + " | ".join(cells) + " |")
    return lines


def _fmt_span(values: Sequence[float]) -> str:
    return f"{values[0]:.2f}-{values[1]:.2f}x"


def smallest_set_text(search: Mapping[str, Any], paper: Mapping[str, Any]) -> list[str]:
    """The closing paragraph: the smallest landing set, or why none lands (from the numbers)."""
    tried = (
        f"{search['combinations_tried']} combinations of the usable steps (at most one value "
        f"per assumption), {search['combinations_simulated']} of them at the paper's area"
    )
    skipped = search.get("skipped") or {}
    if skipped:
        tried += "; the steps skipped in this build are not in the search: " + ", ".join(
            sorted(skipped)
        )
    if search["found"]:
        sets = "; ".join("{" + ", ".join(names) + "}" for names in search["sets"])
        lines = [
            f"Smallest set of stated assumptions under which every benchmark lands inside the "
            f"paper's ranges ({tried}): **{sets}**.",
            "",
            "| benchmark | speedup | energy saving | area saving |",
            "|---|---|---|---|",
        ]
        for bench, figures in search["figures"].items():
            lines.append(
                f"| {bench} | {_cell(figures['speedup'])} | {_cell(figures['energy_saving'])} "
                f"| {_cell(figures['area_saving'])} |"
            )
        return lines
    if "closest" not in search:
        return [f"No combination could be simulated ({tried})."]
    closest, spans = search["closest"], search["spans_first_benchmark"]
    needed = search["power_ratio_needed"]
    refusing = ", ".join(m.replace("_", " ") for m in search["refusing"])
    limit = f" of at most {search['max_size']} assumptions" if search["max_size"] else ""
    speed_low, speed_high = paper["speedup"]
    energy_low, energy_high = paper["energy_saving"]
    return [
        f"**No set of stated assumptions{limit} lands inside all three ranges** ({tried}). "
        f"The area saving rounds to 7.38x only with the area step or the Lonic preset (the "
        f"abstract gives no PE counts, buffer sizes or node). Over every combination at the "
        f"paper's area, {closest['benchmark']} reaches a speedup of "
        f"{_fmt_span(spans['speedup'])} (paper {speed_low:.2f}-{speed_high:.2f}x) and an "
        f"energy saving of {_fmt_span(spans['energy_saving'])} (paper "
        f"{energy_low:.2f}-{energy_high:.2f}x).",
        "",
        f"Closest set: {{{', '.join(closest['assumptions'])}}}, giving "
        f"{_cell(closest['speedup'])} speedup, {_cell(closest['energy_saving'])} energy "
        f"saving, {_cell(closest['area_saving'])} area saving; refusing: **{refusing}**.",
        "",
        f"Why: energy saving = speedup x (P_V100 / P_H2Learn), so landing both the speedup "
        f"and the energy ranges needs an H2Learn drawing {needed[0]:.2f}-{needed[1]:.2f}x "
        f"the V100's power. Our cited per-action energies give "
        f"{_fmt_span(spans['power_ratio']).removesuffix('x')} of the modelled V100's power "
        f"over these combinations (the closest set: {closest['h2learn_power_w']:.1f} W "
        f"against {closest['v100_power_w']:.0f} W): an older node, dearer DRAM and a bigger "
        "chip all raise it, but not by the factor needed, and we fit none."
        + (
            f" The speedup refuses on its own too: the fastest combination stops at "
            f"{spans['speedup'][1]:.2f}x."
            if spans["speedup"][1] < speed_low
            else ""
        ),
    ]


def waterfall_section(out_dir: Path, summary: Mapping[str, Any]) -> list[str]:
    """The report's waterfall: per benchmark a table and a plot, then the smallest set."""
    search = summary["waterfall_search"]
    sizing = search["area_sizing"]
    paper = summary["paper"]["v100"]
    ranges = {
        "speedup": tuple(paper["speedup"]),
        "energy_saving": tuple(paper["energy_saving"]),
        "area_saving": (paper["area_saving"], paper["area_saving"]),
    }
    lines = [
        "## The gap to the paper, taken apart",
        "",
        "Each step changes one assumption of our default comparison to a cited alternative, "
        "alone (statistical mode, stated densities, so the fmnist-conv default here may "
        "differ from its trace-mode row above). Every step is a comparison config under "
        "`waterfall/<benchmark>/`; `h2learn simulate --config FILE --json` reproduces its "
        "figures. A figure is inside the paper's range when it rounds into it (two decimals). "
        f"The area step puts the engines at {sizing['chosen_pe_scale']}x our default (the "
        "lowest time x energy over the suite of the engine scales "
        f"{', '.join(str(s) for s in sizing['pe_scales'])}) and solves the buffer size so "
        f"that the chip is {sizing['target_mm2']:.1f} mm^2 (815 / 7.38).",
        "",
    ]
    first = next(iter(summary["waterfall"].values()))
    lines += ["### The steps", "", *_legend_table(first), ""]
    lines += [
        "### Speedup / energy saving / area saving vs the V100 (bold: inside the paper's range)",
        "",
        *_steps_table(summary["waterfall"]),
        "",
    ]
    for bench, steps in summary["waterfall"].items():
        figure = plots.waterfall(
            steps,
            ranges,
            f"{bench}: one assumption at a time",
            out_dir / "figures" / f"waterfall_{bench}.png",
        )
        lines += [f"![waterfall {bench}]({figure.relative_to(out_dir).as_posix()})", ""]
    lines += ["### The smallest set of assumptions", ""]
    lines += [*smallest_set_text(search["smallest_set"], paper), ""]
    return lines
