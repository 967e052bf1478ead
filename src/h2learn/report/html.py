"""A self-contained HTML report of a run directory (plots embedded as PNG data URIs).

A run directory (as written by ``h2learn demo``) may hold ``metrics.json``
(training), ``stats.json`` (trace sparsity), ``verify.json`` (engines vs
trace) and ``simulation.json`` (H2Learn, V100 model, dense accelerator).
Every section whose file is present is rendered; the page needs no server.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from h2learn.errors import H2LearnError  # noqa: E402
from h2learn.report.assumptions import PAPER_V100  # noqa: E402
from h2learn.report.plots import ENGINE_COLOURS  # noqa: E402


def paper_figure(key: str) -> str:
    """The paper's figure for ``key`` (``speedup`` ...) as text, from the one copy."""
    low, high = PAPER_V100[key]
    return f"{low:.2f}x" if low == high else f"{low:.2f}-{high:.2f}x"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1000px; margin: 2em auto; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 1.6em; color: #234; }
table { border-collapse: collapse; margin: 0.8em 0; }
td, th { border: 1px solid #bbb; padding: 4px 10px; text-align: right; }
th { background: #eef; } td:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #ddd; } .note { color: #555; font-size: 0.92em; }
"""


def _png(draw: Callable[[Any], None], size=(7.5, 3.2)) -> str:
    """Render a figure to an ``<img>`` tag with a base64 PNG."""
    fig, ax = plt.subplots(figsize=size)
    draw(ax)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode()
    return f'<img class="plot" alt="plot" src="data:image/png;base64,{data}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _accuracy_section(metrics: dict[str, Any]) -> str:
    history = metrics["history"]
    epochs = [h["epoch"] for h in history]

    def draw(ax) -> None:
        ax.plot(epochs, [h["train_accuracy"] for h in history], marker="o", label="train")
        ax.plot(epochs, [h["test_accuracy"] for h in history], marker="o", label="test")
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy")
        ax.grid(alpha=0.3)
        ax.legend()

    return (
        f"<h2>Training</h2><p>{html.escape(metrics['model'])} on "
        f"{html.escape(metrics['dataset'])}, T={metrics['time_steps']}: test accuracy "
        f"<b>{metrics['test_accuracy']:.2%}</b> after {metrics['epochs']} epochs "
        f"({metrics['train_seconds']:.1f} s of training).</p>" + _png(draw)
    )


def _sparsity_section(stats: dict[str, Any]) -> str:
    layers = stats["layers"]

    def heat(field: str):
        def draw(ax) -> None:
            rows = [layer.get(f"{field}_per_step") for layer in layers]
            names = [layer["layer"] for layer, row in zip(layers, rows, strict=True) if row]
            data = [row for row in rows if row]
            image = ax.imshow(data, aspect="auto", cmap="viridis", vmin=0, vmax=1)
            ax.set_yticks(range(len(names)), names)
            ax.set_xlabel("time step")
            ax.set_title(f"density of {field}")
            plt.colorbar(image, ax=ax)

        return draw

    rows = [
        [layer["layer"]]
        + [
            f"{layer[k]:.3f}" if k in layer else "-"
            for k in ("input", "spikes", "mask", "du", "du_psum", "lower_mask")
        ]
        for layer in layers
    ]
    return (
        "<h2>Sparsity per layer and time step</h2><p class='note'>Fractions of non-zero "
        "entries in one recorded training iteration (what the engines can skip).</p>"
        + _table(["layer", "input", "spikes", "mask", "du", "du at psum", "lower mask"], rows)
        + _png(heat("spikes"), (7.5, 2.6))
        + _png(heat("du"), (7.5, 2.6))
    )


def _verify_section(report: dict[str, Any]) -> str:
    rows = [
        [layer["layer"]]
        + [
            f"{layer[k]:.1e}" if k in layer else "-"
            for k in ("forward_err", "backward_err", "update_err", "lif_u_err", "lif_du_err")
        ]
        for layer in report["layers"]
    ]
    return (
        f"<h2>Engines reproduce the trace</h2><p>Largest error over all engines: "
        f"<b>{report['max_err']:.2e}</b> ({html.escape(report['format'])}, k={report['k']}).</p>"
        + _table(["layer", "forward", "backward", "update", "LIF u", "LIF du"], rows)
    )


def _breakdown_plot(values: dict[str, float], title: str, unit: str) -> str:
    def draw(ax) -> None:
        names = sorted(values, key=values.get, reverse=True)
        ax.barh(names, [values[n] for n in names], color="#4c72b0")
        ax.invert_yaxis()
        ax.set_xlabel(unit)
        ax.set_title(title)

    return _png(draw, (7.5, max(2.2, 0.32 * len(values) + 1)))


def _timeline_plot(entries: list[dict[str, Any]], title: str) -> str:
    def draw(ax) -> None:
        engines = [e for e in ENGINE_COLOURS if any(t["engine"] == e for t in entries)]
        for row, engine in enumerate(engines):
            spans = [
                (t["start_cycle"], t["end_cycle"] - t["start_cycle"])
                for t in entries
                if t["engine"] == engine
            ]
            ax.broken_barh(spans, (row - 0.4, 0.8), color=ENGINE_COLOURS[engine])
        ax.set_yticks(range(len(engines)), engines)
        ax.set_xlabel("cycle")
        ax.set_title(title)

    return _png(draw, (7.5, 2.6))


def _simulation_section(sim: dict[str, Any]) -> str:
    h2, dense = sim["h2learn"], sim["dense_accelerator"]
    gpu = sim["v100_model"].get("totals", sim["v100_model"])
    rows = [
        [
            "H2Learn",
            f"{h2['seconds'] * 1e3:.3f}",
            f"{h2['energy_j'] * 1e3:.3f}",
            f"{h2['power_w']:.1f}",
            f"{h2['area_mm2']:.1f}",
        ],
        [
            "V100 (model)",
            f"{gpu['seconds'] * 1e3:.3f}",
            f"{gpu['energy_j'] * 1e3:.3f}",
            f"{gpu['power_w']:.1f}",
            f"{gpu['area_mm2']:.1f}",
        ],
        [
            "dense accelerator",
            f"{dense['seconds'] * 1e3:.3f}",
            f"{dense['energy_j'] * 1e3:.3f}",
            f"{dense['power_w']:.1f}",
            f"{dense['area_mm2']:.1f}",
        ],
    ]
    v, d = sim["v100"], sim["dense"]
    ratios = [
        [name, paper_figure(key), f"{v[key]:.2f}x", f"{d[key]:.2f}x"]
        for name, key in (
            ("speedup", "speedup"),
            ("energy saving", "energy_saving"),
            ("area saving", "area_saving"),
        )
    ]
    parts = [
        f"<h2>Cost of one training iteration ({html.escape(h2['network'])}, "
        f"{html.escape(h2['mode'])} mode)</h2>",
        _table(["design", "time (ms)", "energy (mJ)", "power (W)", "area (mm^2)"], rows),
        "<h3>Compared with the paper's figures (H2Learn vs V100)</h3>",
        _table(["metric", "paper", "ours vs V100 model", "ours vs dense, equal area"], ratios),
        "<p class='note'>The paper's ratios are for CIFAR-class and DVS networks against a "
        "measured V100; this run's network and our V100 model differ, so the gap is expected "
        "— see the reproduction report (<code>h2learn reproduce</code>) for the explained "
        "comparison.</p>",
        "<h3>Energy and area breakdowns</h3>",
        _breakdown_plot(h2["energy_by_component_j"], "H2Learn energy by component", "J"),
        _breakdown_plot(h2["area_by_component_mm2"], "H2Learn area by component", "mm^2"),
    ]
    if h2.get("timeline"):
        parts += [
            "<h3>Pipeline timeline</h3>",
            _timeline_plot(h2["timeline"], "pipelined schedule of the engines"),
        ]
    return "".join(parts)


SECTIONS = (
    ("metrics.json", _accuracy_section),
    ("stats.json", _sparsity_section),
    ("verify.json", _verify_section),
    ("simulation.json", _simulation_section),
)


def write_html_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Render ``run_dir``'s results into one self-contained HTML file.

    The default output is ``run_dir/report.html``.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise H2LearnError(f"no run directory {run_dir}; run `h2learn demo` first")
    parts = []
    for name, render in SECTIONS:
        path = run_dir / name
        if path.is_file():
            try:
                parts.append(render(json.loads(path.read_text())))
            except (json.JSONDecodeError, KeyError) as exc:
                raise H2LearnError(f"{path} is unreadable ({exc}); re-run the step") from None
    if not parts:
        raise H2LearnError(
            f"{run_dir} holds none of {', '.join(n for n, _ in SECTIONS)}; run `h2learn demo`"
        )
    page = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>h2learn report</title>"
        f"<style>{STYLE}</style></head><body><h1>h2learn report</h1>"
        "<p>What training a spiking network costs on H2Learn's engines, the NVIDIA V100 and "
        "a dense accelerator of the same area. Every figure comes from the files in this run "
        "directory; the cost model's sources are in docs/cost-model.md.</p>"
        + "".join(parts)
        + "</body></html>"
    )
    target = Path(out) if out else run_dir / "report.html"
    target.write_text(page)
    return target
