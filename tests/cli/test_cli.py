"""The command line: one-line errors, listings, a short training run."""

import json
import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "h2learn.cli", *args], capture_output=True, text=True, cwd=cwd
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["train", "--model", "nope"], "unknown model"),
        (["train", "--dataset", "nope"], "unknown dataset"),
        (["train", "--time-steps", "0"], "time_steps"),
        (["train", "--dataset", "cifar10", "--data-dir", "/nonexistent"], "cifar10"),
        (["train", "--resume", "--out", "/nonexistent/run"], "no checkpoint"),
        (["train", "--model", "resnet"], "below 1x1"),
    ],
)
def test_bad_input_gives_one_line_error(args, message):
    result = run(*args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert message in lines[0] and "Traceback" not in result.stderr


def test_models_and_datasets_list_everything():
    listing = run("models").stdout
    for name in (
        "digits-mlp",
        "fmnist-conv",
        "cifar-vgg",
        "dvs-gesture",
        "dvs-cifar10",
        "alexnet",
        "resnet",
    ):
        assert name in listing
    assert "fashion-mnist" in run("datasets").stdout


def test_train_writes_metrics(tmp_path):
    out = tmp_path / "run"
    result = run(
        "train",
        "--epochs",
        "1",
        "--limit-train",
        "128",
        "--limit-test",
        "32",
        "--no-reset-grad",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_accuracy"] <= 1 and "train_seconds" in metrics
    assert metrics["config"]["reset_grad"] is False


def test_sweep_command_writes_results(tmp_path):
    out = tmp_path / "sweep"
    result = run(
        "sweep", "--vary", "k=2,4", "--model", "digits-mlp", "--workers", "1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert sorted(row["k"] for row in rows) == [2, 4]


def test_simulate_reads_a_comparison_config(tmp_path):
    config = tmp_path / "step.yaml"
    config.write_text(
        "clock_ghz: 0.8\n"
        "workload: {model: digits-mlp, batch_size: 4, densities: {'*': {mask: 0.2}}}\n"
        "baseline: {gpu_numerics: fp16-tensor-core}\n"
    )
    result = run("simulate", "--config", str(config), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["h2learn"]["batch_size"] == 4 and data["h2learn"]["clock_ghz"] == 0.8
    assert data["v100_model"]["numerics"] == "fp16-tensor-core"
    from h2learn.compare import compare_config, load_comparison

    expected = compare_config(load_comparison(config)).vs_v100
    assert data["v100"] == pytest.approx(expected, rel=1e-12)
    # the command line wins over the file
    result = run("simulate", "--config", str(config), "--batch-size", "2", "--json")
    assert json.loads(result.stdout)["h2learn"]["batch_size"] == 2
    # the table names the V100's numerics (AMP here), not only the parameters' dtype
    result = run("simulate", "--config", str(config))
    assert result.returncode == 0 and "fp16-tensor-core" in result.stdout


@pytest.mark.parametrize("command", [["reproduce"], ["sweep", "--vary", "k=2"]])
def test_hardware_only_commands_refuse_comparison_sections(tmp_path, command):
    config = tmp_path / "step.yaml"
    config.write_text("clock_ghz: 0.8\nbaseline: {gpu_numerics: fp32}\n")
    result = run(*command, "--config", str(config), "--out", str(tmp_path / "out"))
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "drop the baseline section" in lines[0], result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("workload: {modle: x}\n", [], "workload.modle: unknown field"),
        ("clock_ghz: 0\n", ["--model", "digits-mlp"], "clock_ghz: must be > 0"),
        ("{}\n", [], "give exactly one of --trace FILE or --model NAME"),
        ("workload: {model: digits-mlp}\n", ["--trace", "x.h2t"], "drop the config's workload"),
        ("{}\n", ["--trace", "x.h2t", "--batch-size", "2"], "drop --batch-size and -T"),
        ("workload: {model: nosuch}\n", [], "unknown model 'nosuch'"),
        (
            "workload: {model: digits-mlp, batch_size: -3}\n",
            [],
            "workload.batch_size: must be >= 1",
        ),
        ("workload: {model: digits-mlp, batch_size: true}\n", [], "batch_size: input should be"),
        ("workload: [1]\n", [], "workload: must be a section"),
        ("baseline: {gpu_numerics: fp8}\n", [], "choose one of: fp32, fp16-tensor-core"),
        ("forward_engine: {pe_count: true}\n", [], "forward_engine.pe_count: must be a number"),
        ("clock_ghz: [\n", [], "is not valid YAML (line 2)"),
        ("{}\n", ["--model", "digits-mlp", "--batch-size", "0"], "batch_size=0"),
        ("{}\n", ["--model", "digits-mlp", "-T", "0"], "time_steps=0"),
    ],
)
def test_simulate_config_errors_are_one_line(tmp_path, content, args, message):
    config = tmp_path / "bad.yaml"
    config.write_text(content)
    result = run("simulate", "--config", str(config), *args)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.stderr
