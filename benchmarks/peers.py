"""The same spiking network in h2learn, snnTorch and SpikingJelly, for the step benchmark.

Every implementation is built from one :class:`~h2learn.spec.NetworkSpec`
(sequential conv / pool / flatten / fc layers, batch norm over the merged
``T * B`` batch, LIF neurons, a non-firing read-out averaged over time) and
starts from h2learn's initial weights, so the three networks compute the same
function up to floating-point rounding and the documented differences:

* snnTorch ``Leaky(beta=alpha, threshold=v_th, reset_mechanism="zero")`` with a
  custom rectangular surrogate: same charge and reset equation; snnTorch always
  detaches the reset (it is h2learn's ``reset_grad=False`` gradient).
* SpikingJelly ``LIFNode(tau=1/(1-alpha), decay_input=False, v_reset=0.0,
  surrogate_function=Rect(alpha=height), detach_reset=not reset_grad)``: charge
  ``H = V - V / tau + X = alpha * V + X`` (rounding aside), hard reset to 0,
  gradient through the reset; it fires on ``H >= v_th`` where h2learn and
  snnTorch fire on ``u > v_th``.

Peers are imported lazily; :func:`available` says which are installed and how
to install the missing ones.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from h2learn.snn.models import SpikingNetwork, build
from h2learn.spec import AnyNetwork, LayerSpec, LIFParams

INSTALL = {
    "snntorch": "pip install snntorch",
    "spikingjelly": "pip install --no-deps spikingjelly loguru",
}


def available() -> dict[str, str | None]:
    """``{peer: None}`` if importable, else ``{peer: install command}``."""
    return {
        name: None if importlib.util.find_spec(name) is not None else cmd
        for name, cmd in INSTALL.items()
    }


def peer_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


@dataclass
class Impl:
    """One implementation: a module, its training forward and its per-layer firing rates."""

    name: str
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]  # [B, ...] -> time-mean logits [B, classes]
    rates: Callable[[torch.Tensor], list[float]]  # firing rate of every firing layer
    after_step: Callable[[], None] = field(default=lambda: None)
    notes: str = ""


def _check_sequential(spec: AnyNetwork) -> None:
    for i, layer in enumerate(spec.layers):
        if layer.source != i - 1 or layer.residual is not None:
            raise ValueError(
                f"{spec.name}: the peer networks support sequential specs only "
                f"(layer {layer.name} reads layer {layer.source})"
            )
        if layer.kind == "avgpool" or (layer.weighted and layer.kind not in ("conv", "fc")):
            raise ValueError(f"{spec.name}: layer kind {layer.kind} is not mapped to the peers")


def _stateless(layer: LayerSpec, conv, linear, bn2d, bn1d, maxpool, flatten) -> list[nn.Module]:
    """The time-invariant modules of one layer (conv/fc, batch norm, pooling, flatten)."""
    if layer.kind == "conv":
        mods = [
            conv(
                layer.in_channels,
                layer.out_channels,
                layer.kernel,
                layer.stride,
                layer.padding,
                bias=not layer.batch_norm,
            )
        ]
        if layer.batch_norm:
            mods.append(bn2d(layer.out_channels))
        return mods
    if layer.kind == "fc":
        mods = [linear(layer.in_shape[0], layer.out_shape[0], bias=not layer.batch_norm)]
        if layer.batch_norm:
            mods.append(bn1d(layer.out_shape[0]))
        return mods
    if layer.kind == "maxpool":
        return [maxpool(layer.kernel, layer.stride, layer.padding)]
    return [flatten()]


def _copy_weights(ours: SpikingNetwork, peer_blocks: list[list[nn.Module]]) -> None:
    """Load h2learn's initial parameters into the peer's conv/fc and batch-norm modules."""
    with torch.no_grad():
        for spec, layer, mods in zip(ours.spec.layers, ours.layers, peer_blocks, strict=True):
            if not spec.weighted:
                continue
            mods[0].weight.copy_(layer.op.weight)
            if layer.op.bias is not None:
                mods[0].bias.copy_(layer.op.bias)
            if layer.norm is not None:
                mods[1].weight.copy_(layer.norm.weight)
                mods[1].bias.copy_(layer.norm.bias)


def _static_input(x: torch.Tensor, steps: int) -> torch.Tensor:
    """``[B, ...]`` image -> ``[T, B, ...]`` (the same repetition h2learn's encoder does)."""
    return x.unsqueeze(0).expand(steps, *x.shape)


# --------------------------------------------------------------------------- h2learn


def build_ours(spec_name: str, time_steps: int, seed: int = 0, **overrides) -> Impl:
    torch.manual_seed(seed)
    model = build(spec_name, time_steps=time_steps, **overrides).train()

    def rates(x: torch.Tensor) -> list[float]:
        record: list[dict] = []
        with torch.no_grad():
            model(x, record=record)
        fires = [layer for layer in model.spec.layers if layer.weighted]
        return [
            entry["output"].mean().item()
            for layer, entry in zip(fires, record, strict=True)
            if layer.fires
        ]

    return Impl("h2learn", model, model, rates)


# --------------------------------------------------------------------------- snnTorch


def snntorch_rect(window: float, height: float):
    from snntorch import surrogate

    def rect(input_, grad_input, spikes):  # input_ = mem - threshold
        return grad_input * (input_.abs() < window).to(grad_input.dtype) * height

    return surrogate.custom_surrogate(rect)


class SnnTorchNet(nn.Module):
    """snnTorch: ``snn.Leaky`` stepped over time in a Python loop, layer by layer.

    Conv/linear/batch norm/pooling run once on the merged ``T * B`` batch (batch
    norm must see all steps to normalise over ``T * B`` as h2learn does, so the
    time loop cannot run over the whole network); each ``Leaky`` is then called
    once per step, ``spk, mem = lif(cur[t], mem)``, snnTorch's idiomatic API.
    """

    def __init__(self, ours: SpikingNetwork) -> None:
        import snntorch as snn

        super().__init__()
        spec = ours.spec
        _check_sequential(spec)
        self.spec = spec
        p = spec.lif
        blocks = [
            _stateless(
                layer,
                nn.Conv2d,
                nn.Linear,
                nn.BatchNorm2d,
                nn.BatchNorm1d,
                nn.MaxPool2d,
                nn.Flatten,
            )
            for layer in spec.layers
        ]
        _copy_weights(ours, blocks)
        self.blocks = nn.ModuleList(nn.Sequential(*b) for b in blocks)
        self.neurons = nn.ModuleList(
            snn.Leaky(
                beta=p.alpha,
                threshold=p.v_th,
                spike_grad=snntorch_rect(p.window, p.height),
                reset_mechanism="zero",
            )
            if layer.fires
            else nn.Identity()
            for layer in spec.layers
        )
        self.record: list[torch.Tensor] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = self.spec.time_steps
        signal = _static_input(x, steps)
        for layer, block, neuron in zip(self.spec.layers, self.blocks, self.neurons, strict=True):
            cur = block(signal.flatten(0, 1)).unflatten(0, (steps, -1))
            if layer.fires:
                mem = neuron.reset_mem()
                spikes = []
                for t in range(steps):
                    spk, mem = neuron(cur[t], mem)
                    spikes.append(spk.to(cur.dtype))  # snnTorch's surrogates emit float32
                signal = torch.stack(spikes)
                if self.record is not None:
                    self.record.append(signal.detach())
            else:
                signal = cur
        return signal.mean(0)


def build_snntorch(ours: SpikingNetwork) -> Impl:
    net = SnnTorchNet(ours).train()

    def rates(x: torch.Tensor) -> list[float]:
        net.record = []
        with torch.no_grad():
            net(x)
        out, net.record = [r.mean().item() for r in net.record], None
        return out

    notes = "reset detached (snnTorch always detaches it): gradient = h2learn reset_grad=False"
    return Impl("snnTorch", net, net, rates, notes=notes)


# --------------------------------------------------------------------------- SpikingJelly


def spikingjelly_lif(p: LIFParams) -> nn.Module:
    """SpikingJelly's multi-step ``LIFNode`` with our neuron: ``tau = 1/(1-alpha)``, no input
    decay, reset to 0, the rectangular surrogate of height ``p.height``."""
    from spikingjelly.activation_based import neuron, surrogate

    return neuron.LIFNode(
        tau=1.0 / (1.0 - p.alpha),
        decay_input=False,
        v_threshold=p.v_th,
        v_reset=0.0,
        surrogate_function=surrogate.Rect(alpha=p.height),
        detach_reset=not p.reset_grad,
        step_mode="m",
    )


def build_spikingjelly(ours: SpikingNetwork) -> Impl:
    """SpikingJelly 2.0, multi-step mode: every layer takes ``[T, B, ...]``.

    Stateless layers are SpikingJelly's ``layer.*`` wrappers with ``step_mode='m'``
    (they merge ``T * B`` for the kernel call); neurons are ``neuron.LIFNode``
    in multi-step mode.  SpikingJelly 2.0 has no ``backend`` argument: on CPU the
    neuron always runs its Torch implementation, and with the ``Rect`` surrogate
    (not one of its registered-op surrogates) that is the Torch reference loop,
    autograd through per-step tensor operations.
    """
    from spikingjelly.activation_based import functional, layer, neuron

    spec = ours.spec
    _check_sequential(spec)
    p = spec.lif
    if not 0.0 < p.alpha < 1.0:
        raise ValueError("SpikingJelly's LIFNode needs 0 < alpha < 1 (tau = 1 / (1 - alpha) > 1)")
    if abs(2 * p.window * p.height - 1.0) > 1e-12:
        raise ValueError("SpikingJelly's Rect surrogate has window 0.5/height: set window so")

    def m(cls):
        return lambda *a, **k: cls(*a, **k, step_mode="m")

    blocks = [
        _stateless(
            spec_layer,
            m(layer.Conv2d),
            m(layer.Linear),
            m(layer.BatchNorm2d),
            m(layer.BatchNorm1d),
            m(layer.MaxPool2d),
            m(layer.Flatten),
        )
        for spec_layer in spec.layers
    ]
    _copy_weights(ours, blocks)
    mods: list[nn.Module] = []
    for spec_layer, block in zip(spec.layers, blocks, strict=True):
        mods += block
        if spec_layer.fires:
            mods.append(spikingjelly_lif(p))
    net = nn.Sequential(*mods).train()
    steps = spec.time_steps

    def forward(x: torch.Tensor) -> torch.Tensor:
        return net(_static_input(x, steps)).mean(0)

    def rates(x: torch.Tensor) -> list[float]:
        seen: list[float] = []
        hooks = [
            mod.register_forward_hook(lambda _m, _i, out: seen.append(out.mean().item()))
            for mod in net
            if isinstance(mod, neuron.LIFNode)
        ]
        with torch.no_grad():
            forward(x)
        functional.reset_net(net)
        for h in hooks:
            h.remove()
        return seen

    notes = "fires on H >= v_th (h2learn: u > v_th); decay 1 - 1/tau rounds differently"
    return Impl("SpikingJelly", net, forward, rates, lambda: functional.reset_net(net), notes)


BUILDERS = {"snntorch": build_snntorch, "spikingjelly": build_spikingjelly}
