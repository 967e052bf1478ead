"""Composable spiking blocks for networks written by hand in ``nn.Sequential``.

Every block takes and returns time-major tensors ``[T, B, ...]`` and takes
h2learn's fast paths by itself (``docs/building-networks.md``):

* :class:`SpikingConv2d` / :class:`SpikingLinear`: conv or linear (+ bias, or
  batch norm over the merged ``T * B`` batch), then LIF neurons.  In training
  the bias or batch norm, the neuron and an optional pooling behind it
  (``pool="max"`` or ``"avg"``) run as one fused kernel that keeps only the
  conv/linear output for backward; the conv runs channels-last, and binary
  input spikes are kept as ``bool`` for the weight gradient.
* :class:`MaxPool2d`, :class:`AvgPool2d`, :class:`Flatten` and
  :class:`TimeDistributed` (any stateless torch layer): run once on the merged
  batch, channels-last where that is faster.
* :class:`StaticInput`: repeats an image ``[B, ...]`` over ``T`` steps as a
  view, so that the first weighted block computes it once per sample.
* :func:`fuse_pooling`: folds a pooling layer that directly follows a spiking
  conv block in an ``nn.Sequential`` into that block.

The model zoo (:mod:`h2learn.snn.models`) is built from the same classes
(:func:`build_layer`): its conv and fc layers are :class:`SpikingConv2d` and
:class:`SpikingLinear` made from the layer's spec, its pooling and flatten
:class:`MaxPool2d`, :class:`AvgPool2d` and :class:`Flatten`.
"""

from __future__ import annotations

from torch import nn

from h2learn.errors import H2LearnError
from h2learn.snn.layers import MaxPool2d as _CompactMaxPool2d
from h2learn.snn.layers import TimeDistributed, WeightedBlock, repeat_time
from h2learn.snn.neuron import LIF
from h2learn.spec import LayerSpec, LIFParams

POOL_MODES = ("max", "avg")


class BlockError(H2LearnError, ValueError):
    """A spiking block was configured or called with arguments it cannot use."""


def _lif_params(neuron: LIF | LIFParams | None) -> LIFParams:
    if neuron is None:
        return LIFParams()
    if isinstance(neuron, LIF):
        return neuron.params
    if isinstance(neuron, LIFParams):
        return neuron
    raise BlockError(f"neuron must be an h2learn LIF or LIFParams, got {type(neuron).__name__}")


def _positive(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or value < 1:
            raise BlockError(f"{name}={value!r} must be a positive integer")


class SpikingConv2d(WeightedBlock):
    """``[T, B, C_in, H, W] -> [T, B, C_out, H', W']``: conv2d, bias or batch norm, LIF.

    Args mirror ``nn.Conv2d`` (square kernel, stride and padding), then:
        batch_norm: batch norm over the merged ``T * B`` batch (tdBN-style)
            instead of a bias.
        neuron: the neuron's parameters (an :class:`~h2learn.snn.LIF` or
            :class:`~h2learn.spec.LIFParams`; default ``LIFParams()``).
        fires: ``False`` returns the current instead of spikes.
        pool: ``"max"`` or ``"avg"`` pooling of the spikes over
            ``pool_kernel x pool_kernel`` windows at stride ``pool_kernel``,
            inside the fused kernel where the map is a whole number of
            windows (else a separate pooling, same values).
        binary_input: the input is 0/1 spikes (kept as ``bool`` for the
            weight gradient).  Spikes from another block are recognised
            without it.

    The parameters are ``op`` (the ``nn.Conv2d``), ``norm`` (the
    ``nn.BatchNorm2d`` or ``None``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        *,
        batch_norm: bool = False,
        neuron: LIF | LIFParams | None = None,
        fires: bool = True,
        pool: str | None = None,
        pool_kernel: int = 2,
        binary_input: bool = False,
    ) -> None:
        _positive(
            in_channels=in_channels,
            out_channels=out_channels,
            kernel_size=kernel_size,
            stride=stride,
            pool_kernel=pool_kernel,
        )
        if not isinstance(padding, int) or padding < 0:
            raise BlockError(f"padding={padding!r} must be a non-negative integer")
        if pool is not None and pool not in POOL_MODES:
            raise BlockError(f"pool={pool!r}: use one of {', '.join(POOL_MODES)} or None")
        if pool is not None and not fires:
            raise BlockError("pool fuses pooling behind the neurons: it needs fires=True")
        spec = LayerSpec(
            name="conv",
            kind="conv",
            in_shape=(in_channels,),
            out_shape=(out_channels,),
            kernel=kernel_size,
            stride=stride,
            padding=padding,
            batch_norm=batch_norm,
            fires=fires,
            binary_input=binary_input,
        )
        super().__init__(spec, _lif_params(neuron))
        self.pool = None if pool is None else (pool, pool_kernel)

    @classmethod
    def from_spec(cls, spec: LayerSpec, lif: LIFParams) -> SpikingConv2d:
        """The block of a zoo layer (``spec.kind == "conv"``), the spec kept whole."""
        return _from_spec(cls, spec, lif)

    def forward(self, x, residual=None):  # type: ignore[override]
        if x.dim() != 5 or x.shape[2] != self.spec.in_channels:
            raise BlockError(
                f"SpikingConv2d expects [T, B, {self.spec.in_channels}, H, W], got {list(x.shape)}"
            )
        return super().forward(x, residual)

    def extra_repr(self) -> str:
        s = self.spec
        pool = f", pool={self.pool[0]!r}, pool_kernel={self.pool[1]}" if self.pool else ""
        return (
            f"{s.in_channels}, {s.out_channels}, kernel_size={s.kernel}, stride={s.stride}, "
            f"padding={s.padding}, batch_norm={s.batch_norm}, fires={s.fires}{pool}"
        )


class SpikingLinear(WeightedBlock):
    """``[T, B, in_features] -> [T, B, out_features]``: linear, bias or batch norm, LIF.

    ``fires=False`` gives a read-out layer (its current, e.g. averaged over
    time for logits).  Other arguments as for :class:`SpikingConv2d`.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        batch_norm: bool = False,
        neuron: LIF | LIFParams | None = None,
        fires: bool = True,
        binary_input: bool = False,
    ) -> None:
        _positive(in_features=in_features, out_features=out_features)
        spec = LayerSpec(
            name="fc",
            kind="fc",
            in_shape=(in_features,),
            out_shape=(out_features,),
            batch_norm=batch_norm,
            fires=fires,
            binary_input=binary_input,
        )
        super().__init__(spec, _lif_params(neuron))

    @classmethod
    def from_spec(cls, spec: LayerSpec, lif: LIFParams) -> SpikingLinear:
        """The block of a zoo layer (``spec.kind == "fc"``), the spec kept whole."""
        return _from_spec(cls, spec, lif)

    def forward(self, x, residual=None):  # type: ignore[override]
        if x.dim() != 3 or x.shape[2] != self.spec.in_shape[0]:
            raise BlockError(
                f"SpikingLinear expects [T, B, {self.spec.in_shape[0]}], got {list(x.shape)}"
            )
        return super().forward(x, residual)

    def extra_repr(self) -> str:
        s = self.spec
        return f"{s.in_shape[0]}, {s.out_shape[0]}, batch_norm={s.batch_norm}, fires={s.fires}"


class MaxPool2d(TimeDistributed):
    """Time-major max pooling ``[T, B, C, H, W]`` keeping compact argmax indices."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(_CompactMaxPool2d(kernel_size, stride, padding))


class AvgPool2d(TimeDistributed):
    """Time-major average pooling ``[T, B, C, H, W]``, channels-last (``nn.AvgPool2d`` args)."""

    def __init__(self, kernel_size: int, stride: int | None = None, padding: int = 0) -> None:
        super().__init__(nn.AvgPool2d(kernel_size, stride, padding))


class Flatten(TimeDistributed):
    """``[T, B, C, H, W] -> [T, B, C * H * W]`` in PyTorch's ``(C, H, W)`` order."""

    def __init__(self) -> None:
        super().__init__(nn.Flatten())


class StaticInput(nn.Module):
    """``[B, ...] -> [T, B, ...]``: one input (an image) repeated over ``time_steps``, as a view.

    The repetition has stride 0 along time, which the blocks recognise: the
    first weighted block computes its conv/linear (and batch norm) once per
    sample and its neurons read that one current at every step; pooling and
    flatten before it also run once.  A ``[T, B, ...]`` input passes through.
    """

    def __init__(self, time_steps: int, sample_dims: int = 3) -> None:
        super().__init__()
        _positive(time_steps=time_steps, sample_dims=sample_dims)
        self.time_steps = time_steps
        self.sample_dims = sample_dims

    def forward(self, x):  # type: ignore[override]
        if x.dim() == self.sample_dims + 2:
            return x
        if x.dim() != self.sample_dims + 1:
            raise BlockError(
                f"StaticInput expects [B, ...] with {self.sample_dims} sample dimensions "
                f"(or [T, B, ...]), got {list(x.shape)}"
            )
        return repeat_time(x, self.time_steps)

    def extra_repr(self) -> str:
        return f"time_steps={self.time_steps}, sample_dims={self.sample_dims}"


def _from_spec(cls, spec: LayerSpec, lif: LIFParams):
    block = cls.__new__(cls)
    WeightedBlock.__init__(block, spec, lif)
    return block


def build_layer(spec: LayerSpec, lif: LIFParams) -> nn.Module:
    """The public block that computes one zoo :class:`~h2learn.spec.LayerSpec`."""
    if spec.kind == "conv":
        return SpikingConv2d.from_spec(spec, lif)
    if spec.kind == "fc":
        return SpikingLinear.from_spec(spec, lif)
    if spec.kind == "avgpool":
        return AvgPool2d(spec.kernel, spec.stride, spec.padding)
    if spec.kind == "maxpool":
        return MaxPool2d(spec.kernel, spec.stride, spec.padding)
    if spec.kind == "flatten":
        return Flatten()
    raise BlockError(f"layer {spec.name}: unknown kind {spec.kind!r}")


def fuse_pooling(net: nn.Sequential) -> nn.Sequential:
    """Fold every pooling that directly follows a spiking conv block into that block.

    ``SpikingConv2d(...)`` then ``MaxPool2d(k)`` / ``AvgPool2d(k)`` (windows
    ``k x k`` at stride ``k``, no padding) becomes one block with ``pool=``
    set, and the pooling's slot an ``nn.Identity`` (indices and parameter
    names stay).  Same values; the fused kernel pools the spikes as they are
    produced, in NCHW order when a :class:`Flatten` follows the pooling (so
    that the flatten is a view).  Works in place on nested ``nn.Sequential``
    too; returns ``net``.
    """
    names = list(net._modules)
    for name in names:
        if isinstance(net._modules[name], nn.Sequential):
            fuse_pooling(net._modules[name])
    for i, (before, name) in enumerate(zip(names, names[1:], strict=False)):
        block, pool = net._modules[before], net._modules[name]
        mode = _pool_mode(pool)
        if isinstance(block, SpikingConv2d) and block.pool is None and block.neuron and mode:
            block.pool = (mode, pool.module.kernel_size)
            after = net._modules[names[i + 2]] if i + 2 < len(names) else None
            block.planar_pool = isinstance(after, Flatten)
            net._modules[name] = nn.Identity()
    return net


def _pool_mode(module: nn.Module | None) -> str | None:
    """``"max"``/``"avg"`` for a time-major pooling :func:`fuse_pooling` can fold, else None."""
    if not isinstance(module, TimeDistributed):
        return None
    pool = module.module
    if not isinstance(pool, (nn.MaxPool2d, nn.AvgPool2d)):
        return None
    k, s, p = pool.kernel_size, pool.stride, pool.padding
    if not (isinstance(k, int) and k == s and p == 0 and not pool.ceil_mode):
        return None
    if isinstance(pool, nn.MaxPool2d):
        return "max" if pool.dilation == 1 and not pool.return_indices else None
    return "avg" if pool.count_include_pad and pool.divisor_override is None else None


__all__ = [
    "AvgPool2d",
    "BlockError",
    "Flatten",
    "MaxPool2d",
    "SpikingConv2d",
    "SpikingLinear",
    "StaticInput",
    "TimeDistributed",
    "build_layer",
    "fuse_pooling",
]
