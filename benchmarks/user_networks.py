"""Spiking networks written the way users write them, in h2learn, snnTorch and SpikingJelly.

Three networks for 28x28 one-channel images (Fashion-MNIST's shape), ``T``
steps of one repeated image, a non-firing fc read-out averaged over time:

* ``conv-avgpool``: conv3x3(32) - LIF - avgpool2 - conv3x3(128) - LIF - avgpool2 -
  fc(256) - LIF - fc(10), convolutions and fc with a bias, no batch norm;
* ``conv-avgpool-bn``: the same with batch norm (over the merged ``T * B``
  batch) between every hidden conv/fc and its neurons, no bias there;
* ``mlp``: fc(512) - LIF - fc(256) - LIF - fc(10) on the flattened image.

Implementations (each computes the same function from the same initial
weights, up to the documented differences of the peers, see ``peers.py``):

* ``h2learn``: the public blocks in an ``nn.Sequential`` (``StaticInput``,
  ``SpikingConv2d``, ``AvgPool2d``, ``Flatten``, ``SpikingLinear``), passed
  through ``fuse_pooling``;
* ``h2learn (torch layers + LIF)``: plain ``nn.Conv2d``/``nn.AvgPool2d``/
  ``nn.Linear``/``nn.BatchNorm`` on the merged batch with ``h2learn.snn.LIF``
  as the neuron, the input copied to ``[T, B, ...]`` (the issue's starting point);
* ``snnTorch``: the same torch layers on the merged batch, ``snn.Leaky`` called
  once per step in a Python loop per layer;
* ``SpikingJelly``: ``layer.*`` wrappers and ``neuron.LIFNode`` in multi-step
  mode (its torch implementation on the CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from peers import snntorch_rect, spikingjelly_lif
from torch import nn

from h2learn.snn import (
    LIF,
    AvgPool2d,
    Flatten,
    SpikingConv2d,
    SpikingLinear,
    StaticInput,
    fuse_pooling,
)
from h2learn.spec import LIFParams

INPUT_SHAPE = (1, 28, 28)
CLASSES = 10
LIF_PARAMS = LIFParams(alpha=0.25, v_th=0.25, window=0.5, height=1.0)

# (kind, arguments): conv (in, out), avgpool (kernel), flatten, fc (in, out, fires)
Layer = tuple
NETWORKS: dict[str, list[Layer]] = {
    "conv-avgpool": [
        ("conv", 1, 32),
        ("avgpool", 2),
        ("conv", 32, 128),
        ("avgpool", 2),
        ("flatten",),
        ("fc", 128 * 7 * 7, 256, True),
        ("fc", 256, CLASSES, False),
    ],
    "mlp": [
        ("flatten",),
        ("fc", 28 * 28, 512, True),
        ("fc", 512, 256, True),
        ("fc", 256, CLASSES, False),
    ],
}
NETWORKS["conv-avgpool-bn"] = NETWORKS["conv-avgpool"]
NAMES = ("conv-avgpool", "conv-avgpool-bn", "mlp")


def uses_batch_norm(name: str) -> bool:
    return name.endswith("-bn")


@dataclass
class Impl:
    """One implementation: its module and its training forward ``[B, ...] -> [B, classes]``."""

    name: str
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    after_step: Callable[[], None] = lambda: None


def _norm(layer: Layer, batch_norm: bool) -> bool:
    """Whether this layer has batch norm: hidden conv/fc layers of a ``-bn`` network."""
    return batch_norm and layer[0] in ("conv", "fc") and (layer[0] == "conv" or layer[3])


def build_h2learn(name: str, steps: int) -> Impl:
    """The network from h2learn's public blocks, as a user writes it."""
    bn = uses_batch_norm(name)
    mods: list[nn.Module] = [StaticInput(steps)]
    for layer in NETWORKS[name]:
        if layer[0] == "conv":
            mods.append(SpikingConv2d(layer[1], layer[2], 3, padding=1, batch_norm=bn))
        elif layer[0] == "avgpool":
            mods.append(AvgPool2d(layer[1]))
        elif layer[0] == "flatten":
            mods.append(Flatten())
        else:
            mods.append(
                SpikingLinear(layer[1], layer[2], batch_norm=_norm(layer, bn), fires=layer[3])
            )
    net = fuse_pooling(nn.Sequential(*mods)).train()
    return Impl("h2learn", net, lambda x: net(x).mean(0))


def _torch_layers(name: str, bn2d, bn1d) -> list[list[nn.Module]]:
    """Per layer of the recipe: its stateless torch modules (conv/fc, batch norm, pool, flatten)."""
    bn = uses_batch_norm(name)
    out = []
    for layer in NETWORKS[name]:
        norm = _norm(layer, bn)
        if layer[0] == "conv":
            mods = [nn.Conv2d(layer[1], layer[2], 3, padding=1, bias=not norm)]
            mods += [bn2d(layer[2])] if norm else []
        elif layer[0] == "fc":
            mods = [nn.Linear(layer[1], layer[2], bias=not norm)]
            mods += [bn1d(layer[2])] if norm else []
        elif layer[0] == "avgpool":
            mods = [nn.AvgPool2d(layer[1])]
        else:
            mods = [nn.Flatten()]
        out.append(mods)
    return out


def _fires(layer: Layer) -> bool:
    return layer[0] == "conv" or (layer[0] == "fc" and layer[3])


class MergedNet(nn.Module):
    """Torch layers on the merged ``T * B`` batch; a neuron after every firing layer.

    ``neuron(layer_index)`` makes the neuron module; ``fire(neuron, current)``
    runs it over ``[T, B, ...]`` (h2learn's LIF at once, snnTorch's ``Leaky``
    per step).
    """

    def __init__(self, name: str, steps: int, neuron, fire) -> None:
        super().__init__()
        self.steps, self.fire = steps, fire
        self.recipe = NETWORKS[name]
        self.blocks = nn.ModuleList(
            nn.Sequential(*m) for m in _torch_layers(name, nn.BatchNorm2d, nn.BatchNorm1d)
        )
        self.neurons = nn.ModuleList(
            neuron() if _fires(layer) else nn.Identity() for layer in self.recipe
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.steps, *x.shape).contiguous()  # the image, T copies
        for layer, block, neuron in zip(self.recipe, self.blocks, self.neurons, strict=True):
            h = block(h.flatten(0, 1)).unflatten(0, (self.steps, -1))
            if _fires(layer):
                h = self.fire(neuron, h)
        return h.mean(0)


def build_torch_lif(name: str, steps: int) -> Impl:
    """Plain torch layers with ``h2learn.snn.LIF`` as the neuron (no h2learn blocks)."""
    p = LIF_PARAMS
    net = MergedNet(
        name, steps, lambda: LIF(p.alpha, p.v_th, p.window, p.height), lambda n, h: n(h)
    ).train()
    return Impl("h2learn (torch layers + LIF)", net, net)


def _leaky_loop(neuron, cur: torch.Tensor) -> torch.Tensor:
    mem = neuron.reset_mem()
    spikes = []
    for t in range(cur.shape[0]):
        spk, mem = neuron(cur[t], mem)
        spikes.append(spk.to(cur.dtype))
    return torch.stack(spikes)


def build_snntorch(name: str, steps: int) -> Impl:
    """snnTorch's ``Leaky`` (zero reset, rectangular surrogate), stepped per layer."""
    import snntorch as snn

    p = LIF_PARAMS

    def leaky():
        return snn.Leaky(
            beta=p.alpha,
            threshold=p.v_th,
            spike_grad=snntorch_rect(p.window, p.height),
            reset_mechanism="zero",
        )

    net = MergedNet(name, steps, leaky, _leaky_loop).train()
    return Impl("snnTorch", net, net)


def build_spikingjelly(name: str, steps: int) -> Impl:
    """SpikingJelly 2.0, multi-step mode, ``LIFNode`` with the ``Rect`` surrogate."""
    from spikingjelly.activation_based import functional, layer

    p = LIF_PARAMS

    def m(cls):
        return lambda *a, **k: cls(*a, **k, step_mode="m")

    blocks = _torch_layers(name, m(layer.BatchNorm2d), m(layer.BatchNorm1d))
    mods: list[nn.Module] = []
    for spec_layer, block in zip(NETWORKS[name], blocks, strict=True):
        for mod in block:
            if isinstance(mod, nn.Conv2d):
                mod = m(layer.Conv2d)(
                    mod.in_channels, mod.out_channels, 3, padding=1, bias=mod.bias is not None
                )
            elif isinstance(mod, nn.Linear):
                mod = m(layer.Linear)(mod.in_features, mod.out_features, bias=mod.bias is not None)
            elif isinstance(mod, nn.AvgPool2d):
                mod = m(layer.AvgPool2d)(mod.kernel_size)
            elif isinstance(mod, nn.Flatten):
                mod = m(layer.Flatten)()
            mods.append(mod)
        if _fires(spec_layer):
            mods.append(spikingjelly_lif(p))
    net = nn.Sequential(*mods).train()

    def forward(x: torch.Tensor) -> torch.Tensor:
        return net(x.unsqueeze(0).expand(steps, *x.shape)).mean(0)

    return Impl("SpikingJelly", net, forward, lambda: functional.reset_net(net))


BUILDERS: dict[str, Callable[[str, int], Impl]] = {
    "h2learn": build_h2learn,
    "torch+lif": build_torch_lif,
    "snntorch": build_snntorch,
    "spikingjelly": build_spikingjelly,
}


def build(key: str, name: str, steps: int, seed: int = 0) -> Impl:
    """Implementation ``key`` of network ``name``, with h2learn's initial weights (seed)."""
    torch.manual_seed(seed)
    ours = build_h2learn(name, steps)
    if key == "h2learn":
        return ours
    impl = BUILDERS[key](name, steps)
    copy_parameters(ours.model, impl.model)
    return impl


def copy_parameters(source: nn.Module, target: nn.Module) -> None:
    """Copy every parameter in order (the networks list them in the same order and shapes)."""
    src, dst = list(source.parameters()), list(target.parameters())
    if [p.shape for p in src] != [p.shape for p in dst]:
        raise ValueError("the two networks do not have the same parameters in the same order")
    with torch.no_grad():
        for a, b in zip(src, dst, strict=True):
            b.copy_(a)
