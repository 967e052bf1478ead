"""Network specifications: the layer and network types.

A :class:`NetworkSpec` lists every layer with all the shapes a cost model
needs (kind, channels, kernel, stride, padding, input and output sizes) and
the LIF neuron parameters.  The run sizes (batch size and number of time
steps) are not part of the network: a :class:`Workload` pairs a network with
them, and :func:`~h2learn.network.zoo.build_spec` and
:func:`~h2learn.network.sketch.expand` return one (the zoo's default run
unless overridden).  The model zoo (:mod:`h2learn.snn.models`) builds PyTorch
modules from it and the accelerator model reads it; neither keeps its own
copy of a layer list.

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
