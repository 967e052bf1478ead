"""The reproduction report: Markdown with PNG figures, every gap to the paper explained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from h2learn.report import plots

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


def explain(metric: str, rows, summary) -> str:
    """A data-driven explanation of where our figure comes from and why it differs."""
    row = rows[0]
    first = row["_results"]["h2learn"]
    categories = first.energy_by_category_j
    total = sum(categories.values()) or 1.0
    top = sorted(categories.items(), key=lambda item: -item[1])[:3]
    shares = ", ".join(f"{name} {value / total:.0%}" for name, value in top)
    if metric == "area_saving":
        return (
            f"Our H2Learn is {first.area_mm2:.1f} mm^2 at {first.config.technology_nm} nm "
            "(V100: 815 mm^2 at 12 nm; the paper's 7.38x implies ~110 mm^2). The area follows "
            "from the PE counts and buffer sizes in configs/h2learn.yaml, chosen from the "
            "workload (docs/cost-model.md), not fitted; the paper's PE counts, buffer sizes and "
            "node are not in its abstract. The same components at 32 nm give ~156 mm^2 "
            "(docs/cost-model.md, cross-check): the node alone spans the paper's figure."
        )
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
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
