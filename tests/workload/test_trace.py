"""Traces: recording, the on-disk format, its errors, statistics, and engine verification."""

import json
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from reference import lif_numpy

from h2learn.arch.verify import verify_trace
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import FC, Conv, Pool, expand
from h2learn.workload.record import record_from_dataset
from h2learn.workload.stats import trace_stats
from h2learn.workload.trace import Trace, TraceError, _forward, record_trace


def _small_conv_net() -> SpikingNetwork:
    sketch = [Conv(6), Pool("maxpool", 2), Conv(8, stride=2), FC(12), FC(4)]
    spec = expand("small", (2, 8, 8), 4, sketch, time_steps=4)
    torch.manual_seed(0)
    return SpikingNetwork(spec)


@pytest.fixture(scope="module")
def conv_trace(tmp_path_factory):
    model = _small_conv_net()
    x = torch.rand(6, 2, 8, 8) * 3
    labels = torch.randint(0, 4, (6,))
    path = tmp_path_factory.mktemp("trace") / "small.h2t"
    record_trace(model, x, labels).save(path)
    return path, model, x, labels


def test_recording_forward_equals_the_model():
    model = _small_conv_net()
    x = torch.rand(3, 2, 8, 8) * 3
    rate, _ = _forward(model, model.encode(x))
    torch.testing.assert_close(rate, model(x), rtol=0, atol=0)


def test_save_load_round_trip_with_bits(conv_trace):
    path, model, x, labels = conv_trace
    loaded = Trace.load(path)
    fresh = record_trace(model, x, labels)
    for a, b in zip(fresh, loaded, strict=True):
        assert a.tensors.keys() == b.tensors.keys()
        for name in a.tensors:
            assert torch.equal(a.tensors[name], b.tensors[name]), name
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo("conv1/spikes.bits")
        assert info.file_size == -(-loaded["conv1"].tensors["spikes"].numel() // 8)
        assert not any(name.endswith(".pkl") for name in archive.namelist())
    assert loaded.spec == model.spec and loaded.meta["labels"] == labels.tolist()


def test_independent_recomputation_agrees_with_the_trace(conv_trace):
    """From weights and inputs alone: psum, current, u, o, mask, du and dW (float64)."""
    trace = Trace.load(conv_trace[0])
    p = trace.spec.lif
    for record in trace:
        t, layer = record.tensors, record.spec
        x = t["input"].double().flatten(0, 1)
        w = t["weight"].double()
        if layer.kind == "conv":
            psum = F.conv2d(x, w, None, layer.stride, layer.padding)
        else:
            psum = x @ w.t()
        np.testing.assert_allclose(
            psum.numpy().ravel(),
            t["psum"].double().numpy().ravel(),
            atol=1e-5 * psum.abs().max().item(),
        )
        if "u" in t:
            u, o, mask = lif_numpy(t["current"].double().numpy(), p)
            np.testing.assert_allclose(u, t["u"].numpy(), atol=1e-5)
            assert (o.astype(bool) == t["spikes"].numpy()).mean() > 0.999
            # BPTT for du from the incoming do (numpy, float64)
            g = t["grad_output"].double().numpy()
            du = np.zeros_like(g)
            nxt = np.zeros_like(g[0])
            for step in range(g.shape[0] - 1, -1, -1):
                h = p.height * mask[step]
                do = g[step] - (p.alpha * u[step] * nxt if p.reset_grad else 0)
                du[step] = h * do + p.alpha * (1 - o[step]) * nxt
                nxt = du[step]
            scale = np.abs(du).max() or 1.0
            assert np.abs(du - t["grad_current"].numpy()).max() <= 1e-5 * scale
        g = t["grad_psum"].double().flatten(0, 1)
        if layer.kind == "conv":
            dw = torch.ops.aten.convolution_backward(
                g,
                x,
                w,
                None,
                [layer.stride] * 2,
                [layer.padding] * 2,
                [1, 1],
                False,
                [0, 0],
                1,
                (False, True, False),
            )[1]
        else:
            dw = g.t() @ x
        torch.testing.assert_close(t["grad_weight"].double(), dw, rtol=1e-6, atol=1e-7)


def test_verify_float32_reproduces_every_tensor(conv_trace):
    result = verify_trace(Trace.load(conv_trace[0]), k=3, fmt="float32")
    assert result["max_err"] <= 1e-5 and result["spike_mismatches"] == 0
    keys = {key for layer in result["layers"] for key in layer if key.endswith("_err")}
    assert {"forward_err", "backward_err", "update_err", "lif_u_err", "lif_du_err"} <= keys
    fc1 = next(layer for layer in result["layers"] if layer["layer"] == "fc1")
    lookups = fc1["counts"]["forward"]["lookups"]
    assert lookups == -(-fc1_fan_in(result) // 3) * 12 * 4 * 6  # ceil(fan_in/k) x outputs x points


def fc1_fan_in(result) -> int:
    return 8 * 2 * 2  # conv2 output 8 x 2 x 2, flattened


def test_stats_match_direct_counts(conv_trace):
    trace = Trace.load(conv_trace[0])
    stats = trace_stats(trace)
    conv2 = next(layer for layer in stats["layers"] if layer["layer"] == "conv2")
    spikes = trace["conv2"].tensors["spikes"]
    assert conv2["spikes"] == pytest.approx(spikes.float().mean().item())
    assert conv2["spikes_per_step"] == pytest.approx(spikes.flatten(1).float().mean(1).tolist())
    assert all(
        0 <= value <= 1
        for layer in stats["layers"]
        for key, value in layer.items()
        if isinstance(value, float)
    )


def _rewrite(src, dst, edit):
    with zipfile.ZipFile(src) as archive, zipfile.ZipFile(dst, "w") as out:
        for item in archive.infolist():
            out.writestr(item, edit(item.filename, archive.read(item.filename)))


def test_corrupt_truncated_and_wrong_version_traces_fail_clearly(conv_trace, tmp_path):
    path = conv_trace[0]
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h2t"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(TraceError, match="corrupt or truncated"):
        Trace.load(truncated)
    flipped = bytearray(data)
    member_offset = data.index(b"conv1/psum.npy") + 200
    flipped[member_offset] ^= 0xFF
    corrupt = tmp_path / "corrupt.h2t"
    corrupt.write_bytes(bytes(flipped))
    with pytest.raises(TraceError, match="corrupt"):
        Trace.load(corrupt)

    def bump_version(name, payload):
        if name != "meta.json":
            return payload
        meta = json.loads(payload)
        meta["version"] = 99
        return json.dumps(meta)

    old = tmp_path / "old.h2t"
    _rewrite(path, old, bump_version)
    with pytest.raises(TraceError, match="version 99"):
        Trace.load(old)

    def wrong_spec(name, payload):
        if name != "meta.json":
            return payload
        meta = json.loads(payload)
        meta["spec"]["layers"][0]["out_shape"] = [7, 8, 8]
        return json.dumps(meta)

    mismatched = tmp_path / "mismatch.h2t"
    _rewrite(path, mismatched, wrong_spec)
    with pytest.raises(TraceError, match="does not match its spec"):
        Trace.load(mismatched)
    with pytest.raises(TraceError, match="no trace"):
        Trace.load(tmp_path / "missing.h2t")


def test_record_from_checkpoint_and_synthetic(tmp_path):
    from h2learn.snn.train import TrainConfig, train

    train(TrainConfig(epochs=1, limit_train=64, limit_test=16), tmp_path / "run")
    trained = record_from_dataset(checkpoint=tmp_path / "run" / "checkpoint.pt", batch_size=4)
    assert trained.meta["source"]["epoch"] == 1 and trained.batch_size == 4
    synthetic = record_from_dataset("dvs-cifar10", "synthetic", batch_size=1, time_steps=2)
    assert synthetic.spec.input_kind == "events" and synthetic.time_steps == 2


def test_cli_trace_stats_verify(tmp_path):
    trace_file = tmp_path / "digits.h2t"

    def run(*args):
        return subprocess.run(
            [sys.executable, "-m", "h2learn.cli", *args], capture_output=True, text=True
        )

    made = run(
        "trace",
        "--model",
        "digits-mlp",
        "--dataset",
        "digits",
        "--batch-size",
        "8",
        "--out",
        str(trace_file),
    )
    assert made.returncode == 0, made.stderr
    stats = json.loads(run("stats", str(trace_file), "--json").stdout)
    assert [layer["layer"] for layer in stats["layers"]] == ["fc1", "fc2"]
    verified = run("verify", "--trace", str(trace_file), "--k", "4", "--json")
    report = json.loads(verified.stdout)
    assert report["max_err"] <= 1e-5
    bad = run("verify", "--trace", str(trace_file), "--format", "float8")
    assert bad.returncode == 2 and "unknown number format" in bad.stderr


def test_engine_format_trace_survives_saving_and_stays_bit_identical(tmp_path):
    trace = record_from_dataset(dataset="digits", batch_size=4, engine_format="fixed8.8")
    assert trace.meta["source"]["engine_format"] == "fixed8.8"
    loaded = Trace.load(trace.save(tmp_path / "fixed.h2t"))
    report = verify_trace(loaded, fmt="fixed8.8")
    errors = [v for layer in report["layers"] for k, v in layer.items() if k.endswith("_err")]
    assert errors and all(v == 0.0 for v in errors) and report["spike_mismatches"] == 0


def test_trace_of_a_spike_coded_checkpoint_uses_its_encoding(tmp_path):
    from h2learn.snn.train import TrainConfig, train

    config = TrainConfig(
        dataset="digits", epochs=1, limit_train=64, limit_test=32, encoding="delta"
    )
    train(config, tmp_path / "run")
    trace = record_from_dataset(checkpoint=tmp_path / "run" / "checkpoint.pt", batch_size=4)
    first = trace.layers[0]
    assert trace.meta["source"]["encoding"] == "delta" and trace.spec.input_kind == "spikes"
    assert first.tensors["input"].dtype == torch.bool
    assert tuple(first.tensors["input"].shape) == (trace.time_steps, 4, 2 * 8 * 8)
    stats = trace_stats(trace)
    assert stats["layers"][0]["input"] == pytest.approx(
        float(first.tensors["input"].float().mean())
    )
