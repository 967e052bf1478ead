"""Element-wise units against the neuron model and autograd; bad inputs give one clear line."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from reference import lif_autograd

from h2learn.arch.engines import (
    backward_engine,
    batchnorm_backward,
    batchnorm_forward,
    forward_engine,
    lif_backward_unit,
    lif_forward_unit,
    loss_unit,
    pool_backward,
    pool_forward,
    update_engine,
)
from h2learn.arch.numerics import (
    relative_error,
)
from h2learn.snn.neuron import lif_states
from h2learn.spec import LayerSpec, LIFParams

from .helpers import (
    conv_layer,
    fc_layer,
    randn,
    round_half_even,
    spikes,
    to_int_numpy,
)

# --------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------


def _one_line_value_error(call, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern) as info:
        call()
    assert "\n" not in str(info.value)


def test_bad_inputs_raise_clear_value_errors() -> None:
    layer = conv_layer(2, 5, 3)
    w, x = randn(layer.weight_shape, 0), spikes(layer, 2, 1, 0.5, 1)
    grad = randn((2, 1, *layer.out_shape), 2)
    _one_line_value_error(
        lambda: forward_engine(w, x, layer, fmt="float8"), "'float8'.*valid forms"
    )
    _one_line_value_error(lambda: forward_engine(w, x, layer, k=0), "k=0.*k >= 1")
    _one_line_value_error(lambda: forward_engine(w, x, layer, k=-2), "k=-2")
    _one_line_value_error(lambda: forward_engine(w, x, layer, k=30), "k=30.*smaller k")
    _one_line_value_error(lambda: update_engine(grad, x, layer, k=30), "k=30.*smaller k")
    _one_line_value_error(lambda: update_engine(grad, x, layer, k=0), "k=0")
    _one_line_value_error(lambda: forward_engine(w[:, :1], x, layer), "weights have shape")
    _one_line_value_error(lambda: forward_engine(w, x[:, :, :1], layer), r"inputs has shape")
    _one_line_value_error(lambda: forward_engine(w, x * 0.5, layer), "binary spikes")
    _one_line_value_error(lambda: backward_engine(w, grad[:, :, :2], None, layer), "grad_output")
    _one_line_value_error(
        lambda: backward_engine(w, grad, x[:, :, :1].bool(), layer), "lower_mask has shape"
    )
    _one_line_value_error(lambda: backward_engine(w, grad, x, layer), "bool")
    _one_line_value_error(lambda: update_engine(grad, x[:1], layer), r"\[T, B\]")
    bad_spec = LayerSpec("c", "conv", (2, 5, 5), (3, 4, 4), kernel=3, padding=1, binary_input=True)
    _one_line_value_error(lambda: forward_engine(w, x, bad_spec), "does not match its geometry")
    pool = LayerSpec("p", "avgpool", (2, 4, 4), (2, 2, 2), kernel=2, stride=2)
    _one_line_value_error(lambda: forward_engine(w, x, pool), "engines take conv or fc")


# --------------------------------------------------------------------------
# Element-wise units
# --------------------------------------------------------------------------


def test_lif_forward_unit_matches_neuron_model_bit_for_bit() -> None:
    x = torch.rand(6, 4, 50) * 0.6
    result = lif_forward_unit(x, alpha=0.25, v_th=0.25, window=0.5, fmt="float32")
    u, fired, mask = lif_states(x, LIFParams())
    assert torch.equal(result.output, fired)
    assert torch.equal(result.extra["u"], u)
    assert torch.equal(result.extra["mask"], mask)
    n = x.numel()
    counts = result.counts
    assert (counts["multiplies"], counts["adds"], counts["compares"]) == (n, n, 3 * n)
    assert counts["state_reads"] == counts["state_writes"] == 2 * n


def test_lif_forward_unit_fixed_point_matches_integer_loop() -> None:
    fmt, frac = "fixed4.6", 6
    x = torch.rand(5, 3, 7, dtype=torch.float64) * 0.7
    result = lif_forward_unit(x, alpha=0.2, v_th=0.5, window=0.5, fmt=fmt)
    xs, alpha = to_int_numpy(x, fmt), round(0.2 * 2**frac)
    threshold = 0.5 * 2**frac
    for b, i in itertools.product(range(3), range(7)):
        u, fired = 0, False
        for t in range(5):
            decayed = 0 if fired else round_half_even(alpha * u, frac)
            u = max(-(2**9), min(2**9 - 1, decayed + int(xs[t, b, i])))
            fired = u > threshold
            assert bool(result.output[t, b, i]) == fired
            assert result.extra["u"][t, b, i].item() == u / 2**frac


@pytest.mark.parametrize(
    ("alpha", "reset_grad", "height"), [(0.25, True, 1.0), (0.25, False, 1.0), (0.2, True, 0.5)]
)
def test_lif_backward_unit_matches_autograd(alpha: float, reset_grad: bool, height: float) -> None:
    params = LIFParams(alpha=alpha, v_th=0.25, window=0.5, height=height, reset_grad=reset_grad)
    x = (torch.rand(6, 3, 20, dtype=torch.float64) * 0.6).requires_grad_(True)
    grad = torch.randn(6, 3, 20, dtype=torch.float64)
    (expected,) = torch.autograd.grad(lif_autograd(x, params), x, grad)
    forward = lif_forward_unit(x.detach(), alpha, 0.25, 0.5, fmt="float64")
    result = lif_backward_unit(
        grad,
        forward.extra["u"],
        forward.output,
        forward.extra["mask"],
        alpha,
        height,
        reset_grad,
        fmt="float64",
    )
    assert relative_error(result.output, expected) <= 1e-12
    elements, steps = 3 * 20, 6
    counts = result.counts
    earlier = (steps - 1) * elements
    assert counts["adds"] == earlier * (2 if reset_grad else 1)
    assert counts["multiplies"] == (0 if height == 1.0 else steps * elements) + earlier * (
        2 if reset_grad else 1
    )


def test_batchnorm_units_match_autograd() -> None:
    x = torch.randn(3, 4, 5, 6, 6, dtype=torch.float64).requires_grad_(True)
    gamma = torch.rand(5, dtype=torch.float64).requires_grad_(True)
    beta = torch.randn(5, dtype=torch.float64).requires_grad_(True)
    y = F.batch_norm(x.flatten(0, 1), None, None, gamma, beta, training=True, eps=1e-5)
    grad = torch.randn_like(y)
    dx, dgamma, dbeta = torch.autograd.grad(y, (x, gamma, beta), grad)
    forward = batchnorm_forward(x.detach(), gamma.detach(), beta.detach(), fmt="float64")
    assert relative_error(forward.output.flatten(0, 1), y.detach()) <= 1e-12
    backward = batchnorm_backward(
        grad.view_as(x),
        x.detach(),
        gamma.detach(),
        forward.extra["mean"],
        forward.extra["inv_std"],
        fmt="float64",
    )
    assert relative_error(backward.output, dx) <= 1e-10
    assert relative_error(backward.extra["dgamma"], dgamma) <= 1e-10
    assert relative_error(backward.extra["dbeta"], dbeta) <= 1e-10
    n = x.numel()
    assert forward.counts["multiplies"] == 2 * n + 4 * 5
    assert forward.counts["sqrts"] == 5


@pytest.mark.parametrize(
    ("kind", "kernel", "stride", "padding"),
    [("avgpool", 2, 2, 0), ("maxpool", 2, 2, 0), ("maxpool", 3, 2, 1), ("avgpool", 3, 1, 1)],
)
def test_pool_units_match_autograd(kind: str, kernel: int, stride: int, padding: int) -> None:
    x = torch.randn(2, 3, 4, 6, 6, dtype=torch.float64).requires_grad_(True)
    pool = F.avg_pool2d if kind == "avgpool" else F.max_pool2d
    y = pool(x.flatten(0, 1), kernel, stride, padding)
    grad = torch.randn_like(y)
    (dx,) = torch.autograd.grad(y, x, grad)
    forward = pool_forward(x.detach(), kind, kernel, stride, padding, fmt="float64")  # type: ignore[arg-type]
    assert torch.allclose(forward.output.flatten(0, 1), y.detach())
    backward = pool_backward(
        grad.view(*forward.output.shape),
        kind,
        kernel,
        (4, 6, 6),
        stride,
        padding,  # type: ignore[arg-type]
        forward.extra.get("indices"),
        fmt="float64",
    )
    assert torch.allclose(backward.output, dx)
    outputs = y.numel()
    if kind == "avgpool":
        assert forward.counts["adds"] == (kernel * kernel - 1) * outputs
    else:
        assert forward.counts["compares"] == (kernel * kernel - 1) * outputs
    if stride == kernel and padding == 0:
        assert backward.counts["adds"] == 0  # no overlapping windows


def test_loss_unit_matches_autograd() -> None:
    spikes_out = (torch.rand(6, 4, 10) < 0.3).to(torch.float64).requires_grad_(True)
    targets = torch.tensor([1, 0, 9, 3])
    loss = F.cross_entropy(spikes_out.mean(0), targets)
    (grad,) = torch.autograd.grad(loss, spikes_out)
    result = loss_unit(spikes_out.detach(), targets, fmt="float64")
    assert result.output.item() == pytest.approx(loss.item(), rel=1e-12)
    assert relative_error(result.extra["grad"], grad) <= 1e-12
    assert result.counts["exps"] == 40 and result.counts["logs"] == 4
    mse = loss_unit(spikes_out.detach(), targets, kind="mse", fmt="float64")
    expected = F.mse_loss(spikes_out.mean(0), F.one_hot(targets, 10).double())
    assert mse.output.item() == pytest.approx(expected.item(), rel=1e-12)


def test_update_partial_sums_keep_float32_error_small_on_long_sums() -> None:
    """Blocked partial sums: ~1e5 points in float32 stay within 1e-5 of float64."""
    layer = fc_layer(6, 4)
    inputs = spikes(layer, 8, 4096, 0.5, seed=3)
    grad = randn((8, 4096, 4), seed=4)
    exact = update_engine(grad, inputs, layer, k=4, fmt="float64").output
    blocked = update_engine(grad.float(), inputs, layer, k=4, fmt="float32").output
    sequential = update_engine(
        grad.float(), inputs, layer, k=4, fmt="float32", partial_sum_groups=None
    ).output
    assert relative_error(blocked.double(), exact) <= 1e-5
    assert relative_error(blocked.double(), exact) < relative_error(sequential.double(), exact)
    for entries in (2**k * 4 * 3 for k in (4,)):
        chunked = update_engine(grad.float(), inputs, layer, k=4, table_chunk_entries=entries)
        assert torch.equal(chunked.output, blocked)


def test_update_partial_sum_adds_are_counted() -> None:
    layer = fc_layer(5, 3)
    inputs = spikes(layer, 2, 100, 0.5, seed=1)  # 200 points, k=4: 50 groups
    grad = randn((2, 100, 3), seed=2)
    counts = update_engine(grad, inputs, layer, k=4, partial_sum_groups=16).counts
    assert counts["partial_sum_adds"] == 4 * 5 * 3  # ceil(50 / 16) blocks per dW word
    assert (
        update_engine(grad, inputs, layer, k=4, partial_sum_groups=None).counts["partial_sum_adds"]
        == 0
    )
