"""Design-space sweeps: process pool vs Dask, resume, Pareto flags, input errors."""

from __future__ import annotations

import json

import pytest

from h2learn.arch.config import default_config
from h2learn.errors import H2LearnError
from h2learn.explore.sweep import pareto_flags, parse_vary, point_id, run_sweep

MODEL = "digits-mlp"  # the fastest zoo model to simulate (~20 ms a point)
VARY_60 = {
    "k": [2, 4, 8],
    "backward_engine.pe_count": [64, 128, 256, 512],
    "clock_ghz": [0.5, 1.0, 1.5, 2.0, 2.5],
}
SMALL = {"k": [2, 4], "backward_engine.pe_count": [64, 128, 256]}


def _strip(rows):
    return [{k: v for k, v in row.items()} for row in rows]


@pytest.fixture(scope="module")
def pool_rows(tmp_path_factory):
    out = tmp_path_factory.mktemp("pool")
    return run_sweep(default_config(), VARY_60, MODEL, out, workers=2), out


def test_pool_sweep_outputs(pool_rows):
    rows, out = pool_rows
    assert len(rows) == 60
    assert [r["id"] for r in rows] == sorted(r["id"] for r in rows)
    assert all(r["seconds"] > 0 and r["energy_j"] > 0 and r["area_mm2"] > 0 for r in rows)
    # k reaches the simulation: energy changes with k at fixed other fields
    fixed = [r for r in rows if r["clock_ghz"] == 1.0 and r["backward_engine.pe_count"] == 256]
    assert len({r["energy_j"] for r in fixed}) == 3
    summary = json.loads((out / "results.json").read_text())
    assert summary["rows"] == rows
    assert summary["pareto"] == [r["id"] for r in rows if r["pareto"]]
    assert any(r["pareto"] for r in rows)
    for metric in ("seconds", "energy_j", "area_mm2", "power_w"):
        assert summary["best"][metric][metric] == min(r[metric] for r in rows)
        assert summary["best"][metric]["pareto"] or metric == "power_w"  # ties broken well
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert len(csv_lines) == 61 and csv_lines[0].startswith("k,backward_engine.pe_count")
    for name in ("pareto_time_energy.png", "pareto_time_area.png"):
        assert (out / name).read_bytes()[:4] == b"\x89PNG"
    assert len((out / "points.jsonl").read_text().splitlines()) == 60


def test_dask_matches_process_pool(pool_rows, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    rows, _ = pool_rows
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    ) as cluster:
        dask_rows = run_sweep(
            default_config(), VARY_60, MODEL, tmp_path, scheduler=cluster.scheduler_address
        )
    assert dask_rows == rows
    assert (tmp_path / "results.csv").read_text() == (pool_rows[1] / "results.csv").read_text()


def test_serial_matches_pool(pool_rows, tmp_path):
    rows, _ = pool_rows
    serial = run_sweep(default_config(), VARY_60, MODEL, tmp_path, workers=1)
    assert serial == rows


def test_resume_after_interrupt(tmp_path):
    reference = run_sweep(default_config(), SMALL, MODEL, tmp_path / "ref", workers=1)

    def stop_after_two(done, total, row):
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_sweep(default_config(), SMALL, MODEL, out, workers=1, progress=stop_after_two)
    assert len((out / "points.jsonl").read_text().splitlines()) == 2
    assert not (out / "results.json").exists()

    calls = []
    rows = run_sweep(
        default_config(), SMALL, MODEL, out, workers=1, progress=lambda *a: calls.append(a)
    )
    assert len(calls) == 4
    assert [total for _, total, _ in calls] == [6] * 4
    assert rows == reference


def test_resume_recomputes_only_missing_lines(tmp_path):
    rows = run_sweep(default_config(), SMALL, MODEL, tmp_path, workers=2)
    journal = tmp_path / "points.jsonl"
    lines = journal.read_text().splitlines()
    kept = lines[:3]
    # a torn last write: half a line without its newline
    journal.write_text("".join(line + "\n" for line in kept) + lines[3][:20])
    missing = {json.loads(line)["id"] for line in lines[3:]}
    seen = []
    again = run_sweep(
        default_config(), SMALL, MODEL, tmp_path, workers=2, progress=lambda d, t, r: seen.append(r)
    )
    assert {r["id"] for r in seen} == missing
    assert again == rows
    assert len(journal.read_text().splitlines()) == 6

    untouched = []
    run_sweep(default_config(), SMALL, MODEL, tmp_path, progress=lambda *a: untouched.append(a))
    assert untouched == []


def test_resume_refuses_other_base(tmp_path):
    run_sweep(default_config(), {"k": [2]}, MODEL, tmp_path, workers=1)
    with pytest.raises(H2LearnError, match="another model"):
        run_sweep(default_config(), {"k": [2]}, "fmnist-conv", tmp_path, workers=1)
    other = default_config().replace(vdd=0.9)
    with pytest.raises(H2LearnError, match="base config"):
        run_sweep(other, {"k": [2]}, MODEL, tmp_path, workers=1)


def test_pareto_flags_hand_made():
    rows = [
        {"seconds": 1, "energy_j": 5, "area_mm2": 5},  # best time: front
        {"seconds": 5, "energy_j": 1, "area_mm2": 5},  # best energy: front
        {"seconds": 5, "energy_j": 5, "area_mm2": 1},  # best area: front
        {"seconds": 2, "energy_j": 2, "area_mm2": 2},  # balanced: front
        {"seconds": 3, "energy_j": 3, "area_mm2": 3},  # dominated by the balanced one
        {"seconds": 2, "energy_j": 2, "area_mm2": 3},  # dominated (worse area only)
        {"seconds": 2, "energy_j": 2, "area_mm2": 2},  # duplicate of a front point: front
        {"seconds": 6, "energy_j": 6, "area_mm2": 6},  # dominated by everything
    ]
    assert pareto_flags(rows) == [True, True, True, True, False, False, True, False]
    assert pareto_flags([]) == []
    assert pareto_flags(rows[:1]) == [True]


def test_parse_vary():
    vary = parse_vary(["k=2,4,8", "clock_ghz=0.5,1e0", "optimizations.lut=true,False", "name=a,b"])
    assert vary == {
        "k": [2, 4, 8],
        "clock_ghz": [0.5, 1.0],
        "optimizations.lut": [True, False],
        "name": ["a", "b"],
    }
    assert isinstance(vary["k"][0], int) and vary["optimizations.lut"][0] is True
    for bad, match in [
        (["k"], "expected FIELD="),
        (["=1,2"], "expected FIELD="),
        (["k=2,,4"], "empty value"),
        (["k="], "empty value"),
        (["k=2", "k=4"], "given twice"),
    ]:
        with pytest.raises(H2LearnError, match=match) as info:
            parse_vary(bad)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("vary", "match"),
    [
        ({"forward_engine.no_such_field": [1]}, "no field 'forward_engine.no_such_field'"),
        ({"nope": [1, 2]}, "no field 'nope'"),
        ({"forward_engine": [1]}, "no field 'forward_engine'"),
        ({"k": [2, 0]}, r"k=0: .*lut_group_size: must be >= 1"),
        (
            {"k": [4], "backward_engine.pe_count": [128, -1]},
            "backward_engine.pe_count: must be >= 1",
        ),
        ({"clock_ghz": ["fast"]}, "clock_ghz"),
        ({"k": []}, "non-empty list"),
        ({"k": [2, 2]}, "given twice"),
        ({"k": [2], "forward_engine.lut_group_size": [4]}, "vary only one"),
    ],
)
def test_bad_inputs_fail_before_running(tmp_path, vary, match):
    calls = []
    with pytest.raises(H2LearnError, match=match) as info:
        run_sweep(default_config(), vary, MODEL, tmp_path / "out", progress=calls.append)
    assert "\n" not in str(info.value)
    assert calls == []
    assert not (tmp_path / "out" / "points.jsonl").exists()


def test_bad_model_and_workers(tmp_path):
    with pytest.raises(H2LearnError, match="unknown model"):
        run_sweep(default_config(), {"k": [2]}, "no-such-model", tmp_path)
    with pytest.raises(H2LearnError, match="workers"):
        run_sweep(default_config(), {"k": [2]}, MODEL, tmp_path, workers=0)


def test_point_id_is_order_independent():
    assert point_id({"k": 2, "clock_ghz": 1.0}) == point_id({"clock_ghz": 1.0, "k": 2})
