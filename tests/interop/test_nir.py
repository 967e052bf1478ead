"""NIR import and export: snnTorch's exporter as the independent reference, round trips, errors.

The snnTorch files are written at test time by snnTorch's own exporter
(``snntorch.export_nir``, which needs ``nirtorch``); nothing is committed.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import nir
import numpy as np
import pytest
import torch

from h2learn.interop import (
    build_model,
    export_network,
    import_graph,
    load_weights_file,
    read_nir,
    save_weights,
    translate_neuron,
    write_nir,
)
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import FC, Conv, LIFParams, Pool, build_spec, expand

try:  # the reference: snnTorch and its NIR exporter (which needs nirtorch), test extras
    import snntorch as snn
    from snntorch import export_nir
    from snntorch import utils as snn_utils
except ImportError as missing:  # pragma: no cover - the test extras install both
    snn = export_nir = snn_utils = None
    SNNTORCH_MISSING = str(missing)
else:
    SNNTORCH_MISSING = ""

needs_snntorch = pytest.mark.skipif(
    bool(SNNTORCH_MISSING), reason=f"snnTorch's NIR exporter: {SNNTORCH_MISSING}"
)
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # nirtorch's own

BETA, THRESHOLD = 0.9, 0.5


def leaky(shape: tuple[int, ...], output: bool = False):
    """snnTorch's Leaky with reset to zero: the neuron model that coincides with h2learn's.

    Per-neuron tensors, because snnTorch's exporter only type-checks those.
    """
    return snn.Leaky(
        beta=torch.full(shape, BETA),
        threshold=torch.full(shape, THRESHOLD),
        reset_mechanism="zero",
        init_hidden=True,
        output=output,
    )


def snntorch_conv_net() -> torch.nn.Sequential:
    torch.manual_seed(1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(2, 6, 3, padding=1),
        leaky((6, 8, 8)),
        torch.nn.AvgPool2d(2),
        torch.nn.Flatten(),
        torch.nn.Linear(6 * 4 * 4, 10),
        leaky((10,), output=True),
    )


def exported(net: torch.nn.Module, sample_shape: tuple[int, ...], path) -> nir.NIRGraph:
    """Export with snnTorch's exporter, write to ``path``, read back with h2learn's reader."""
    graph = export_nir.export_to_nir(net, torch.zeros(1, *sample_shape), ignore_dims=[0])
    nir.write(path, graph)
    return read_nir(path)


def snntorch_spikes(net: torch.nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    """Spikes ``[T, B, ...]`` of every Leaky of ``net`` over the time-major input ``x``."""
    snn_utils.reset(net)
    steps: list[list[torch.Tensor]] = []
    with torch.no_grad():
        for frame in x:
            signal, spikes = frame, []
            for module in net:
                signal = module(signal)
                if isinstance(signal, tuple):  # output=True: (spk, mem)
                    signal = signal[0]
                if isinstance(module, snn.Leaky):
                    spikes.append(signal)
            steps.append(spikes)
    return [torch.stack(layer) for layer in zip(*steps, strict=True)]


def h2learn_spikes(model: SpikingNetwork, x: torch.Tensor) -> list[torch.Tensor]:
    """Outputs ``[T, B, ...]`` of the firing weighted layers, and the read-out of the last."""
    record: list[dict] = []
    with torch.no_grad():
        model(x, record=record)
    firing = {layer.name for layer in model.spec.layers if layer.fires}
    return [entry["output"].float() for entry in record if entry["layer"] in firing]


# --------------------------------------------------------------------------
# snnTorch's exporter -> h2learn
# --------------------------------------------------------------------------


@needs_snntorch
def test_snntorch_export_imports_with_the_same_spikes(tmp_path):
    net = snntorch_conv_net()
    imported = import_graph(
        exported(net, (2, 8, 8), tmp_path / "net.nir"), time_steps=8, input_kind="events"
    )
    spec = imported.spec
    assert [(layer.kind, layer.fires) for layer in spec.layers] == [
        ("conv", True),
        ("avgpool", False),
        ("flatten", False),
        ("fc", True),
    ]
    assert (spec.lif.alpha, spec.lif.v_th) == (BETA, THRESHOLD)
    model = build_model(spec, imported.state_dict, "test")
    torch.manual_seed(2)
    x = torch.rand(8, 16, 2, 8, 8) * 1.5  # time-varying input, the same for both
    reference, ours = snntorch_spikes(net, x), h2learn_spikes(model, x)
    assert len(reference) == len(ours) == 2
    for theirs, mine in zip(reference, ours, strict=True):
        assert 0.05 < theirs.mean() < 0.95  # the comparison sees both spikes and silence
        assert torch.equal(theirs, mine)
    # A static image: h2learn computes its current once and repeats it over T.
    image = x[0]
    repeated = snntorch_spikes(net, image.expand(8, *image.shape))
    for theirs, mine in zip(repeated, h2learn_spikes(model, image), strict=True):
        assert torch.equal(theirs, mine)
    # The comparison is sharp: a decay or threshold off by 2% changes the spikes.
    for wrong in ({"alpha": BETA * 0.98}, {"v_th": THRESHOLD * 1.02}):
        off = spec.with_network(lif=dataclasses.replace(spec.lif, **wrong))
        changed = h2learn_spikes(build_model(off, imported.state_dict, "test"), x)
        assert any(not torch.equal(a, b) for a, b in zip(reference, changed, strict=True))


def _semantics(inputs: list[float], alpha: float, v_th: float, strict: bool, subtract: bool):
    """Brute-force float64 neuron: SYSTEM.md's equation, or a variant (>=, reset by subtraction)."""
    u, spike, out = 0.0, 0.0, []
    for x in inputs:
        u = alpha * (u - v_th * spike) + x if subtract else alpha * u * (1 - spike) + x
        spike = float(u > v_th if strict else u >= v_th)
        out.append(spike)
    return out


@needs_snntorch
def test_snntorch_neuron_fires_strictly_and_resets_to_zero_before_decay(tmp_path):
    """Check snnTorch's firing test and reset order against ours on one crafted neuron.

    Step 1 lands exactly on the threshold (fires only under ``>=``); step 3
    fires only under reset by subtraction.  h2learn, snnTorch and the
    brute-force recurrence ``u = alpha*u*(1-o) + x, o = u > V_th`` agree; the
    variants do not, so the test tells them apart.
    """
    net = torch.nn.Sequential(torch.nn.Linear(1, 1, bias=False), leaky((1,), output=True))
    with torch.no_grad():
        net[0].weight.fill_(1.0)
    imported = import_graph(exported(net, (1,), tmp_path / "one.nir"), time_steps=5)
    inputs = [0.5, 0.1, 0.47, 0.02, 0.2]
    x = torch.tensor(inputs).reshape(5, 1, 1)
    expected = _semantics(inputs, BETA, THRESHOLD, strict=True, subtract=False)
    assert expected == [0.0, 1.0, 0.0, 0.0, 1.0]
    assert _semantics(inputs, BETA, THRESHOLD, strict=False, subtract=False) != expected
    assert _semantics(inputs, BETA, THRESHOLD, strict=True, subtract=True) != expected
    theirs = snntorch_spikes(net, x)[0].flatten().tolist()
    model = build_model(imported.spec, imported.state_dict, "test")
    ours = h2learn_spikes(model, x)[0].flatten().tolist()
    assert theirs == ours == expected


@needs_snntorch
def test_snntorch_mlp_with_bias_free_linear_and_current_readout(tmp_path):
    """An MLP ending in a Linear without a neuron: h2learn's current read-out."""
    torch.manual_seed(3)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 20), leaky((20,)), torch.nn.Linear(20, 4)
    )
    imported = import_graph(exported(net, (12,), tmp_path / "mlp.nir"), time_steps=6)
    spec = imported.spec
    assert [layer.fires for layer in spec.weighted_layers] == [True, False]
    model = build_model(spec, imported.state_dict, "test")
    x = torch.rand(6, 7, 12)
    snn_utils.reset(net)
    with torch.no_grad():
        reference = torch.stack([net(frame) for frame in x]).mean(0)
        torch.testing.assert_close(model(x), reference, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# h2learn -> NIR -> h2learn
# --------------------------------------------------------------------------


def _random_weights(model: SpikingNetwork, seed: int) -> SpikingNetwork:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                fresh = torch.rand(tensor.shape, generator=generator) - 0.3
                if "running_var" in name:
                    fresh = fresh + 0.6
                tensor.copy_(fresh)
    return model.eval()


def _round_trip(model: SpikingNetwork, path, dt: float = 1e-4):
    write_nir(export_network(model, dt), path)
    imported = import_graph(read_nir(path))
    return imported.spec, build_model(imported.spec, imported.state_dict, str(path))


@pytest.mark.parametrize("alpha", [0.3, 0.25, 1.0, 0.123456789012345, 0.987654321098765])
def test_round_trip_gives_the_same_spec_and_spikes(tmp_path, alpha):
    sketch = [
        Conv(5, batch_norm=False),
        Pool("avgpool", 2),
        Conv(7, stride=2, padding=0, batch_norm=False),
        FC(9),
        FC(3, fires=False),
    ]
    lif = LIFParams(alpha=alpha, v_th=0.7, window=0.3, height=2.0, reset_grad=False)
    spec = expand("mine", (2, 12, 12), 3, sketch, time_steps=5, batch_size=4, lif=lif)
    model = _random_weights(SpikingNetwork(spec), seed=4)
    again, model_again = _round_trip(model, tmp_path / "mine.nir", dt=1e-3)
    assert again == spec
    x = torch.rand(5, 6, 2, 12, 12)
    first, second = h2learn_spikes(model, x), h2learn_spikes(model_again, x)
    assert len(first) == 3 and all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    with torch.no_grad():
        assert torch.equal(model(x), model_again(x))


def test_round_trip_folds_batch_norm_into_the_weights(tmp_path):
    spec = build_spec("digits-mlp", time_steps=4)
    model = _random_weights(SpikingNetwork(spec), seed=5)
    again, model_again = _round_trip(model, tmp_path / "digits.nir")
    assert again == spec.with_network(
        layers=tuple(dataclasses.replace(layer, batch_norm=False) for layer in spec.layers)
    )
    x = torch.rand(9, 1, 8, 8)
    first, second = h2learn_spikes(model, x), h2learn_spikes(model_again, x)
    assert first[0].mean() > 0.01 and torch.equal(first[0], second[0])
    with torch.no_grad():
        torch.testing.assert_close(model(x), model_again(x), rtol=1e-5, atol=1e-5)


def test_weights_file_and_checkpoint_round_trip(tmp_path):
    spec = build_spec("digits-mlp", time_steps=3)
    model = _random_weights(SpikingNetwork(spec), seed=6)
    optimizer = torch.optim.Adam(model.parameters())
    model(torch.rand(2, 1, 8, 8)).sum().backward()
    optimizer.step()
    model.eval()
    # What a training checkpoint holds besides the spec and the weights.
    extra = {"config": {"dataset": "digits"}, "optimizer": optimizer.state_dict(), "epoch": 0}
    torch.save(
        {"version": 1, "spec": spec.to_dict(), "model": model.state_dict(), **extra},
        tmp_path / "checkpoint.pt",
    )
    save_weights(tmp_path / "w.pt", spec, model.state_dict())
    x = torch.rand(2, 1, 8, 8)
    for name in ("w.pt", "checkpoint.pt"):
        loaded = load_weights_file(tmp_path / name)
        with torch.no_grad():
            assert loaded.spec == spec and torch.equal(loaded(x), model(x))


# --------------------------------------------------------------------------
# Neuron translation
# --------------------------------------------------------------------------


def test_lif_translation_is_forward_euler():
    dt, tau, r = 1e-3, 4e-3, 2.0
    node = nir.LIF(
        tau=np.array([tau]), r=np.array([r]), v_leak=np.zeros(1), v_threshold=np.array([0.8])
    )
    translation = translate_neuron("n", node, dt)
    assert translation.alpha == pytest.approx(1 - dt / tau)
    assert translation.gain == pytest.approx(r * dt / tau)
    assert translation.v_th == 0.8
    # The gain is folded into the weights: the imported layer's current is gain * W x.
    graph = nir.NIRGraph.from_list(
        nir.Input(input_type={"input": np.array([2])}),
        nir.Affine(weight=np.array([[1.0, -2.0]]), bias=np.array([0.5])),
        node,
        nir.Output(output_type={"output": np.array([1])}),
        type_check=False,
    )
    imported = import_graph(graph, dt=dt)
    weight = [t for k, t in imported.state_dict.items() if k.endswith("weight")][0]
    assert weight.flatten().tolist() == pytest.approx([0.5, -1.0])
    if_node = nir.IF(r=np.array([50.0]), v_threshold=np.array([1.0]))
    assert translate_neuron("i", if_node, 1e-2).alpha == 1.0
    assert translate_neuron("i", if_node, 1e-2).gain == pytest.approx(0.5)
    assert translate_neuron("i", if_node, 1e-3).gain == pytest.approx(0.05)  # gain scales with dt


def _float32_export(beta: np.ndarray, dt: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """``tau`` and ``r`` as a float32 exporter computes them (snnTorch: numpy, float32)."""
    tau = np.float32(dt) / (np.float32(1) - beta)
    return tau, tau / np.float32(dt)


def test_trained_float32_decays_and_thresholds_come_back_bit_for_bit():
    """A trained beta (any float32 in (0.5, 1)) survives tau = dt/(1-beta) in float32.

    Rounding 1 - dt/tau to 6 digits, as an earlier version did, gives a
    different float32 for most such betas (and so different spikes).
    """
    rng = np.random.default_rng(11)
    betas = rng.uniform(0.5, 0.999, 400).astype(np.float32)
    thresholds = rng.uniform(0.05, 3.0, 400).astype(np.float32)
    cut_to_6_digits = 0
    for beta, v_th in zip(betas, thresholds, strict=True):
        tau, r = _float32_export(np.array([beta]))
        node = nir.LIF(tau=tau, r=r, v_leak=np.zeros(1, np.float32), v_threshold=np.array([v_th]))
        translation = translate_neuron("n", node)
        assert np.float32(translation.alpha) == beta
        assert np.float32(translation.v_th) == v_th
        assert translation.gain == 1.0
        cut_to_6_digits += np.float32(f"{1 - 1e-4 / float(tau[0]):.6g}") != beta
    assert cut_to_6_digits > 300  # the old rounding would have failed here
    # Round decays keep their short form, so specs read as they were written.
    tau, r = _float32_export(np.full(1, 0.9, np.float32))
    node = nir.LIF(tau=tau, r=r, v_leak=np.zeros(1), v_threshold=np.full(1, 0.5, np.float32))
    assert (translate_neuron("n", node).alpha, translate_neuron("n", node).v_th) == (0.9, 0.5)


@needs_snntorch
def test_snntorch_trained_parameters_give_the_same_spikes(tmp_path):
    """Non-round beta and threshold through snnTorch's exporter: bit-identical spikes."""
    beta, threshold = 0.87654321, 0.7654321

    def trained(shape, output=False):
        return snn.Leaky(
            beta=torch.full(shape, beta),
            threshold=torch.full(shape, threshold),
            reset_mechanism="zero",
            init_hidden=True,
            output=output,
        )

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(32, 256), trained((256,)), torch.nn.Linear(256, 10), trained((10,), True)
    )
    imported = import_graph(exported(net, (32,), tmp_path / "trained.nir"), time_steps=30)
    lif = imported.spec.lif
    assert np.float32(lif.alpha) == np.float32(beta)
    assert np.float32(lif.v_th) == np.float32(threshold)
    x = torch.rand(30, 32, 32) * 0.4
    model = build_model(imported.spec, imported.state_dict, "test")
    reference, ours = snntorch_spikes(net, x), h2learn_spikes(model, x)
    assert reference[0].mean() > 0.01
    for theirs, mine in zip(reference, ours, strict=True):
        assert torch.equal(theirs, mine)


@pytest.mark.parametrize("padding", [(1, 1), "same"])
def test_sum_pooling_folds_its_window_size_into_the_next_layer(padding):
    rng = np.random.default_rng(7)
    conv = nir.Conv2d(
        input_shape=None,
        weight=rng.normal(size=(3, 1, 3, 3)),
        stride=1,
        padding=padding,
        dilation=1,
        groups=1,
        bias=rng.normal(size=3),
    )
    affine = nir.Affine(weight=rng.normal(size=(5, 12)), bias=rng.normal(size=5))

    def graph(pool):
        nodes = {
            "input": nir.Input(input_type={"input": np.array([1, 1, 4, 4])}),  # batch of 1
            "conv": conv,
            "pool": pool(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=[0, 0]),
            "flat": nir.Flatten(input_type={"input": np.array([3, 2, 2])}, start_dim=0),
            "fc": affine,
            "output": nir.Output(output_type={"output": np.array([5])}),
        }
        keys = list(nodes)
        return _graph(nodes, list(zip(keys[:-1], keys[1:], strict=True)))

    summed, averaged = import_graph(graph(nir.SumPool2d)), import_graph(graph(nir.AvgPool2d))
    assert summed.spec == averaged.spec and summed.spec.input_shape == (1, 4, 4)
    assert summed.spec.layers[0].padding == 1
    for key, tensor in averaged.state_dict.items():
        factor = 4.0 if key == "layers.3.op.weight" else 1.0  # the fc weights only
        torch.testing.assert_close(summed.state_dict[key], tensor * factor)


def _graph(nodes: dict, edges: list) -> nir.NIRGraph:
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False)


# --------------------------------------------------------------------------
# The commands
# --------------------------------------------------------------------------


def _cli(*args, cwd):
    return subprocess.run(
        [sys.executable, "-m", "h2learn.cli", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
    )


@needs_snntorch
def test_import_simulate_and_export_commands(tmp_path):
    exported(snntorch_conv_net(), (2, 8, 8), tmp_path / "net.nir")
    result = _cli("import", "net.nir", "--out", "net.json", "-T", "4", "--simulate", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "conv1*" in result.stdout and "vs V100" in result.stdout
    assert "reset_mechanism='subtract'" in result.stdout  # the file cannot tell the resets apart
    assert (tmp_path / "net.json").is_file() and (tmp_path / "net.pt").is_file()
    result = _cli("export", "net.pt", "--out", "back.nir", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    again = import_graph(read_nir(tmp_path / "back.nir"))
    assert again.spec == load_weights_file(tmp_path / "net.pt").spec
    assert not again.notes  # h2learn's own file: no reset caveat
