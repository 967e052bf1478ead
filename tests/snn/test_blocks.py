"""The public spiking blocks against autograd through the plain equations (float64).

The reference writes every block out with plain tensor operations on the
merged ``T * B`` batch (conv/linear with bias, batch norm with the biased
batch variance, the LIF equations as a Python loop over time, PyTorch's own
pooling) and lets autograd derive the backward pass.  Each block must give the
same output and gradients for its input and every parameter (relative error
at most 1e-6) on the fused C++ path and with ``H2LEARN_KERNELS=torch``.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from reference import lif_autograd
from torch import nn

from h2learn.snn import (
    LIF,
    AvgPool2d,
    Flatten,
    MaxPool2d,
    SpikingConv2d,
    SpikingLinear,
    StaticInput,
    TimeDistributed,
    fuse_pooling,
    kernels,
)
from h2learn.snn.blocks import BlockError, build_layer
from h2learn.snn.layers import COMPACT_INDEX_PLANE, WeightedBlock, is_time_invariant, runs_once
from h2learn.snn.neuron import carries_spikes
from h2learn.spec import LayerSpec, LIFParams, build_spec

BACKENDS = ["cpp", "torch"] if kernels.compiler_on_path() else ["torch"]
PARAMS = LIFParams(alpha=0.6, v_th=0.3, window=0.4, height=1.3)
T, B = 4, 3


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def _plain_block(block: WeightedBlock, x: torch.Tensor) -> torch.Tensor:
    """``block``'s forward in plain operations with its parameters: the autograd reference."""
    spec, steps = block.spec, x.shape[0]
    flat = x.flatten(0, 1)
    if spec.kind == "conv":
        z = F.conv2d(flat, block.op.weight, block.op.bias, spec.stride, spec.padding)
    else:
        z = F.linear(flat, block.op.weight, block.op.bias)
    if block.norm is not None:
        dims = [0, *range(2, z.dim())]
        shape = [1, -1] + [1] * (z.dim() - 2)
        mean = z.mean(dims, keepdim=True)
        var = ((z - mean) ** 2).mean(dims, keepdim=True)
        z = (z - mean) / torch.sqrt(var + block.norm.eps)
        z = z * block.norm.weight.view(shape) + block.norm.bias.view(shape)
    z = z.unflatten(0, (steps, -1))
    if block.neuron is None:
        return z
    out = lif_autograd(z, block.neuron.params)
    if block.pool is not None:
        mode, k = block.pool
        pool = F.max_pool2d if mode == "max" else F.avg_pool2d
        out = pool(out.flatten(0, 1), k).unflatten(0, (steps, -1))
    return out


def _check(module: nn.Module, reference, x: torch.Tensor, backend: str, seed: int = 0) -> None:
    """Output and gradients (input, every parameter) of ``module`` against ``reference``."""
    module = module.double().train()
    module.zero_grad(set_to_none=True)
    ref_module = copy.deepcopy(module)
    expand = is_time_invariant(x)  # before .double(), which copies an expanded tensor
    x = x.double()
    leaf = x.detach().clone().requires_grad_(True)
    ref_leaf = x.detach().clone().requires_grad_(True)
    inp = leaf[0].expand_as(x) if expand else leaf
    ref_inp = ref_leaf[0].expand_as(x) if expand else ref_leaf
    with kernels.kernel_backend(backend):
        out = module(inp)
    ref = reference(ref_module, ref_inp)
    torch.manual_seed(seed)
    weight = torch.randn_like(ref)
    (out * weight).sum().backward()
    (ref * weight).sum().backward()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    assert ref.abs().sum() > 0, "the reference output is all zero: nothing is tested"
    assert _relative(leaf.grad, ref_leaf.grad) <= 1e-6
    for (name, p), q in zip(module.named_parameters(), ref_module.parameters(), strict=True):
        assert q.grad is not None and q.grad.abs().max() > 0, f"{name}: no reference gradient"
        assert _relative(p.grad, q.grad) <= 1e-6, name


def _maps(channels: int = 3, size: int = 8, steps: int = T, seed: int = 1) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.rand(steps, B, channels, size, size) * 2


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("pool", [None, "max", "avg"])
@pytest.mark.parametrize("static", [False, True])
def test_spiking_conv_gradients_equal_autograd(backend, batch_norm, pool, static):
    torch.manual_seed(2)
    block = SpikingConv2d(3, 4, 3, padding=1, batch_norm=batch_norm, neuron=PARAMS, pool=pool)
    x = _maps()
    if static:
        x = x[0].expand_as(x)  # one map repeated over time: the conv runs once
    _check(block, _plain_block, x, backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pooling_of_a_map_not_tiled_by_the_windows(backend, pool):
    """A 7x7 map with 2x2 windows: pooled by a separate layer (floor), same values."""
    torch.manual_seed(3)
    block = SpikingConv2d(2, 3, 3, padding=1, neuron=PARAMS, pool=pool)
    _check(block, _plain_block, _maps(2, 7), backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("fires", [False, True])
def test_spiking_linear_gradients_equal_autograd(backend, batch_norm, fires):
    torch.manual_seed(4)
    block = SpikingLinear(6, 5, batch_norm=batch_norm, neuron=PARAMS, fires=fires)
    x = torch.rand(T, B, 6) * 2
    _check(block, _plain_block, x, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_spiking_blocks_keep_spike_inputs_as_bool_with_exact_gradients(backend):
    """A block fed another block's spikes saves them as bool; gradients still exact."""
    torch.manual_seed(5)
    net = nn.Sequential(
        SpikingConv2d(2, 4, 3, padding=1, neuron=PARAMS),
        SpikingConv2d(4, 4, 3, stride=2, padding=1, neuron=PARAMS),
        Flatten(),
        SpikingLinear(64, 5, neuron=PARAMS, fires=False),
    )

    def reference(ref, x):
        h = _plain_block(ref[0], x)
        h = _plain_block(ref[1], h)
        return _plain_block(ref[3], h.flatten(2))

    _check(net, reference, _maps(2, 8), backend)
    with kernels.kernel_backend(backend):
        spikes = net[0](_maps(2, 8).double().requires_grad_(True))
        assert carries_spikes(spikes)
        out = net[1](spikes)
    assert "_SpikeConv2dBackward" in _graph_nodes(out)  # the bool-saving convolution
    spikes.add_(0)  # an in-place change voids the tag
    assert not carries_spikes(spikes)


def _graph_nodes(out: torch.Tensor) -> set[str]:
    """The names of every autograd node behind ``out``."""
    seen, todo = set(), [out.grad_fn]
    while todo:
        node = todo.pop()
        if node is None or type(node).__name__ in seen:
            continue
        seen.add(type(node).__name__)
        todo += [n for n, _ in node.next_functions]
    return seen


def _plain_network(ref: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """conv-avgpool-conv-maxpool-flatten-fc-fc in plain operations, ``x [B, ...]``."""
    h = x.unsqueeze(0).expand(T, *x.shape) if x.dim() == 4 else x
    for module in ref:
        if isinstance(module, WeightedBlock):
            h = _plain_block(module, h)
        elif isinstance(module, TimeDistributed):
            flat = h.flatten(0, 1)
            inner = module.module
            if isinstance(inner, nn.AvgPool2d):
                flat = F.avg_pool2d(flat, inner.kernel_size, inner.stride)
            elif isinstance(inner, nn.MaxPool2d):
                flat = F.max_pool2d(flat, inner.kernel_size, inner.stride)
            else:
                flat = flat.flatten(1)
            h = flat.unflatten(0, (T, -1))
    return h


def _user_network(batch_norm: bool) -> nn.Sequential:
    return nn.Sequential(
        StaticInput(T),
        SpikingConv2d(1, 4, 3, padding=1, batch_norm=batch_norm, neuron=PARAMS),
        AvgPool2d(2),
        SpikingConv2d(4, 6, 3, padding=1, batch_norm=batch_norm, neuron=PARAMS),
        MaxPool2d(2),
        Flatten(),
        SpikingLinear(6 * 4 * 4, 8, batch_norm=batch_norm, neuron=PARAMS),
        SpikingLinear(8, 3, neuron=PARAMS, fires=False),
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize("fused", [False, True])
def test_user_network_in_sequential_equals_autograd(backend, batch_norm, fused):
    """A network written with the blocks in nn.Sequential; with and without fuse_pooling."""
    torch.manual_seed(6)
    net = _user_network(batch_norm)
    if fused:
        fuse_pooling(net)
        assert net[1].pool == ("avg", 2) and net[3].pool == ("max", 2)
        assert isinstance(net[2], nn.Identity) and isinstance(net[4], nn.Identity)
        assert not net[1].planar_pool and net[3].planar_pool  # a Flatten follows the second

    def reference(ref, x):
        return _plain_network(ref, x[0] if x.dim() == 5 else x)

    x = torch.rand(T, B, 1, 16, 16) * 2
    _check(net, reference, x[0].expand_as(x), backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_time_distributed_torch_layers_and_lif_equal_autograd(backend):
    """Plain torch layers wrapped in TimeDistributed around h2learn's LIF."""
    torch.manual_seed(7)
    net = nn.Sequential(
        TimeDistributed(nn.Conv2d(2, 4, 3, padding=1)),
        LIF(**PARAMS.__dict__),
        TimeDistributed(nn.MaxPool2d(2)),
        TimeDistributed(nn.Flatten()),
        TimeDistributed(nn.Linear(64, 3)),
    )

    def reference(ref, x):
        h = F.conv2d(x.flatten(0, 1), ref[0].module.weight, ref[0].module.bias, padding=1)
        h = lif_autograd(h.unflatten(0, (T, -1)), PARAMS)
        h = F.max_pool2d(h.flatten(0, 1), 2).flatten(1)
        return F.linear(h, ref[4].module.weight, ref[4].module.bias).unflatten(0, (T, -1))

    x = _maps(2, 8)
    _check(net, reference, x, backend)
    _check(net, reference, x[0].expand_as(x), backend)  # conv once, LIF on the one current


def test_static_input_makes_the_first_block_run_once():
    x = torch.rand(B, 1, 8, 8)
    rep = StaticInput(T)(x)
    assert rep.shape == (T, B, 1, 8, 8) and is_time_invariant(rep)
    block = SpikingConv2d(1, 2, 3, padding=1)
    assert block._runs_once(rep) and not block._runs_once(rep.contiguous())
    assert StaticInput(T)(rep) is rep  # [T, B, ...] passes through


def test_bad_block_arguments_raise_one_clear_error():
    with pytest.raises(BlockError, match="pool='mean'"):
        SpikingConv2d(1, 2, 3, pool="mean")
    with pytest.raises(BlockError, match="kernel_size"):
        SpikingConv2d(1, 2, 0)
    with pytest.raises(BlockError, match="fires=True"):
        SpikingConv2d(1, 2, 3, pool="max", fires=False)
    with pytest.raises(BlockError, match=r"expects \[T, B, 3, H, W\]"):
        SpikingConv2d(3, 2, 3)(torch.rand(2, 4, 1, 8, 8))
    with pytest.raises(BlockError, match=r"expects \[T, B, 6\]"):
        SpikingLinear(6, 2)(torch.rand(4, 5))
    with pytest.raises(BlockError, match="sample dimensions"):
        StaticInput(T)(torch.rand(8, 8))


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("name", ["digits-mlp", "fmnist-conv", "cifar-vgg"])
def test_runs_once_is_what_the_layers_do(name, batch):
    """The public predicate agrees with the modules on every zoo layer (and B*L == 1)."""
    spec = build_spec(name, batch_size=batch)
    for layer in spec.layers:
        module = build_layer(layer, spec.lif)
        x = torch.rand(1, batch, *layer.in_shape).expand(3, batch, *layer.in_shape)
        for invariant, inp in ((True, x), (False, x.contiguous())):
            expected = runs_once(layer, batch, invariant)
            if isinstance(module, WeightedBlock):
                assert module._runs_once(inp) == expected, layer.name
            else:
                assert expected == invariant
                with torch.no_grad():
                    assert is_time_invariant(module(inp)) == expected, layer.name
    # one value per channel and step: batch norm must not run once
    fc = LayerSpec("fc", "fc", (4,), (2,), batch_norm=True, fires=True)
    assert not runs_once(fc, 1) and runs_once(fc, 2) and not runs_once(fc, 2, False)
    assert runs_once(LayerSpec("fc", "fc", (4,), (2,)), 1)


@pytest.mark.parametrize("rows, dtype", [(128, torch.int16), (129, torch.int32)])
def test_compact_index_plane_bounds_int16_indices(rows, dtype):
    """PyTorch's pooling path keeps int16 argmax up to COMPACT_INDEX_PLANE positions."""
    assert COMPACT_INDEX_PLANE == 2**15
    x = torch.rand(1, 1, rows, 256, requires_grad=True)
    assert (rows * 256 <= COMPACT_INDEX_PLANE) == (dtype == torch.int16)
    with kernels.kernel_backend("torch"):
        out = MaxPool2d(2).module(x)
    (index,) = out.grad_fn.saved_tensors
    assert index.dtype == dtype
    out.sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    F.max_pool2d(ref, 2).sum().backward()
    assert torch.equal(x.grad, ref.grad)


def test_the_documented_example_runs():
    """The Python block of docs/building-networks.md's Example section runs and prints the
    logits' shape (other sections hold fragments)."""
    import contextlib
    import io
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "building-networks.md"
    example = doc.read_text().split("\n## Example\n", 1)[1].split("\n## ", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", example, re.S)
    out = io.StringIO()
    torch.manual_seed(0)
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(doc), "exec"), {})
    assert out.getvalue().strip() == "torch.Size([16, 10])"


def test_the_zoo_is_built_from_the_public_blocks():
    from h2learn.snn.models import build

    kinds = {
        "conv": SpikingConv2d,
        "fc": SpikingLinear,
        "maxpool": MaxPool2d,
        "avgpool": AvgPool2d,
        "flatten": Flatten,
    }
    for name in ("fmnist-conv", "cifar-vgg", "dvs-gesture"):
        model = build(name)
        for spec, layer in zip(model.spec.layers, model.layers, strict=True):
            assert type(layer) is kinds[spec.kind], (name, spec.name)


def test_fuse_pooling_leaves_what_it_cannot_fuse():
    net = nn.Sequential(
        SpikingConv2d(1, 2, 3, fires=False),
        AvgPool2d(2),  # behind a non-firing block
        SpikingConv2d(2, 2, 3),
        MaxPool2d(3, stride=2),  # overlapping windows
        SpikingConv2d(2, 2, 3),
        TimeDistributed(nn.AvgPool2d(2, padding=1)),  # padding
    )
    fuse_pooling(net)
    assert all(not isinstance(m, nn.Identity) for m in net)
    assert all(m.pool is None for m in net if isinstance(m, WeightedBlock))


def test_blocks_run_in_inference_mode():
    """Inference tensors carry no version counter: the spike tag must not need one."""
    torch.manual_seed(8)
    net = _user_network(batch_norm=True).eval()
    x = torch.rand(B, 1, 16, 16) * 2
    with torch.no_grad():
        expected = net(x)
    current = torch.rand(T, B, 4)
    with torch.inference_mode():
        out = net(x)
        spikes = LIF()(current)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(spikes, lif_autograd(current, LIFParams()), rtol=0, atol=0)
