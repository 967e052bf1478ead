"""Data-parallel training: torchrun with 2 CPU processes (gloo) equals one process.

The reference is the ordinary single-process trainer with the same global
batch, run in this test process.  In float64 the two may differ only by
summation order (about 1e-16), so any mistake in sharding, loss scaling,
gradient averaging or batch-norm synchronisation shows up as a large gap.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from h2learn.errors import H2LearnError
from h2learn.snn.distributed import World, process_world
from h2learn.snn.sync_norm import sync_batch_norm
from h2learn.snn.train import TrainConfig, train
from snn.data.helpers import write_idx_set

pytestmark = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch has no torch.distributed"
)


def torchrun(args: list[str], cwd: Path, processes: int = 2) -> subprocess.CompletedProcess:
    """``torchrun --standalone --nproc-per-node N -m h2learn train ARGS`` in a subprocess."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += [f"--nproc-per-node={processes}", "-m", "h2learn", "train", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def cli_args(config: TrainConfig, out: Path) -> list[str]:
    args = [
        f"--dataset={config.dataset}",
        f"--model={config.resolved_model()}",
        f"--epochs={config.epochs}",
        f"--batch-size={config.batch_size}",
        f"--limit-train={config.limit_train}",
        f"--limit-test={config.limit_test}",
        f"--precision={config.precision}",
        f"--optimizer={config.optimizer}",
        f"--out={out}",
    ]
    if config.data_dir is not None:
        args.append(f"--data-dir={config.data_dir}")
    if config.augment:
        args.append("--augment")
    return args


def assert_same_run(config: TrainConfig, tmp_path: Path, atol: float) -> dict:
    """Train ``config`` in this process and under 2-process torchrun; compare everything."""
    single = train(config, tmp_path / "single")
    result = torchrun(cli_args(config, tmp_path / "ddp"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "data parallel over 2 processes" in result.stderr
    a = torch.load(tmp_path / "single" / "checkpoint.pt", weights_only=False)
    b = torch.load(tmp_path / "ddp" / "checkpoint.pt", weights_only=False)
    assert a["config"] == b["config"]
    assert a["model"].keys() == b["model"].keys()
    for key, value in a["model"].items():
        other = b["model"][key]
        if value.is_floating_point():
            assert torch.allclose(value, other, rtol=0, atol=atol), (key, value - other)
        else:
            assert torch.equal(value, other), key
    for mine, theirs in zip(a["history"], b["history"], strict=True):
        assert mine["test_accuracy"] == theirs["test_accuracy"]
        assert mine["train_accuracy"] == theirs["train_accuracy"]
        assert mine["train_loss"] == pytest.approx(theirs["train_loss"], rel=1e-12)
    ddp_metrics = (tmp_path / "ddp" / "metrics.json").read_text()
    assert '"processes": 2' in ddp_metrics
    return single


def test_two_processes_train_digits_mlp_like_one(tmp_path):
    # 225 = 7 * 32 + 1: the last global batch has one sample, so one process's
    # shard is empty and it must still take part in every collective.
    config = TrainConfig(
        **{"dataset": "digits", "model": "digits-mlp", "precision": "float64"},
        **{"epochs": 2, "batch_size": 32, "limit_train": 225, "limit_test": 101},
    )
    assert_same_run(config, tmp_path, atol=1e-12)


def test_two_processes_train_a_conv_network_like_one(tmp_path):
    # fmnist-conv: conv + 2-d batch norm on a repeated image (computed once per
    # sample), max pooling and fc layers, on tiny Fashion-MNIST IDX files.
    rng = np.random.default_rng(0)
    for split, n in (("train", 45), ("test", 20)):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 60, (n, 28, 28)) + 19 * labels[:, None, None]
        write_idx_set(tmp_path / "data", split, images, labels, gz=False)
    config = TrainConfig(
        dataset="fashion-mnist",
        model="fmnist-conv",
        epochs=1,
        batch_size=16,
        limit_train=45,
        limit_test=20,
        precision="float64",
        data_dir=str(tmp_path / "data"),
        augment=True,  # draws for the global batch, each process applying its share
        # SGD: Adam divides by sqrt(v) + 1e-8, which turns float64 rounding in a
        # near-zero gradient into weight differences of up to lr / 1e-8 times it
        # (6e-12 on this network's fc weights), hiding what this test checks.
        optimizer="sgd",
    )
    assert_same_run(config, tmp_path, atol=1e-12)


# --------------------------------------------------------------------------
# Synchronised batch norm against plain batch norm of the whole batch.
# --------------------------------------------------------------------------


def _norm_cases():
    """``(name, batch norm, input, upstream gradient)``, the same in every process (seeded)."""
    torch.manual_seed(0)
    for name, shape, norm in (
        ("conv", (9, 3, 4, 5), nn.BatchNorm2d(3)),
        ("fc", (7, 6), nn.BatchNorm1d(6)),
    ):
        norm = norm.double()
        with torch.no_grad():
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.5, 0.5)
        full = torch.randn(shape, dtype=torch.float64)
        yield name, norm, full, torch.randn(shape, dtype=torch.float64)


def _sync_worker(rank: int, size: int, init_file: str, queue) -> None:
    torch.distributed.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=size
    )
    try:
        results = {}
        for name, norm, full, upstream in _norm_cases():
            if full.dim() == 4:
                full = full.to(memory_format=torch.channels_last)
            # rank 0 gets 2 samples of the conv batch, rank 1 the rest; fc: rank 0 none
            cut = 2 if name == "conv" else 0
            part = slice(0, cut) if rank == 0 else slice(cut, None)
            z = full[part].clone().requires_grad_(True)
            out = sync_batch_norm(z, norm, time_copies=3)
            (out * upstream[part]).sum().backward()
            results[name] = {  # numpy: plain pickles (tensors would need this process alive)
                "out": out.detach().numpy().copy(),
                "grad": z.grad.numpy().copy(),
                "weight_grad": norm.weight.grad.numpy().copy(),
                "bias_grad": norm.bias.grad.numpy().copy(),
                "running_mean": norm.running_mean.numpy().copy(),
                "running_var": norm.running_var.numpy().copy(),
            }
        queue.put((rank, results))
    finally:
        torch.distributed.destroy_process_group()


def test_sync_batch_norm_equals_batch_norm_of_the_whole_batch(tmp_path):
    context = mp.get_context("spawn")
    queue = context.Queue()
    init_file = str(tmp_path / "rendezvous")
    procs = [context.Process(target=_sync_worker, args=(r, 2, init_file, queue)) for r in (0, 1)]
    for proc in procs:
        proc.start()
    results = dict(queue.get(timeout=300) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0

    for name, norm, full, upstream in _norm_cases():
        shape = full.shape
        full.requires_grad_(True)
        # reference: each sample stands for 3 identical time steps
        copies = full.unsqueeze(0).expand(3, *shape).reshape(3 * shape[0], *shape[1:])
        out = F.batch_norm(
            copies,
            norm.running_mean,
            norm.running_var,
            norm.weight,
            norm.bias,
            True,
            norm.momentum,
            norm.eps,
        )[: shape[0]]
        (out * upstream).sum().backward()
        got = [{k: torch.from_numpy(v) for k, v in results[r][name].items()} for r in (0, 1)]
        assert torch.allclose(torch.cat([g["out"] for g in got]), out, atol=1e-13)
        assert torch.allclose(torch.cat([g["grad"] for g in got]), full.grad, atol=1e-13)
        for key, param in (("weight_grad", norm.weight), ("bias_grad", norm.bias)):
            total = got[0][key] + got[1][key]  # what DDP's gradient all-reduce adds
            assert torch.allclose(total, param.grad, atol=1e-13), key
        for g in got:
            assert torch.allclose(g["running_mean"], norm.running_mean, atol=1e-14)
            assert torch.allclose(g["running_var"], norm.running_var, atol=1e-14)


# --------------------------------------------------------------------------
# The process world.
# --------------------------------------------------------------------------


@given(n=st.integers(0, 70), size=st.integers(1, 5))
def test_shards_partition_the_global_batch(n, size):
    batch = torch.randperm(n)
    shards = [World(rank, size).shard(batch) for rank in range(size)]
    assert torch.equal(torch.cat(shards), batch)
    lengths = [len(s) for s in shards]
    assert max(lengths) - min(lengths) <= 1


def test_one_process_world_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with process_world() as world:
        assert world == World(0, 1) and world.is_main and not world.distributed
        assert world.sum([1, 2.5]) == [1.0, 2.5]
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("value", ["two", "0"])
def test_bad_world_size_is_one_line_error(monkeypatch, value):
    monkeypatch.setenv("WORLD_SIZE", value)
    with pytest.raises(H2LearnError, match="WORLD_SIZE"), process_world():
        pass


def test_cli_worker_error_without_rendezvous_is_one_line(tmp_path):
    # WORLD_SIZE=2 without torchrun's rendezvous variables: a clear error, no traceback.
    env = {**os.environ, "WORLD_SIZE": "2", "RANK": "0", "PYTHONWARNINGS": "ignore"}
    env.pop("MASTER_ADDR", None)
    env.pop("MASTER_PORT", None)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "h2learn",
            "train",
            "--epochs=1",
            "--limit-train=8",
            "--limit-test=8",
            f"--out={tmp_path / 'x'}",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: could not join the torchrun")
