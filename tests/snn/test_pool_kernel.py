"""Max pooling with compact indices (both backends) against PyTorch's autograd.

``MaxPool2d`` runs the fused C++ kernel on dense channels-last float input
without padding and PyTorch's kernel otherwise; either way its output and its
input gradient must equal ``F.max_pool2d`` with autograd exactly, ties (binary
spikes) and NaNs included.
"""

import pytest
import torch
import torch.nn.functional as F

from h2learn.snn import kernels
from h2learn.snn.layers import MaxPool2d, _fused_pool_applies, channels_last

needs_kernel = pytest.mark.skipif(
    not kernels.compiler_on_path(), reason="no C++ compiler: PyTorch path only"
)

# (batch, channels, height, width, kernel, stride, padding)
SHAPES = [
    (3, 5, 8, 8, 2, 2, 0),
    (2, 32, 9, 7, 2, 2, 0),  # odd sizes: the last row / column is in no window
    (2, 3, 11, 10, 3, 4, 0),  # stride > kernel: gaps between windows
    (4, 1, 6, 6, 2, 2, 0),  # one channel: NCHW and NHWC strides coincide
    (2, 130, 4, 4, 4, 4, 0),  # one window per plane
    (2, 4, 7, 7, 3, 3, 1),  # padding: PyTorch's kernel
]


def _input(shape, kind: str, dtype: torch.dtype, seed: int) -> torch.Tensor:
    n, c, h, w = shape
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, c, h, w, generator=gen, dtype=dtype)
    if kind == "spikes":  # many equal maxima: the first in the window must win
        x = (x > 0.6).to(dtype)
    if kind == "nan":
        x[x > 0.9] = float("nan")
    return channels_last(x)


def _check(x: torch.Tensor, kernel: int, stride: int, padding: int) -> None:
    ours_x = x.clone().requires_grad_()
    ref_x = x.clone().requires_grad_()
    ours = MaxPool2d(kernel, stride, padding)(ours_x)
    ref = F.max_pool2d(ref_x, kernel, stride, padding)
    grad = torch.randn(ref.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(3))
    ours.backward(grad)
    ref.backward(grad)
    assert torch.equal(ours.nan_to_num(7.0), ref.nan_to_num(7.0))
    assert torch.equal(ours_x.grad, ref_x.grad)


@pytest.mark.parametrize("backend", ["cpp", "torch"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["spikes", "random", "nan"])
@pytest.mark.parametrize("shape", SHAPES)
def test_max_pooling_equals_autograd(backend, dtype, kind, shape):
    if backend == "cpp" and not kernels.compiler_on_path():
        pytest.skip("no C++ compiler")
    *size, kernel, stride, padding = shape
    x = _input(size, kind, dtype, seed=sum(size))
    with kernels.kernel_backend(backend):
        _check(x, kernel, stride, padding)
        # NCHW input (not what the layers pass) takes PyTorch's kernel, same results.
        _check(x.contiguous(), kernel, stride, padding)


@needs_kernel
def test_the_fused_kernel_keeps_one_byte_per_output():
    x = channels_last(torch.rand(2, 8, 6, 6)).requires_grad_()
    assert _fused_pool_applies(x, 2, 0)
    with kernels.kernel_backend("cpp"):
        out = MaxPool2d(2, 2)(x)
    (index,) = out.grad_fn.saved_tensors
    assert index.dtype == torch.uint8 and index.shape == out.shape
    # a window position, not a position in the plane
    assert int(index.max()) <= 3
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_the_fused_kernel_applies_only_where_it_can():
    x = channels_last(torch.rand(2, 8, 6, 6))
    assert not _fused_pool_applies(x, 2, 1)  # padding
    assert not _fused_pool_applies(x.contiguous(), 2, 0)  # NCHW
    assert not _fused_pool_applies(x.to(torch.bfloat16), 2, 0)
    assert not _fused_pool_applies(channels_last(torch.rand(1, 2, 40, 40)), 17, 0)
