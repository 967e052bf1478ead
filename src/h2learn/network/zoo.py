"""The model zoo's shapes: named networks as sketches, and the overrides they take.

:data:`ZOO` maps each model name to the function that returns its input
shape, sketch and default run sizes, its default number of classes and a
one-line description; :func:`build_spec` expands one with the user's
overrides (classes, run sizes, input shape and kind, read-out and any LIF
parameter) into a :class:`~h2learn.network.layers.Workload`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from h2learn.network.layers import LIFParams, SpecError, Workload
from h2learn.network.sketch import FC, Conv, LayerSketch, Pool, expand


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
