"""Network specifications: the one description of a spiking network.

A :class:`NetworkSpec` lists every layer with all the shapes a cost model
needs (kind, channels, kernel, stride, padding, input and output sizes), the
and the LIF neuron parameters.  The run sizes (batch size and number of time
steps) are not part of the network: a :class:`Workload` pairs a network with
them, and :func:`build_spec` and :func:`expand` return one (the zoo's default
run unless overridden).  The model zoo (:mod:`h2learn.snn.models`) builds
PyTorch modules from it and the accelerator model reads it; neither keeps its
own copy of a layer list.

This module is the foundation of the package: it imports nothing else of
h2learn but the error types, so every layer may import it.

Layer graph
-----------
Layers run in list order.  Each layer reads the output of ``source`` (an
index into the layer list; ``-1`` means the network input) and, optionally,
adds the output of layer ``residual`` to its current before firing (spiking
ResNet shortcuts).  ``fires`` says whether the layer ends in a LIF neuron; the
last layer of a zoo classifier integrates without firing by default and its
time-mean current is the read-out (``readout="spike"`` makes it fire).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from h2learn.errors import H2LearnError

LayerKind = Literal["conv", "fc", "avgpool", "maxpool", "flatten"]
WEIGHTED_KINDS = ("conv", "fc")


class SpecError(H2LearnError, ValueError):
    """A network specification or an override is invalid; the message says how to fix it."""


@dataclass(frozen=True)
class LIFParams:
    """Parameters of the iterative LIF neuron and its surrogate gradient.

    ``u[t] = alpha * u[t-1] * (1 - o[t-1]) + x[t]``, ``o[t] = u[t] > v_th``;
    surrogate ``h(u) = height * 1[|u - v_th| < window]``.  ``reset_grad``
    keeps the gradient through the reset path (``-alpha * u * du[t+1]``).
    Defaults are those of the first author's GPU BPTT library.
    """

    alpha: float = 0.25
    v_th: float = 0.25
    window: float = 0.5
    height: float = 1.0
    reset_grad: bool = True

    def __post_init__(self) -> None:
        if not 0.0 <= self.alpha <= 1.0:
            raise SpecError(f"alpha={self.alpha} is outside [0, 1]; use a decay between 0 and 1")
        if self.window <= 0:
            raise SpecError(f"window={self.window} must be positive (surrogate half-width)")
        if not math.isfinite(self.v_th):
            raise SpecError("v_th must be a finite number")


STBP_LIF = LIFParams(alpha=0.2, v_th=0.5, window=0.5, height=1.0)
"""The STBP paper's neuron defaults (Wu et al. 2018), for comparison."""


@dataclass(frozen=True)
class LayerSpec:
    """One layer: what it computes and every shape a cost model needs.

    Shapes are per sample and per time step: ``(C, H, W)`` for maps,
    ``(N,)`` for vectors.  ``kernel``/``stride``/``padding`` apply to conv
    and pooling layers.  ``encoding`` marks the first weighted layer, whose
    input is analog (pixels or event counts) rather than binary spikes.
    """

    name: str
    kind: LayerKind
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: int = 1
    stride: int = 1
    padding: int = 0
    batch_norm: bool = False
    fires: bool = False
    encoding: bool = False
    source: int = -1
    residual: int | None = None
    binary_input: bool = False

    @property
    def binary_output(self) -> bool:
        """Whether this layer emits binary values (spikes, or max/flatten of spikes)."""
        if self.fires:
            return True
        return self.kind in ("maxpool", "flatten") and self.binary_input

    @property
    def weighted(self) -> bool:
        return self.kind in WEIGHTED_KINDS

    @property
    def in_channels(self) -> int:
        return self.in_shape[0]

    @property
    def out_channels(self) -> int:
        return self.out_shape[0]

    @property
    def fan_in(self) -> int:
        """Inputs summed into one output neuron (0 for unweighted layers)."""
        if self.kind == "conv":
            return self.in_channels * self.kernel * self.kernel
        if self.kind == "fc":
            return self.in_shape[0]
        return 0

    @property
    def out_positions(self) -> int:
        """Output positions per channel (H*W for maps, 1 for vectors)."""
        return math.prod(self.out_shape[1:]) if len(self.out_shape) > 1 else 1

    @property
    def neurons(self) -> int:
        """Output neurons per sample and time step."""
        return math.prod(self.out_shape)

    @property
    def weight_shape(self) -> tuple[int, ...]:
        if self.kind == "conv":
            return (self.out_channels, self.in_channels, self.kernel, self.kernel)
        if self.kind == "fc":
            return (self.out_shape[0], self.in_shape[0])
        return ()

    @property
    def num_weights(self) -> int:
        return math.prod(self.weight_shape) if self.weighted else 0

    @property
    def macs_per_step(self) -> int:
        """Multiply-accumulates of ``W (*) input`` for one sample and one time step."""
        return self.neurons * self.fan_in


INPUT_KINDS = ("image", "events", "spikes")
"""What the network input is: ``image`` (one analog frame, repeated over T),
``events`` (T analog event-count frames) or ``spikes`` (T binary frames, e.g. a
rate- or latency-coded image; the encoding layer then has binary input)."""


@dataclass(frozen=True)
class NetworkSpec:
    """A whole network: layers, neuron parameters, input; no run sizes (see :class:`Workload`)."""

    name: str
    input_shape: tuple[int, ...]
    num_classes: int
    layers: tuple[LayerSpec, ...]
    lif: LIFParams = field(default_factory=LIFParams)
    input_kind: Literal["image", "events", "spikes"] = "image"

    def __post_init__(self) -> None:
        if self.input_kind not in INPUT_KINDS:
            raise SpecError(
                f"input_kind={self.input_kind!r}; choose one of: {', '.join(INPUT_KINDS)}"
            )

    @property
    def weighted_layers(self) -> list[LayerSpec]:
        return [layer for layer in self.layers if layer.weighted]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSpec:
        """Read :meth:`to_dict`'s form; run sizes in it (a workload's) are ignored."""
        try:
            layers = tuple(
                LayerSpec(
                    **{
                        **layer,
                        "in_shape": tuple(layer["in_shape"]),
                        "out_shape": tuple(layer["out_shape"]),
                    }
                )
                for layer in data["layers"]
            )
            return cls(
                name=data["name"],
                input_shape=tuple(data["input_shape"]),
                num_classes=int(data["num_classes"]),
                layers=layers,
                lif=LIFParams(**data["lif"]),
                input_kind=data.get("input_kind", "image"),
            )
        except (KeyError, TypeError) as exc:
            raise SpecError(
                f"network spec is malformed ({exc}); re-create it with this version"
            ) from exc

    @classmethod
    def from_json(cls, text: str) -> NetworkSpec:
        return cls.from_dict(json.loads(text))


RUN_FIELDS = ("time_steps", "batch_size")
"""The run sizes a :class:`Workload` adds to a :class:`NetworkSpec`."""


@dataclass(frozen=True)
class Workload:
    """A network and the sizes of one run of it: the batch and the time steps ``T``.

    This is what every cost model and the training loop consume.  The
    network's fields are readable on it directly (``workload.layers``,
    ``workload.lif``, ...), so code that needs only the network takes either;
    ``dataclasses.replace(workload, batch_size=...)`` resizes the run.  Its
    dict form is the network's with ``time_steps`` and ``batch_size`` added,
    the layout traces, checkpoints and exports have always stored.
    """

    network: NetworkSpec
    batch_size: int = 32
    time_steps: int = 6

    def __post_init__(self) -> None:
        if not isinstance(self.network, NetworkSpec):
            raise SpecError(f"a workload needs a NetworkSpec, got {type(self.network).__name__}")
        if self.time_steps < 1:
            raise SpecError(f"time_steps={self.time_steps}: T must be at least 1")
        if self.batch_size < 1:
            raise SpecError(f"batch_size={self.batch_size}: the batch must hold at least 1 sample")

    @property
    def name(self) -> str:
        return self.network.name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.network.input_shape

    @property
    def num_classes(self) -> int:
        return self.network.num_classes

    @property
    def layers(self) -> tuple[LayerSpec, ...]:
        return self.network.layers

    @property
    def lif(self) -> LIFParams:
        return self.network.lif

    @property
    def input_kind(self) -> Literal["image", "events", "spikes"]:
        return self.network.input_kind

    @property
    def weighted_layers(self) -> list[LayerSpec]:
        return self.network.weighted_layers

    def with_network(self, **changes: Any) -> Workload:
        """This run on a network with ``changes`` applied (``lif=...``, ``layers=...``)."""
        return dataclasses.replace(self, network=dataclasses.replace(self.network, **changes))

    def to_dict(self) -> dict[str, Any]:
        """The network's dict with the run sizes after ``layers``, in the order files always had."""
        network = self.network.to_dict()
        head = {key: network.pop(key) for key in ("name", "input_shape", "num_classes", "layers")}
        return {**head, "time_steps": self.time_steps, "batch_size": self.batch_size, **network}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        network = NetworkSpec.from_dict(data)
        try:
            return cls(network, int(data["batch_size"]), int(data["time_steps"]))
        except (KeyError, TypeError) as exc:
            raise SpecError(
                f"workload is malformed ({exc}); re-create it with this version"
            ) from exc

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls.from_dict(json.loads(text))


AnyNetwork = NetworkSpec | Workload
"""What code that reads only the network takes: a workload reads its network's fields through."""


# --------------------------------------------------------------------------
# A compact layer language, expanded into LayerSpecs with inferred shapes.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Conv:
    channels: int
    kernel: int = 3
    stride: int = 1
    padding: int | None = None  # None: "same" padding kernel // 2
    batch_norm: bool = True
    fires: bool = True
    source: int | None = None
    residual: int | None = None


@dataclass(frozen=True)
class FC:
    features: int
    batch_norm: bool = False
    fires: bool = True


@dataclass(frozen=True)
class Pool:
    kind: Literal["avgpool", "maxpool"]
    kernel: int = 2
    stride: int | None = None
    padding: int = 0


@dataclass(frozen=True)
class Flatten:
    pass


LayerSketch = Conv | FC | Pool | Flatten


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


def expand(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    sketch: Sequence[LayerSketch],
    **network_fields: Any,
) -> Workload:
    """Infer every layer's shapes from a sketch and return the network with its run sizes.

    ``network_fields`` are :class:`NetworkSpec` fields (``lif``,
    ``input_kind``) and the run sizes ``time_steps`` and ``batch_size``
    (defaults 6 and 32), which go to the returned :class:`Workload`.

    A ``Flatten`` is inserted automatically before the first ``FC`` that
    follows a feature map.  The first weighted layer becomes the encoding
    layer.
    """
    layers: list[LayerSpec] = []
    shapes: list[tuple[int, ...]] = []  # output shape of each layer
    current = tuple(int(s) for s in input_shape)
    encoded = False
    counters: dict[str, int] = {}

    def add(layer: LayerSpec) -> None:
        nonlocal current
        if layer.source >= 0:
            binary = layers[layer.source].binary_output
        else:  # the network input: binary only when it is spike-coded
            binary = network_fields.get("input_kind") == "spikes"
        layer = dataclasses.replace(layer, binary_input=binary)
        layers.append(layer)
        shapes.append(layer.out_shape)
        current = layer.out_shape

    def label(kind: str) -> str:
        counters[kind] = counters.get(kind, 0) + 1
        return f"{kind}{counters[kind]}"

    for item in sketch:
        if isinstance(item, FC) and len(current) > 1:
            flat = (math.prod(current),)
            add(LayerSpec(label("flatten"), "flatten", current, flat, source=len(layers) - 1))
        if isinstance(item, Conv):
            src = len(layers) - 1 if item.source is None else item.source
            in_shape = tuple(input_shape) if src < 0 else shapes[src]
            if len(in_shape) != 3:
                raise SpecError(f"{name}: conv layer needs a (C, H, W) input, got {in_shape}")
            pad = item.kernel // 2 if item.padding is None else item.padding
            c, h, w = in_shape
            out = (
                item.channels,
                _conv_out(h, item.kernel, item.stride, pad),
                _conv_out(w, item.kernel, item.stride, pad),
            )
            if min(out) < 1:
                raise SpecError(f"{name}: conv layer {len(layers)} shrinks the map below 1x1")
            if item.residual is not None and shapes[item.residual] != out:
                raise SpecError(f"{name}: residual from layer {item.residual} has the wrong shape")
            add(
                LayerSpec(
                    label("conv"),
                    "conv",
                    in_shape,
                    out,
                    kernel=item.kernel,
                    stride=item.stride,
                    padding=pad,
                    batch_norm=item.batch_norm,
                    fires=item.fires,
                    encoding=not encoded,
                    source=src,
                    residual=item.residual,
                )
            )
            encoded = True
        elif isinstance(item, FC):
            add(
                LayerSpec(
                    label("fc"),
                    "fc",
                    current,
                    (item.features,),
                    batch_norm=item.batch_norm,
                    fires=item.fires,
                    encoding=not encoded,
                    source=len(layers) - 1,
                )
            )
            encoded = True
        elif isinstance(item, Pool):
            if len(current) != 3:
                raise SpecError(f"{name}: pooling needs a (C, H, W) input, got {current}")
            stride = item.kernel if item.stride is None else item.stride
            c, h, w = current
            out = (
                c,
                _conv_out(h, item.kernel, stride, item.padding),
                _conv_out(w, item.kernel, stride, item.padding),
            )
            if min(out) < 1:
                raise SpecError(
                    f"{name}: {item.kind} layer {len(layers)} shrinks {current} below 1x1"
                )
            add(
                LayerSpec(
                    label(item.kind),
                    item.kind,
                    current,
                    out,
                    kernel=item.kernel,
                    stride=stride,
                    padding=item.padding,
                    source=len(layers) - 1,
                )
            )
        elif isinstance(item, Flatten):
            flat = (math.prod(current),)
            add(LayerSpec(label("flatten"), "flatten", current, flat, source=len(layers) - 1))
        else:  # pragma: no cover - sketch types are closed
            raise SpecError(f"unknown layer sketch {item!r}")
    if current != (num_classes,):
        raise SpecError(f"{name}: the last layer gives {current}, expected ({num_classes},)")
    run = {key: int(network_fields.pop(key)) for key in RUN_FIELDS if key in network_fields}
    network = NetworkSpec(
        name=name,
        input_shape=tuple(int(s) for s in input_shape),
        num_classes=num_classes,
        layers=tuple(layers),
        **network_fields,
    )
    return Workload(network, **run)


# --------------------------------------------------------------------------
# The model zoo's shapes.
# --------------------------------------------------------------------------


def _digits_mlp(classes: int) -> tuple[tuple[int, ...], list[LayerSketch], dict[str, Any]]:
    return (1, 8, 8), [FC(256, batch_norm=True), FC(classes)], {"time_steps": 6, "batch_size": 32}


def _fmnist_conv(classes: int) -> tuple[tuple[int, ...], list[LayerSketch], dict[str, Any]]:
    sketch: list[LayerSketch] = [
        Conv(32),
        Pool("maxpool", 2),
        Conv(128),
        Pool("maxpool", 2),
        FC(256, batch_norm=True),
        FC(classes),
    ]
    return (1, 28, 28), sketch, {"time_steps": 4, "batch_size": 64}


def _cifar_vgg(classes: int) -> tuple[tuple[int, ...], list[LayerSketch], dict[str, Any]]:
    # The first author's CIFAR network: stride-2 convolutions instead of pooling.
    sketch: list[LayerSketch] = [
        Conv(128),
        Conv(128),
        Conv(128, stride=2),
        Conv(256),
        Conv(256),
        Conv(256, stride=2),
        Conv(512),
        Conv(512),
        Conv(512, stride=2),
        FC(1024),
        FC(512),
        FC(classes),
    ]
    return (3, 32, 32), sketch, {"time_steps": 6, "batch_size": 16}


def _dvs_gesture(classes: int) -> tuple[tuple[int, ...], list[LayerSketch], dict[str, Any]]:
    # [ours] 128x128 event frames pooled 4x on the analog input, then a VGG-style stack.
    sketch: list[LayerSketch] = [
        Pool("avgpool", 4),
        Conv(64),
        Conv(128, stride=2),
        Conv(128),
        Conv(256, stride=2),
        Conv(256, stride=2),
        FC(512),
        FC(classes),
    ]
    return (2, 128, 128), sketch, {"time_steps": 10, "batch_size": 16, "input_kind": "events"}


def _dvs_cifar10(classes: int) -> tuple[tuple[int, ...], list[LayerSketch], dict[str, Any]]:
    # [ours] 48x48 event frames, VGG-style stack with stride-2 downsampling.
    sketch: list[LayerSketch] = [
        Conv(64),
        Conv(128, stride=2),
        Conv(128),
        Conv(256, stride=2),
        Conv(256),
        Conv(256, stride=2),
        FC(512),
        FC(classes),
    ]
    return (2, 48, 48), sketch, {"time_steps": 10, "batch_size": 16, "input_kind": "events"}


def _alexnet(classes: int) -> tuple[tuple[int, ...], list[LayerSketch], dict[str, Any]]:
    # AlexNet (torchvision shapes) on 224x224 ImageNet, for cost studies.
    sketch: list[LayerSketch] = [
        Conv(64, kernel=11, stride=4, padding=2),
        Pool("maxpool", 3, 2),
        Conv(192, kernel=5, padding=2),
        Pool("maxpool", 3, 2),
        Conv(384),
        Conv(256),
        Conv(256),
        Pool("maxpool", 3, 2),
        FC(4096),
        FC(4096),
        FC(classes),
    ]
    return (3, 224, 224), sketch, {"time_steps": 6, "batch_size": 16}


def _resnet18(classes: int) -> tuple[tuple[int, ...], list[LayerSketch], dict[str, Any]]:
    # ResNet-18 shapes on 224x224 ImageNet with spiking basic blocks: each block's
    # second conv adds the shortcut (identity spikes, or a 1x1 projection that
    # does not fire) to its current before firing.
    sketch: list[LayerSketch] = [Conv(64, kernel=7, stride=2, padding=3), Pool("maxpool", 3, 2, 1)]
    index = 1  # index of the last layer so far
    for stage, channels in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            block_in = index
            sketch.append(Conv(channels, stride=stride, source=block_in))
            first = index + 1
            if stride != 1:  # channels change with the stride in ResNet-18
                sketch.append(
                    Conv(channels, kernel=1, stride=stride, padding=0, fires=False, source=block_in)
                )
                shortcut = first + 1
                sketch.append(Conv(channels, source=first, residual=shortcut))
                index = shortcut + 1
            else:
                sketch.append(Conv(channels, source=first, residual=block_in))
                index = first + 1
    sketch += [Pool("avgpool", 7), FC(classes)]
    return (3, 224, 224), sketch, {"time_steps": 6, "batch_size": 16}


ZOO: dict[str, tuple[Callable[[int], Any], int, str]] = {
    "digits-mlp": (_digits_mlp, 10, "MLP 64-256-10 for scikit-learn's 8x8 digits"),
    "fmnist-conv": (_fmnist_conv, 10, "2 conv + 2 fc for 28x28 (Fashion-)MNIST"),
    "cifar-vgg": (_cifar_vgg, 10, "first author's CIFAR VGG (9 conv, 3 fc), T=6"),
    "dvs-gesture": (_dvs_gesture, 11, "DVS Gesture, 128x128x2 events, T=10"),
    "dvs-cifar10": (_dvs_cifar10, 10, "CIFAR10-DVS, 48x48x2 events, T=10"),
    "alexnet": (_alexnet, 1000, "AlexNet, ImageNet 224x224 shapes (cost studies)"),
    "resnet": (_resnet18, 1000, "ResNet-18, ImageNet 224x224 shapes (cost studies)"),
}

LIF_FIELDS = {f.name for f in dataclasses.fields(LIFParams)}
OVERRIDABLE = {
    "num_classes",
    "time_steps",
    "batch_size",
    "input_shape",
    "readout",
    "input_kind",
} | LIF_FIELDS
READOUTS = ("current", "spike")


def model_names() -> list[str]:
    return list(ZOO)


def build_spec(name: str, **overrides: Any) -> Workload:
    """Return zoo model ``name`` with its default run sizes, as a :class:`Workload`.

    ``build_spec(name).network`` is the network alone.

    ``overrides`` may set ``num_classes``, ``time_steps``, ``batch_size``,
    ``input_shape`` (e.g. MNIST's 28x28 for a model sized for another
    resolution), ``readout``, ``input_kind`` (``"spikes"`` for a spike-coded
    input: see :data:`INPUT_KINDS`) and any :class:`LIFParams` field.

    ``readout="current"`` (default, [ours]): the last layer integrates without
    firing and its time-mean current is the logit.  ``readout="spike"``: the
    last layer fires and its spike rate is the logit, as in the first author's
    library and STBP; it trains to lower accuracy because rates take only
    ``T + 1`` values (see docs/models.md).
    """
    if name not in ZOO:
        raise SpecError(f"unknown model {name!r}; choose one of: {', '.join(ZOO)}")
    unknown = set(overrides) - OVERRIDABLE
    if unknown:
        raise SpecError(
            f"cannot override {', '.join(sorted(unknown))}; "
            f"overridable: {', '.join(sorted(OVERRIDABLE))}"
        )
    factory, default_classes, _ = ZOO[name]
    classes = int(overrides.pop("num_classes", default_classes))
    if classes < 1:
        raise SpecError(f"num_classes={classes} must be at least 1")
    input_shape, sketch, fields = factory(classes)
    input_shape = tuple(overrides.pop("input_shape", input_shape))
    readout = overrides.pop("readout", "current")
    if readout not in READOUTS:
        raise SpecError(f"readout={readout!r}; choose one of: {', '.join(READOUTS)}")
    lif_overrides = {k: overrides.pop(k) for k in list(overrides) if k in LIF_FIELDS}
    fields = {**fields, **overrides, "lif": dataclasses.replace(LIFParams(), **lif_overrides)}
    last = sketch[-1]
    if isinstance(last, FC):
        sketch = [*sketch[:-1], dataclasses.replace(last, fires=readout == "spike")]
    return expand(name, input_shape, classes, sketch, **fields)
