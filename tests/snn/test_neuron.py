"""The hand-written BPTT of the LIF neuron against autograd and a float64 NumPy reference."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import lif_autograd, lif_numpy

from h2learn.snn import LIF, LIFParams, lif, lif_states
from h2learn.snn.kernels import compiler_on_path, kernel_backend

# The fused kernel where a C++ compiler can build it, and always the PyTorch operators.
BACKENDS = pytest.mark.parametrize("backend", ["cpp", "torch"] if compiler_on_path() else ["torch"])


def _relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def _grads(fn, x, g):
    x = x.clone().requires_grad_()
    (fn(x) * g).sum().backward()
    return x.grad


params_strategy = st.builds(
    LIFParams,
    alpha=st.floats(0.0, 1.0),
    v_th=st.floats(-0.5, 1.5),
    window=st.floats(0.05, 2.0),
    height=st.floats(0.1, 3.0),
    reset_grad=st.booleans(),
)


lif_cases = dict(
    params=params_strategy,
    steps=st.integers(1, 9),
    shape=st.lists(st.integers(1, 6), min_size=1, max_size=3),
    scale=st.floats(0.1, 2.0),
    seed=st.integers(0, 2**31 - 1),
)


@BACKENDS
@settings(max_examples=60, deadline=None)
@given(**lif_cases)
def test_lif_gradient_equals_autograd_float64(backend, params, steps, shape, scale, seed):
    with kernel_backend(backend):
        _check_lif_gradient(params, steps, shape, scale, seed)


def _check_lif_gradient(params, steps, shape, scale, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(steps, *shape, generator=gen, dtype=torch.float64) * scale
    g = torch.randn(steps, *shape, generator=gen, dtype=torch.float64)
    assert torch.equal(lif(x, params), lif_autograd(x, params))
    ours, ref = (
        _grads(lambda v: lif(v, params), x, g),
        _grads(lambda v: lif_autograd(v, params), x, g),
    )
    if ref.abs().max() == 0:
        assert ours.abs().max() == 0
    else:
        assert _relative(ours, ref) <= 1e-6


@BACKENDS
@settings(max_examples=40, deadline=None)
@given(**lif_cases)
def test_repeated_input_equals_autograd_through_the_expanded_input(
    backend, params, steps, shape, scale, seed
):
    with kernel_backend(backend):
        _check_repeated_input(params, steps, shape, scale, seed)


def _check_repeated_input(params, steps, shape, scale, seed):
    # lif(x, p, steps=T) takes one step's current, used at every step: the
    # reference is autograd through the naive forward of x repeated T times,
    # whose gradient sums over the steps.
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64) * scale
    g = torch.randn(steps, *shape, generator=gen, dtype=torch.float64)

    def expanded(v):
        return lif_autograd(v.unsqueeze(0).expand(steps, *shape), params)

    assert torch.equal(lif(x, params, steps=steps), expanded(x))
    ours = _grads(lambda v: lif(v, params, steps=steps), x, g)
    ref = _grads(expanded, x, g)
    assert ours.shape == x.shape
    if ref.abs().max() == 0:
        assert ours.abs().max() == 0
    else:
        assert _relative(ours, ref) <= 1e-6


@BACKENDS
@pytest.mark.parametrize("reset_grad", [True, False])
def test_reset_path_changes_the_gradient(backend, reset_grad, monkeypatch):
    """The switch is real: with the reset path on, spiking neurons pass a different gradient."""
    monkeypatch.setenv("H2LEARN_KERNELS", backend)
    torch.manual_seed(1)
    x = torch.rand(6, 4, 50, dtype=torch.float64)
    g = torch.randn_like(x)
    with_reset = _grads(lambda v: lif(v, LIFParams(reset_grad=True)), x, g)
    without = _grads(lambda v: lif(v, LIFParams(reset_grad=False)), x, g)
    assert not torch.allclose(with_reset, without)
    ref = _grads(lambda v: lif_autograd(v, LIFParams(reset_grad=reset_grad)), x, g)
    ours = with_reset if reset_grad else without
    assert _relative(ours, ref) <= 1e-6


def test_forward_matches_float64_numpy_and_states():
    torch.manual_seed(2)
    p = LIFParams(alpha=0.2, v_th=0.5)
    x = torch.rand(8, 3, 7, dtype=torch.float64)
    u, o, mask = lif_numpy(x.numpy(), p)
    spikes = lif(x, p)
    np.testing.assert_array_equal(spikes.numpy(), o)
    u_t, o_t, m_t = lif_states(x, p)
    np.testing.assert_allclose(u_t.numpy(), u, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(o_t.numpy(), o.astype(bool))
    np.testing.assert_array_equal(m_t.numpy(), mask)


def test_hand_computed_trace():
    """u = 0.2, 0.25 + 0.2 = 0.3 (fires), then reset: u = 0.1."""
    x = torch.tensor([[0.2], [0.25], [0.1]], dtype=torch.float64)
    assert lif(x).flatten().tolist() == [0.0, 1.0, 0.0]
    u, _, _ = lif_states(x)
    assert u.flatten().tolist() == pytest.approx([0.2, 0.3, 0.1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_output_dtype_and_binary(dtype):
    x = torch.randn(4, 2, 3).to(dtype)
    y = LIF()(x)
    assert y.dtype == dtype
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_module_defaults_are_the_gpu_library_values():
    p = LIF().params
    assert (p.alpha, p.v_th, p.window, p.height, p.reset_grad) == (0.25, 0.25, 0.5, 1.0, True)


@BACKENDS
def test_saved_tensors_hold_no_float_spikes_or_masks(backend, monkeypatch):
    """Backward keeps only u (reset path on) or one byte of state per element (off)."""
    monkeypatch.setenv("H2LEARN_KERNELS", backend)
    x = torch.randn(5, 3, 4, requires_grad=True)
    for reset_grad, expected in ((True, [torch.float32]), (False, [torch.uint8])):
        saved = []

        def pack(t, saved=saved):
            saved.append(t)
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            lif(x, LIFParams(reset_grad=reset_grad))
        assert [t.dtype for t in saved] == expected


@pytest.mark.parametrize("bad", [torch.zeros(5), torch.zeros(3, 4, dtype=torch.int64)])
def test_bad_input_is_rejected(bad):
    with pytest.raises((ValueError, TypeError), match="LIF expects"):
        lif(bad)
