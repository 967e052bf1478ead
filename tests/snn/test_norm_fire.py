"""Batch norm fused with LIF firing against autograd through the plain equations.

The reference is independent of both h2learn paths: batch norm written out
with tensor operations (biased batch variance, affine) and the LIF forward
equations as a Python loop over time, differentiated by autograd, in float64.
The fused path must give the same spikes, the same gradients for the input,
weight and bias (relative error far below 1e-6) and the same running
statistics as ``nn.BatchNorm``.
"""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from h2learn.snn import kernels
from h2learn.snn.layers import WeightedBlock
from h2learn.snn.norm_fire import fusable, norm_fire, poolable
from h2learn.spec import LayerSpec, LIFParams

pytestmark = pytest.mark.skipif(
    not kernels.compiler_on_path(), reason="no C++ compiler: the fused kernels are not built"
)

PARAMS = [
    LIFParams(),
    LIFParams(alpha=0.6, v_th=0.3, window=0.4, height=1.3, reset_grad=True),
    LIFParams(alpha=0.9, v_th=0.1, window=0.8, height=0.5, reset_grad=False),
]


def reference(y, weight, bias, eps, params: LIFParams, steps: int, repeated: bool):
    """Spikes ``[T*B, ...]`` from batch norm + LIF, as plain differentiable operations."""
    dims = [0, *range(2, y.dim())]
    shape = [1, -1] + [1] * (y.dim() - 2)
    mean = y.mean(dims, keepdim=True)
    var = ((y - mean) ** 2).mean(dims, keepdim=True)
    z = (y - mean) / torch.sqrt(var + eps) * weight.view(shape) + bias.view(shape)
    z = torch.stack([z] * steps) if repeated else z.unflatten(0, (steps, -1))
    u, spikes, out = torch.zeros_like(z[0]), torch.zeros_like(z[0]), []
    for t in range(steps):
        previous = spikes if params.reset_grad else spikes.detach()  # the reset path
        u = params.alpha * u * (1 - previous) + z[t]
        # o = H(u - v_th), with the rectangular surrogate as its derivative
        spikes = _Heaviside.apply(u - params.v_th, params.window, params.height)
        out.append(spikes)
    return torch.cat(out)


class _Heaviside(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, window, height):
        ctx.save_for_backward(x)
        ctx.window, ctx.height = window, height
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.height * (x.abs() < ctx.window).to(grad.dtype), None, None


CASES = [  # (shape of y, steps, repeated, max pooling kernel behind the neurons, NCHW output)
    ((6 * 4, 5, 3, 3), 6, False, 0, False),  # conv output, NHWC
    ((4 * 3, 7), 4, False, 0, False),  # fc output
    ((2 * 8, 130, 2, 2), 2, False, 0, False),  # more channels than fit a block row
    ((5, 3, 4, 4), 7, True, 0, False),  # a time-invariant input's one step
    ((9, 600), 3, True, 0, False),  # a wide fc layer: one row per block
    ((4 * 3, 6, 4, 6), 4, False, 2, False),  # pooled as produced: bands of 2 image rows
    ((4 * 3, 6, 4, 6), 4, False, 2, True),  # pooled into NCHW order (for a flatten)
    ((3, 5, 6, 6), 5, True, 3, False),  # time-invariant input, 3x3 windows
    ((3, 5, 6, 6), 5, True, 3, True),
    ((2 * 2, 130, 4, 8), 2, False, 4, True),
    ((5, 4, 2, 2), 1, False, 0, False),  # one time step
    ((3, 2, 4, 4), 1, False, 2, True),
    ((1, 3, 4, 2), 3, True, 2, False),  # one sample
]


def _norm(shape, dtype, seed):
    norm = (nn.BatchNorm2d if len(shape) == 4 else nn.BatchNorm1d)(shape[1]).to(dtype)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.weight.copy_(torch.rand(shape[1], generator=gen, dtype=dtype) + 0.5)
        norm.bias.copy_(torch.rand(shape[1], generator=gen, dtype=dtype) * 0.6 - 0.3)
    return norm


@pytest.mark.parametrize("params", PARAMS)
@pytest.mark.parametrize("case", CASES)
def test_fused_norm_fire_equals_autograd(case, params):
    shape, steps, repeated, pool, planar = case
    dtype = torch.float64
    gen = torch.Generator().manual_seed(len(shape) * steps)
    y = torch.randn(*shape, generator=gen, dtype=dtype) * 2 + 0.5
    if len(shape) == 4:
        y = y.contiguous(memory_format=torch.channels_last)
    norm = _norm(shape, dtype, seed=steps)
    ref_norm = copy.deepcopy(norm)
    ours_y, ref_y = y.clone().requires_grad_(), y.clone().requires_grad_()
    ours = norm_fire(ours_y, norm, params, steps, repeated=repeated, pool=pool, planar=planar)
    if planar:
        assert ours.is_contiguous()
    ref = reference(ref_y, ref_norm.weight, ref_norm.bias, norm.eps, params, steps, repeated)
    if pool:
        ref = F.max_pool2d(ref, pool)
    assert ours.shape == ref.shape
    assert torch.equal(ours, ref.detach())
    grad = torch.randn(ref.shape, generator=gen, dtype=dtype)
    (ours * grad).sum().backward()
    (ref * grad).sum().backward()
    for a, b in [(ours_y.grad, ref_y.grad), (norm.weight.grad, ref_norm.weight.grad)]:
        assert ((a - b).norm() / b.norm()).item() < 1e-10
    torch.testing.assert_close(norm.bias.grad, ref_norm.bias.grad, rtol=1e-10, atol=1e-12)
    # running statistics as nn.BatchNorm keeps them (T copies of a repeated input)
    count = y.numel() // y.shape[1] * (steps if repeated else 1)
    dims = [0, *range(2, y.dim())]
    momentum = ref_norm.momentum
    expected_mean = momentum * y.mean(dims)
    expected_var = (1 - momentum) + momentum * y.var(dims, unbiased=False) * count / (count - 1)
    torch.testing.assert_close(norm.running_mean, expected_mean, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(norm.running_var, expected_var, rtol=1e-12, atol=1e-14)
    assert int(norm.num_batches_tracked) == 1


def test_pooling_is_fused_only_where_windows_tile_the_map():
    assert poolable((4, 3, 6, 6), 2, 2, 0)
    assert not poolable((4, 3, 7, 6), 2, 2, 0)  # a row no window covers
    assert not poolable((4, 3, 6, 6), 3, 2, 0)  # overlapping windows
    assert not poolable((4, 3, 6, 6), 2, 2, 1)  # padding
    assert not poolable((4, 6), 2, 2, 0)
    norm = nn.BatchNorm2d(3)
    with pytest.raises(ValueError, match="cannot fuse 2x2 max pooling"):
        norm_fire(torch.randn(4, 3, 5, 4), norm, LIFParams(), 2, pool=2)


def test_float32_matches_float64_closely():
    y = torch.randn(8 * 4, 16, 5, 5).contiguous(memory_format=torch.channels_last)
    norm32 = _norm(y.shape, torch.float32, seed=1)
    norm64 = copy.deepcopy(norm32).double()
    y32, y64 = y.clone().requires_grad_(), y.double().requires_grad_()
    s32 = norm_fire(y32, norm32, LIFParams(), 8)
    s64 = norm_fire(y64, norm64, LIFParams(), 8)
    assert (s32.double() != s64).float().mean() < 1e-3  # a spike flips only at the threshold
    s64.sum().backward()
    s32.sum().backward()
    rel = (y32.grad.double() - y64.grad).norm() / y64.grad.norm()
    assert rel < 1e-2


def test_the_layer_takes_the_fused_path_only_where_it_applies(monkeypatch):
    spec = LayerSpec(
        name="fc1", kind="fc", in_shape=(12,), out_shape=(6,), batch_norm=True, fires=True
    )
    block = WeightedBlock(spec, LIFParams())
    x = torch.rand(3, 4, 12)
    calls = []
    monkeypatch.setattr(
        "h2learn.snn.layers.norm_fire",
        lambda *args, **kw: calls.append(kw) or norm_fire(*args, **kw),
    )
    block(x)
    assert len(calls) == 1
    block.eval()  # running statistics: batch norm then the neuron, unfused
    block(x)
    with kernels.kernel_backend("torch"):
        block.train()
        block(x)
    with torch.no_grad():
        block(x)
    assert len(calls) == 1


def test_fusable_conditions():
    norm = nn.BatchNorm2d(3)
    assert fusable(4, norm, 10)
    assert not fusable(4, norm, 1)  # one value per channel: PyTorch's own error
    assert not fusable(3, norm, 10)
    assert not fusable(4, None, 10)
    assert not fusable(4, nn.BatchNorm2d(3, affine=False), 10)
    norm.eval()
    assert not fusable(4, norm, 10)


def test_the_network_pools_inside_the_fused_blocks(monkeypatch):
    """fmnist-conv's conv blocks return pooled spikes; same logits and gradients as unfused."""
    from h2learn.snn.models import build

    torch.manual_seed(0)
    model = build("fmnist-conv", time_steps=3).double().train()
    # conv1 -> maxpool1 (channels-last for conv2), conv2 -> maxpool2 (NCHW for the flatten)
    assert model._pool_after == {0: (2, False, False), 2: (2, True, False)}
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    pooled = []
    original = WeightedBlock.forward_pooled

    def spy(self, inp, kernel, planar, average=False):
        out = original(self, inp, kernel, planar, average)
        pooled.append(out is not None)
        return out

    monkeypatch.setattr(WeightedBlock, "forward_pooled", spy)

    def run():
        model.zero_grad()
        logits = model(x)
        logits.square().sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    fused_logits, fused_grads = run()
    assert pooled == [True, True]
    with kernels.kernel_backend("torch"):
        ref_logits, ref_grads = run()
    assert pooled == [True, True, False, False]  # the operator path runs the layers
    torch.testing.assert_close(fused_logits, ref_logits, rtol=1e-12, atol=1e-12)
    for ours, ref in zip(fused_grads, ref_grads, strict=True):
        torch.testing.assert_close(ours, ref, rtol=1e-9, atol=1e-12)


def test_one_by_one_pooling_is_the_identity():
    """A 1x1 'pooling' pools every position alone: the unpooled spikes come back."""
    y = torch.randn(2 * 3, 4, 3, 5, dtype=torch.float64)
    y = y.contiguous(memory_format=torch.channels_last)
    norm = _norm(y.shape, torch.float64, seed=5)
    pooled = norm_fire(y, copy.deepcopy(norm), LIFParams(), 2, pool=1)
    assert torch.equal(pooled, norm_fire(y, norm, LIFParams(), 2))
