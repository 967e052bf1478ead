"""The waterfall: every step is a loadable config that reproduces its figures; the set search."""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from h2learn.arch.config import ConfigError, default_config, set_field
from h2learn.compare import compare_config, compare_designs, load_comparison
from h2learn.errors import H2LearnError
from h2learn.report import waterfall as wf
from h2learn.report.area import design_area_mm2, size_to_area
from h2learn.report.reproduce import BENCHMARKS
from h2learn.workload.densities import STATED_DENSITIES

SMALL = tuple(b for b in BENCHMARKS if b.name in ("fmnist-conv", "dvs-gesture"))
BATCH = 2


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("waterfall")
    return out, wf.run_waterfall(out, SMALL, default_config(), BATCH, max_size=1)


def test_every_step_file_simulated_alone_gives_its_figures(run):
    out, result = run
    checked = 0
    for bench in SMALL:
        steps = result["benchmarks"][bench.name]
        assert [s["step"] for s in steps] == list(range(len(wf.ASSUMPTIONS) + 1))
        for step in steps:
            if "skipped" in step:
                assert step["skipped"] and "file" not in step
                continue
            comparison = compare_config(load_comparison(out / step["file"]))
            for metric in wf.METRICS:
                assert comparison.vs_v100[metric] == pytest.approx(step[metric], rel=1e-12)
            checked += 1
    assert checked >= 2 * 6


def test_default_step_is_the_plain_comparison(run):
    _, result = run
    bench = SMALL[0]
    default = result["benchmarks"][bench.name][0]
    spec = bench.spec(BATCH)
    plain = compare_designs(spec, default_config(), STATED_DENSITIES).vs_v100
    for metric in wf.METRICS:
        assert default[metric] == pytest.approx(plain[metric], rel=1e-12)


def test_steps_change_what_they_say(run):
    out, result = run
    steps = {s["name"]: s for s in result["benchmarks"][SMALL[0].name]}
    clock = load_comparison(out / steps["clock-0.8ghz"]["file"])
    assert clock.hardware.clock_ghz == 0.8
    assert clock.hardware.model_copy(update={"name": "", "clock_ghz": 1.0}) == (
        default_config().model_copy(update={"name": ""})
    )
    batch = load_comparison(out / steps["batch-64"]["file"])
    assert batch.workload.batch_size == 64
    assert steps["area-110mm2"]["area_saving"] == pytest.approx(815 / 110.4, rel=1e-3)
    assert steps["lonic-preset"]["h2learn"]["area_mm2"] == pytest.approx(110.46, rel=5e-3)
    # a GPU-side step leaves H2Learn alone
    gpu = steps["gpu-fp16-tensor-core"]
    assert gpu["h2learn"] == steps["default"]["h2learn"]
    # a step is skipped exactly when its config cannot be simulated in this build
    for step in steps.values():
        if step["name"] == "default":
            continue
        assumption = next(a for a in wf.ASSUMPTIONS if a.name == step["name"])
        assert ("skipped" in step) == (wf.skip_reason(assumption, default_config()) is not None)


def test_skipped_steps_are_named_and_left_out_of_the_search(run):
    _, result = run
    search = result["smallest_set"]
    steps = result["benchmarks"][SMALL[0].name]
    assert search["skipped"] == {s["name"]: s["skipped"] for s in steps if "skipped" in s}
    if search["skipped"]:
        from h2learn.report.markdown import smallest_set_text
        from h2learn.report.reproduce import PAPER

        text = " ".join(smallest_set_text(search, PAPER))
        assert all(name in text for name in search["skipped"])


def test_search_without_a_landing_set_says_what_refuses(run):
    _, result = run
    search = result["smallest_set"]
    assert search["max_size"] == 1
    if not search["found"]:
        assert search["refusing"] and set(search["refusing"]) <= set(wf.METRICS)
        low, high = search["power_ratio_needed"]
        assert low == pytest.approx(5.74 / 7.12) and high == pytest.approx(10.20 / 5.25)


def test_area_explanation_computes_the_older_node():
    from h2learn.report.markdown import area_explanation

    config = default_config()
    text = area_explanation(config, design_area_mm2(config))
    at_32 = design_area_mm2(set_field(config, "technology_nm", 32))
    assert f"at 32 nm give {at_32:.0f} mm^2" in text
    assert f"{design_area_mm2(config):.1f} mm^2 at 16 nm" in text and "110.4 mm^2" in text


def test_a_benchmark_a_step_file_cannot_express_is_refused():
    bench = dataclasses.replace(SMALL[0], overrides={"input_kind": "spikes"})
    with pytest.raises(H2LearnError, match="cannot be written to a comparison config"):
        wf.base_setup(bench, BATCH, default_config())


def test_lands_uses_the_papers_rounding():
    assert wf.lands("area_saving", 7.384) and not wf.lands("area_saving", 7.386)
    assert wf.lands("speedup", 5.736) and not wf.lands("speedup", 5.734)
    assert wf.lands("energy_saving", 7.12) and not wf.lands("energy_saving", 7.13)


def test_combinations_match_brute_force():
    usable = [a for a in wf.ASSUMPTIONS if a.name != "cost-synthesized"]
    combos = wf.combinations(usable)
    sizes = [len(c) for c in combos]
    assert sizes == sorted(sizes) and combos[0] == ()
    # brute force: every subset, kept if it has one value per axis and no excluded axis
    expected = set()
    for mask in itertools.product((False, True), repeat=len(usable)):
        chosen = tuple(a for a, keep in zip(usable, mask, strict=True) if keep)
        axes = [a.axis for a in chosen]
        excluded = {x for a in chosen for x in a.excludes}
        if len(axes) == len(set(axes)) and not excluded & set(axes):
            expected.add(tuple(a.name for a in chosen))
    names = [tuple(a.name for a in combo) for combo in combos]
    assert set(names) == expected and len(names) == len(expected)


def test_search_finds_a_planted_answer(monkeypatch):
    """Ranges set to what one step alone gives: the search must return exactly that step."""
    evaluator = wf.Evaluator()
    setups = [wf.base_setup(b, BATCH, default_config()) for b in SMALL[:1]]
    usable = [a for a in wf.ASSUMPTIONS if a.name in ("clock-0.8ghz", "dram-5.7pj", "batch-64")]
    dram = next(a for a in usable if a.name == "dram-5.7pj")
    target = wf.apply(setups[0], [dram], wf.Sizing())
    figures = evaluator.figures(target)
    ranges = {m: (round(figures[m], 2), round(figures[m], 2)) for m in wf.METRICS}
    monkeypatch.setattr(wf, "PAPER_RANGES", ranges)
    search = wf.smallest_set(setups, usable, wf.Sizing(), evaluator)
    assert search["found"] and search["sets"] == [["dram-5.7pj"]]


def test_size_to_area_hits_the_target_and_refuses_the_impossible():
    config = size_to_area(default_config(), 110.43, pe_scale=2.0)
    assert design_area_mm2(config) == pytest.approx(110.43, rel=1e-3)
    assert config.forward_engine.pe_count == 256 and config.elementwise.lanes == 512
    bigger = size_to_area(default_config(), 150.0, pe_scale=2.0)
    assert bigger.buffers.weight.size_kib > config.buffers.weight.size_kib
    with pytest.raises(ConfigError, match="exceed"):
        size_to_area(set_field(default_config(), "technology_nm", 45), 20.0, pe_scale=4.0)


def test_a_landing_set_is_written_as_a_loadable_file(monkeypatch, tmp_path):
    """Ranges planted at the default's own figures: the empty set lands and its file loads."""
    bench = SMALL[0]
    setup = wf.base_setup(bench, BATCH, default_config())
    figures = wf.Evaluator().figures(setup)
    ranges = {m: (round(figures[m], 2), round(figures[m], 2)) for m in wf.METRICS}
    monkeypatch.setattr(wf, "PAPER_RANGES", ranges)
    result = wf.run_waterfall(tmp_path, (bench,), default_config(), BATCH, max_size=0)
    search = result["smallest_set"]
    assert search["found"] and search["sets"] == [[]]
    loaded = load_comparison(tmp_path / search["files"][bench.name])
    again = compare_config(loaded).vs_v100
    for metric in wf.METRICS:
        assert again[metric] == pytest.approx(search["figures"][bench.name][metric], rel=1e-12)
        assert again[metric] == pytest.approx(figures[metric], rel=1e-12)
