"""The fused C++ LIF kernel against the PyTorch-operator loop it replaces.

Both are checked against autograd in test_neuron.py; here the two are compared
directly on the layouts the layers produce (channels-last, expanded, strided
views), which the kernel handles by walking one memory order.
"""

import os

import pytest
import torch

from h2learn.snn import LIFParams, kernels, lif
from h2learn.snn.neuron import (
    _fused_backward,
    _fused_forward,
    _stepwise_backward,
    _stepwise_forward,
)

PARAMS = [
    LIFParams(),
    LIFParams(alpha=0.6, v_th=0.1, window=0.3, height=1.7, reset_grad=True),
    LIFParams(alpha=0.9, v_th=0.4, window=0.8, height=0.5, reset_grad=False),
    LIFParams(alpha=0.0, v_th=-0.2, window=0.2, height=1.0, reset_grad=False),
]


needs_kernel = pytest.mark.skipif(
    not kernels.compiler_on_path(), reason="no C++ compiler: PyTorch path only"
)


@needs_kernel
def test_the_kernel_builds_where_there_is_a_compiler():
    """With a compiler on PATH the kernel must build (ninja comes with the package)."""
    assert kernels.kernels_available(), kernels._build()


def _inputs(kind: str, steps: int, dtype: torch.dtype, seed: int):
    gen = torch.Generator().manual_seed(seed)
    if kind == "repeated":
        x = torch.randn(5, 6, 7, 3, generator=gen, dtype=dtype).permute(0, 3, 1, 2)
        return x.contiguous(memory_format=torch.channels_last) * 0.6, True
    shape = {"flat": (steps, 4, 33), "image": (steps, 3, 6, 5, 4)}.get(kind, (steps, 2, 9, 11))
    x = torch.randn(*shape, generator=gen, dtype=dtype) * 0.6
    if kind == "image":  # every step channels-last, as the conv layers leave it
        x = x.flatten(0, 1).contiguous(memory_format=torch.channels_last).unflatten(0, (steps, 3))
    if kind == "strided":  # not dense: the kernel works on a dense copy
        x = x.transpose(2, 3)
    return x, False


@needs_kernel
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ["flat", "image", "strided", "repeated"])
@pytest.mark.parametrize("steps", [1, 2, 7])
@pytest.mark.parametrize("params", PARAMS)
def test_kernel_equals_the_operator_loop(dtype, kind, steps, params):
    assert kernels.kernels_available()
    x, repeated = _inputs(kind, steps, dtype, seed=steps)
    spikes, saved = _fused_forward(x, params, steps, repeated)
    ref_spikes, ref_saved = _stepwise_forward(x, params, steps, repeated)
    # Forward: the same operations in the same order, so bit for bit.
    assert torch.equal(spikes, ref_spikes)
    assert torch.equal(saved, ref_saved) and saved.dtype == ref_saved.dtype
    step_shape = x.shape if repeated else x.shape[1:]
    grad = torch.randn(steps, *step_shape, dtype=dtype, generator=torch.Generator().manual_seed(9))
    if kind == "image":  # a gradient laid out unlike the saved state
        grad = grad.transpose(-1, -2).contiguous().transpose(-1, -2)
    ours = _fused_backward(grad, saved, params, repeated)
    ref = _stepwise_backward(grad, ref_saved, params, repeated)
    # Backward: PyTorch may fuse a multiply-add that the kernel rounds twice.
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert ours.shape == ref.shape == x.shape
    torch.testing.assert_close(ours, ref, rtol=tol, atol=tol)


@needs_kernel
def test_empty_input_and_autograd_path(monkeypatch):
    monkeypatch.setenv("H2LEARN_KERNELS", "cpp")
    empty = torch.zeros(3, 0, 4, requires_grad=True)
    lif(empty).sum().backward()
    assert empty.grad.shape == empty.shape
    x = torch.randn(4, 8, 16, dtype=torch.float64, requires_grad=True)
    lif(x).sum().backward()
    monkeypatch.setenv("H2LEARN_KERNELS", "torch")
    y = x.detach().clone().requires_grad_()
    lif(y).sum().backward()
    torch.testing.assert_close(x.grad, y.grad, rtol=1e-12, atol=1e-12)


def test_backend_choice_and_errors(monkeypatch):
    monkeypatch.setenv("H2LEARN_KERNELS", "fast")
    with pytest.raises(ValueError, match="H2LEARN_KERNELS='fast' is not a kernel backend"):
        lif(torch.zeros(2, 3))
    monkeypatch.setenv("H2LEARN_KERNELS", "cpp")
    with pytest.raises(kernels.KernelBuildError, match="float32/float64 CPU tensors only"):
        lif(torch.zeros(2, 3, dtype=torch.bfloat16))
    monkeypatch.setenv("H2LEARN_KERNELS", "auto")  # bfloat16: the operator path, silently
    assert lif(torch.ones(2, 3, dtype=torch.bfloat16)).dtype == torch.bfloat16


def test_a_failed_build_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(kernels, "_build", lambda: "no compiler")
    kernels._warn_once.cache_clear()
    monkeypatch.setenv("H2LEARN_KERNELS", "auto")
    x = torch.randn(3, 5)
    with pytest.warns(RuntimeWarning, match="did not build \\(no compiler\\)"):
        first = lif(x)
    assert torch.equal(first, lif(x))  # the PyTorch path, no second warning needed
    monkeypatch.setenv("H2LEARN_KERNELS", "cpp")
    with pytest.raises(kernels.KernelBuildError, match="set H2LEARN_KERNELS=torch"):
        lif(x)
    kernels._warn_once.cache_clear()


def test_kernel_backend_context_sets_and_restores(monkeypatch):
    monkeypatch.delenv("H2LEARN_KERNELS", raising=False)
    with kernels.kernel_backend("torch"):
        assert kernels.requested_backend() == "torch"
        assert not kernels.use_cpp_kernels(torch.zeros(2, 3))
    assert kernels.requested_backend() == "auto"
    with pytest.raises(ValueError, match="unknown kernel backend 'gpu'"):
        with kernels.kernel_backend("gpu"):
            pass


def test_build_directory_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    assert kernels.build_directory().parent == tmp_path / "ext"
    monkeypatch.delenv("TORCH_EXTENSIONS_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert kernels.build_directory().parent == tmp_path / "cache" / "h2learn" / "kernels"
    assert kernels.build_directory().name.startswith("h2learn_kernels_")


def test_only_an_old_build_lock_is_removed(tmp_path):
    lock = tmp_path / "lock"
    lock.touch()
    kernels._remove_stale_lock(lock)
    assert lock.exists()  # a build may be running
    old = lock.stat().st_mtime - 2 * kernels._STALE_LOCK_SECONDS
    os.utime(lock, (old, old))
    kernels._remove_stale_lock(lock)
    assert not lock.exists()
    kernels._remove_stale_lock(lock)  # nothing there: no error


def test_every_shared_header_is_in_the_build_digest():
    """A header change must rebuild: PyTorch's builder only hashes the .cpp sources."""
    folder = kernels._SOURCES[0].parent
    assert set(kernels._HEADERS) == set(folder.glob("*.h"))
    assert {p.name for p in kernels._HEADERS} >= {"lif_step.h", "pool_step.h"}
