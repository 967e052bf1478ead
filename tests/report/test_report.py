"""Reports: the HTML page of a run (rendered in headless Chromium), the reproduction suite."""

import base64
import io
import json
import os
import re
import shutil
import subprocess
import sys

import matplotlib.image as mpimg
import numpy as np
import pytest

from h2learn.errors import H2LearnError
from h2learn.report.html import write_html_report
from h2learn.report.reproduce import BENCHMARKS, PAPER, reproduce

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """A small run directory made by the demo command (few epochs)."""
    out = tmp_path_factory.mktemp("demo") / "run"
    result = subprocess.run(
        [sys.executable, "-m", "h2learn.cli", "demo", "--epochs", "2", "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "report:" in result.stdout and "test accuracy" in result.stdout
    return out


def _plots(page: str) -> list[np.ndarray]:
    images = re.findall(r'<img class="plot" alt="plot" src="data:image/png;base64,([^"]+)"', page)
    return [mpimg.imread(io.BytesIO(base64.b64decode(data)), format="png") for data in images]


def test_demo_writes_every_artifact(demo_run):
    for name in (
        "metrics.json",
        "checkpoint.pt",
        "trace.h2t",
        "stats.json",
        "verify.json",
        "simulation.json",
        "report.html",
    ):
        assert (demo_run / name).is_file(), name
    assert json.loads((demo_run / "verify.json").read_text())["max_err"] <= 1e-5


def test_html_report_has_every_plot_and_none_is_blank(demo_run):
    page = (demo_run / "report.html").read_text()
    plots = _plots(page)
    # accuracy, spike and du heat maps, energy and area breakdowns, pipeline timeline
    assert len(plots) == 6
    for image in plots:
        assert image.std() > 0.01, "a plot is blank"
    for heading in ("Training", "Sparsity", "Engines reproduce the trace", "Cost of one", "paper"):
        assert heading in page
    assert "http://" not in page and "https://" not in page  # self-contained


def test_report_renders_in_headless_chromium(demo_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing in CI; `make test` installs Debian's chromium")
        pytest.skip("chromium not installed (make test installs it)")
    shot = tmp_path / "report.png"
    subprocess.run(
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1100,4200",
            f"--screenshot={shot}",
            (demo_run / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    image = mpimg.imread(shot)
    assert image.shape[0] >= 4000 and image.shape[1] == 1100
    rows_with_ink = (image[..., :3].min(axis=2) < 0.5).any(axis=1)
    # every plot and table leaves ink: far more than a blank or broken page
    assert rows_with_ink.mean() > 0.3
    colourful = np.abs(image[..., 0] - image[..., 2]) > 0.2
    assert colourful.sum() > 5000, "no coloured plot pixels rendered"


def test_report_errors_are_one_line(tmp_path):
    with pytest.raises(H2LearnError, match="no run directory"):
        write_html_report(tmp_path / "missing")
    with pytest.raises(H2LearnError, match="holds none of"):
        write_html_report(tmp_path)


def test_reproduce_writes_summary_csvs_and_report(tmp_path):
    summary = reproduce(
        tmp_path,
        batch_size=2,
        benchmarks=BENCHMARKS[-2:],
        use_traces=False,
        waterfall_max_size=1,
    )
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["paper"]["v100"]["area_saving"] == PAPER["area_saving"]
    for name, row in saved["benchmarks"].items():
        for baseline in ("v100", "dense"):
            assert {"speedup", "energy_saving", "area_saving"} <= set(row[baseline]), name
        assert row["dense"]["area_saving"] == pytest.approx(1.0, rel=0.01)
        assert (tmp_path / f"{name}_layers.csv").is_file()
    report = (tmp_path / "report.md").read_text()
    for figure in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report):
        assert (tmp_path / figure).is_file(), figure
    assert "| speedup | 5.74-10.20x |" in report
    assert summary["ranges"]["v100"]["speedup"][0] > 0
    # the waterfall: per benchmark a list of steps, each a file with its three figures
    assert set(saved["waterfall"]) == {b.name for b in BENCHMARKS[-2:]}
    for steps in saved["waterfall"].values():
        assert steps[0]["name"] == "default" and len(steps) > 5
        for step in steps:
            if "skipped" not in step:
                assert (tmp_path / step["file"]).is_file()
                assert {"speedup", "energy_saving", "area_saving", "assumption"} <= set(step)
    assert "## The gap to the paper, taken apart" in report
    assert "### The smallest set of assumptions" in report
    assert saved["waterfall_search"]["smallest_set"]["max_size"] == 1
