"""Reproduce's grounding: trained-network rows beside fresh ones, and the CPU check."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from h2learn.cli import app
from h2learn.report.grounding import TrainedSchedule, trace_densities
from h2learn.report.reproduce import Benchmark, reproduce
from h2learn.snn.train import CHECKPOINT_NAME, TrainConfig, train
from h2learn.workload.record import record_from_dataset

DIGITS = Benchmark("digits", "digits-mlp", 10, 2, "digits")
NO_DATA = Benchmark("dvs-cifar10", "dvs-cifar10", 10, 2, None)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    out = tmp_path_factory.mktemp("grounded")
    schedule = TrainedSchedule(epochs=1, limit_train=96, limit_test=32, batch_size=32)
    summary = reproduce(
        out,
        batch_size=2,
        benchmarks=(DIGITS, NO_DATA),
        waterfall=False,
        trained=schedule,
        cpu_cases=(("digits-mlp", 2, 2),),
    )
    return out, summary


def test_a_benchmark_with_data_gets_a_trained_row_beside_the_fresh_one(suite):
    out, summary = suite
    row = summary["benchmarks"]["digits"]
    trained = row["trained"]
    assert trained["trained_here"] and trained["epochs"] == 1
    assert 0.0 <= trained["test_accuracy"] <= 1.0
    assert set(row["densities"]) >= {"input", "mask", "du_psum"}
    # the trained densities are those of a trace recorded independently from the checkpoint
    trace = record_from_dataset(checkpoint=trained["checkpoint"], batch_size=2)
    assert trained["densities"] == trace_densities(trace)
    assert trained["v100"]["speedup"] > 0 and trained["h2learn"]["energy_j"] > 0
    assert trained["densities"] != row["densities"]  # one epoch moves the masks
    assert "trained" not in summary["benchmarks"]["dvs-cifar10"]  # no data: stated densities
    report = (out / "report.md").read_text()
    assert "## Fresh vs trained networks" in report and "| digits | fresh |" in report


def test_the_cpu_check_is_in_the_summary_and_the_report(suite):
    out, summary = suite
    result = json.loads((out / "summary.json").read_text())["cpu_validation"]["digits-mlp"]
    assert result["predicted_s"] > 0 and result["measured_s"] > 0
    assert result["total_error"] == pytest.approx(
        result["predicted_s"] / result["measured_s"] - 1, rel=1e-12
    )
    assert "## The baseline method checked on this CPU" in (out / "report.md").read_text()


def test_a_given_checkpoint_is_used_as_it_is(tmp_path):
    config = TrainConfig(dataset="digits", epochs=1, limit_train=64, limit_test=32, time_steps=2)
    train(config, tmp_path / "run")
    checkpoint = tmp_path / "run" / CHECKPOINT_NAME
    schedule = TrainedSchedule(checkpoints={"digits-mlp": checkpoint})
    summary = reproduce(
        tmp_path / "out", batch_size=2, benchmarks=(DIGITS,), waterfall=False, trained=schedule
    )
    trained = summary["benchmarks"]["digits"]["trained"]
    assert trained["checkpoint"] == str(checkpoint) and not trained["trained_here"]
    assert trained["schedule"] is None and not (tmp_path / "out" / "trained").exists()


@pytest.mark.parametrize(
    "option, message",
    [("digits", "write NAME=PATH"), ("digits=/no/such/file.pt", "no file at")],
)
def test_bad_checkpoint_options_are_one_line(option, message, tmp_path):
    result = CliRunner().invoke(app, ["reproduce", "--out", str(tmp_path), "--checkpoint", option])
    assert result.exit_code == 2 and message in result.output
