"""NIR graphs to h2learn networks: read a ``.nir`` file, check it, build the spec and weights.

A NIR graph is a set of nodes joined by edges (:mod:`nir`, HDF5 on disk).
h2learn imports the feed-forward chains its :class:`~h2learn.spec.NetworkSpec`
expresses: ``Input``, then ``Conv2d`` / ``Linear`` / ``Affine`` (each
optionally followed by an ``LIF`` or ``IF`` neuron), ``AvgPool2d`` /
``SumPool2d`` and ``Flatten``, ending in ``Output``.  Every other node type,
a branch, a cycle or a parameter h2learn cannot represent is a
:class:`NIRError` whose one line names the node.  ``docs/nir.md`` gives the
mapping field by field.

The export direction is :mod:`h2learn.interop.export`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nir
import numpy as np
import torch
from torch import nn

from h2learn.interop.neurons import (
    DEFAULT_DT,
    NEURON_TYPES,
    NeuronTranslation,
    NIRError,
    translate_neuron,
)
from h2learn.snn.models import SpikingNetwork
from h2learn.spec import (
    FC,
    INPUT_KINDS,
    Conv,
    Flatten,
    LayerSketch,
    LIFParams,
    Pool,
    SpecError,
    Workload,
)
from h2learn.spec import expand as expand_sketch

WEIGHTED_TYPES = ("Conv2d", "Linear", "Affine")
SHAPE_TYPES = ("AvgPool2d", "SumPool2d", "Flatten")
SUPPORTED_TYPES = ("Input", "Output", *WEIGHTED_TYPES, *NEURON_TYPES, *SHAPE_TYPES)
META = "h2learn_"  # prefix of the graph metadata h2learn's exporter writes (hints only)


@dataclass(frozen=True)
class Imported:
    """A NIR graph as an h2learn network: its spec, weights and neuron translations."""

    spec: Workload
    state_dict: dict[str, torch.Tensor]
    neurons: dict[str, NeuronTranslation] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def read_nir(path: Path) -> nir.NIRGraph:
    """Read a NIR file, turning every failure (missing, corrupt, not a graph) into one line."""
    path = Path(path)
    if not path.is_file():
        raise NIRError(f"no NIR file at {path}")
    try:
        graph = nir.read(path, type_check=False)
    except Exception as exc:  # noqa: BLE001 - h5py and nir raise many types for bad files
        raise NIRError(
            f"{path} is not a readable NIR file ({type(exc).__name__}: {_short(exc)})"
        ) from None
    if not isinstance(graph, nir.NIRGraph):
        raise NIRError(f"{path} holds a single {type(graph).__name__} node, not a NIR graph")
    return graph


def chain_order(graph: nir.NIRGraph) -> list[str]:
    """The node keys from ``Input`` to ``Output``; the graph must be one acyclic chain."""
    nodes = graph.nodes
    if not isinstance(nodes, Mapping) or not nodes:
        raise NIRError("the NIR graph has no nodes")
    try:
        edges = [tuple(str(end) for end in edge) for edge in graph.edges]
    except TypeError:
        raise NIRError(
            f"the graph's edges {graph.edges!r:.80} are not pairs of node names"
        ) from None
    succ: dict[str, list[str]] = {key: [] for key in nodes}
    pred: dict[str, list[str]] = {key: [] for key in nodes}
    for edge in edges:
        if len(edge) != 2 or any(end not in nodes for end in edge):
            raise NIRError(f"edge {edge!r} names a node the graph does not have")
        succ[edge[0]].append(edge[1])
        pred[edge[1]].append(edge[0])
    _check_acyclic(succ, pred)
    inputs = [key for key, node in nodes.items() if isinstance(node, nir.Input)]
    outputs = [key for key, node in nodes.items() if isinstance(node, nir.Output)]
    if len(inputs) != 1 or len(outputs) != 1:
        raise NIRError(
            f"the graph has {len(inputs)} Input and {len(outputs)} Output nodes; "
            "h2learn imports networks with one of each"
        )
    for key in nodes:
        if len(pred[key]) > 1:
            raise NIRError(
                f"node {key!r} sums {len(pred[key])} inputs ({', '.join(pred[key])}); "
                "h2learn imports chains of nodes (no branches or residual sums)"
            )
        if len(succ[key]) > 1:
            raise NIRError(
                f"node {key!r} feeds {len(succ[key])} nodes ({', '.join(succ[key])}); "
                "h2learn imports chains of nodes (no branches)"
            )
    order, key = [inputs[0]], inputs[0]
    while succ[key]:
        key = succ[key][0]
        order.append(key)
    if order[-1] != outputs[0]:
        raise NIRError(f"node {order[-1]!r} leads nowhere: the chain from the input ends there")
    stray = [key for key in nodes if key not in order]
    if stray:
        raise NIRError(f"node {stray[0]!r} is not on the path from the input to the output")
    return order


def _check_acyclic(succ: dict[str, list[str]], pred: dict[str, list[str]]) -> None:
    """Kahn's algorithm: every node must be sortable, else a cycle runs through the rest."""
    waiting = {key: len(sources) for key, sources in pred.items()}
    ready = [key for key, count in waiting.items() if count == 0]
    while ready:
        for target in succ[ready.pop()]:
            waiting[target] -= 1
            if waiting[target] == 0:
                ready.append(target)
    cyclic = sorted(key for key, count in waiting.items() if count > 0)
    if cyclic:
        raise NIRError(
            f"the graph has a cycle through node {cyclic[0]!r}; "
            "h2learn imports feed-forward networks (no recurrent connections)"
        )


def import_graph(
    graph: nir.NIRGraph,
    name: str = "nir",
    dt: float | None = None,
    time_steps: int | None = None,
    batch_size: int | None = None,
    input_kind: str | None = None,
) -> Imported:
    """Translate ``graph`` into an h2learn spec and the weights of its layers.

    ``dt`` (seconds per step), ``time_steps``, ``batch_size`` and
    ``input_kind`` are not part of NIR's semantics; left ``None`` they come
    from the hints h2learn's exporter writes into the graph metadata, else
    from the defaults (``dt`` = :data:`DEFAULT_DT`, the spec's ``T`` and batch,
    ``input_kind="image"``).
    """
    hints = _hints(graph)
    dt = float(dt if dt is not None else hints.get("dt", DEFAULT_DT))
    if not (math.isfinite(dt) and dt > 0):  # checked here too for graphs without neurons
        raise NIRError(f"dt={dt} must be a positive number of seconds")
    builder = _Builder(dt)
    for key in chain_order(graph):
        builder.add(key, graph.nodes[key])
    sketch, layers, lif, folds = builder.finish()
    notes = list(folds)
    fields: dict[str, Any] = {
        "time_steps": time_steps if time_steps is not None else hints.get("time_steps", 6),
        "batch_size": batch_size if batch_size is not None else hints.get("batch_size", 32),
        "input_kind": input_kind if input_kind is not None else hints.get("input_kind", "image"),
        "lif": lif,
    }
    if fields["input_kind"] not in INPUT_KINDS:
        raise NIRError(f"input kind {fields['input_kind']!r}; choose one of {INPUT_KINDS}")
    lif_fields = {k: hints[k] for k in ("window", "height", "reset_grad") if k in hints}
    fields["lif"] = dataclasses.replace(lif, **lif_fields)
    if builder.neurons and not hints:
        notes.append(
            "NIR neurons reset to 0: a snnTorch Leaky(reset_mechanism='subtract'), its "
            "default, is written the same way and runs here with reset to zero"
        )
    spec_name = str(hints.get("name", name))
    spec = expand_sketch(spec_name, builder.input_shape, builder.shape[0], sketch, **fields)
    return Imported(spec, _state_dict(spec, layers), dict(builder.neurons), tuple(notes))


def _state_dict(spec: Workload, layers: list[tuple[str, np.ndarray, np.ndarray]]):
    """The weight and bias of every weighted layer, under the names the model gives them."""
    model = SpikingNetwork(spec)
    names = {id(param): name for name, param in model.named_parameters()}
    state = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
    weighted = [index for index, layer in enumerate(spec.layers) if layer.weighted]
    for index, (key, weight, bias) in zip(weighted, layers, strict=True):
        op = weighted_op(model.layers[index], spec.layers[index].name)
        if tuple(weight.shape) != tuple(op.weight.shape) or op.bias is None:  # pragma: no cover
            raise NIRError(f"node {key!r}: weight shape {weight.shape} != {tuple(op.weight.shape)}")
        state[names[id(op.weight)]] = torch.from_numpy(weight.astype(np.float32))
        state[names[id(op.bias)]] = torch.from_numpy(bias.astype(np.float32))
    return state


def weighted_op(module: nn.Module, name: str) -> nn.Conv2d | nn.Linear:
    """The one conv or linear module inside layer module ``module``."""
    ops = [m for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
    if len(ops) != 1:  # pragma: no cover - the model zoo builds one op per weighted layer
        raise NIRError(f"layer {name!r}: expected one conv/linear module, found {len(ops)}")
    return ops[0]


def build_model(spec: Workload, state_dict: dict[str, torch.Tensor], origin: str) -> SpikingNetwork:
    """A :class:`SpikingNetwork` for ``spec`` holding ``state_dict``, in ``eval()`` mode."""
    try:
        model = SpikingNetwork(spec)
        dtype = next(iter(state_dict.values())).dtype if state_dict else torch.float32
        model = model.to(dtype)
        model.load_state_dict(state_dict)
    except (RuntimeError, SpecError, StopIteration) as exc:
        raise NIRError(f"the weights in {origin} do not match its spec ({_short(exc)})") from None
    return model.eval()


def _short(exc: BaseException) -> str:
    """The first line of an exception's message, at most 160 characters."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


HINT_TYPES: dict[str, type] = {
    "name": str,
    "time_steps": int,
    "batch_size": int,
    "input_kind": str,
    "dt": float,
    "window": float,
    "height": float,
    "reset_grad": bool,
}


def _hints(graph: nir.NIRGraph) -> dict[str, Any]:
    """The ``h2learn_*`` metadata of a graph h2learn exported, as plain Python values."""
    metadata = getattr(graph, "metadata", None)
    hints: dict[str, Any] = {}
    for key, value in metadata.items() if isinstance(metadata, Mapping) else ():
        name = str(key).removeprefix(META)
        if not str(key).startswith(META) or name not in HINT_TYPES:
            continue
        try:
            value = value.item() if isinstance(value, np.generic | np.ndarray) else value
            value = value.decode() if isinstance(value, bytes) else value
            hints[name] = HINT_TYPES[name](value)
        except (TypeError, ValueError, UnicodeDecodeError):
            raise NIRError(
                f"graph metadata {key}={value!r} is not a {HINT_TYPES[name].__name__}"
            ) from None
    return hints


def _pair(key: str, kind: str, what: str, value: Any) -> int:
    """One int from an int or an (h, w) pair that must be square."""
    array = np.asarray(value).ravel()
    if array.size == 0 or array.dtype.kind not in "iuf" or not np.all(array == array[0]):
        raise NIRError(f"node {key!r} ({kind}): {what}={value!r} must be one int or a square pair")
    if not np.isfinite(array[0]) or array[0] != int(array[0]) or array[0] < 0:
        raise NIRError(f"node {key!r} ({kind}): {what}={value!r} must be a non-negative int")
    return int(array[0])


def _dim(key: str, value: Any) -> int:
    """A Flatten dimension index (may be negative)."""
    array = np.asarray(value).ravel()
    if array.size != 1 or array.dtype.kind not in "iu":
        raise NIRError(f"node {key!r} (Flatten): dimension {value!r} is not an int")
    return int(array[0])


def _out(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class _Builder:
    """Walks the chain, collecting the layer sketch, the weights and the neurons."""

    def __init__(self, dt: float) -> None:
        self.dt = dt
        self.sketch: list[LayerSketch] = []
        self.layers: list[tuple[str, np.ndarray, np.ndarray]] = []  # per weighted layer
        self.neurons: dict[str, NeuronTranslation] = {}
        self.firing: dict[int, str] = {}  # weighted layer index -> neuron node key
        self.input_shape: tuple[int, ...] = ()
        self.shape: tuple[int, ...] = ()
        self.batch_dropped = False
        self.scale, self.scale_from = 1.0, ""  # a SumPool2d's factor, folded forward
        self.previous: tuple[str, str] = ("", "")  # key and type of the last node

    def add(self, key: str, node: Any) -> None:
        """Add NIR node ``key`` to the network, or raise a one-line :class:`NIRError`."""
        kind = type(node).__name__
        if kind not in SUPPORTED_TYPES:
            detail = (
                "a nested graph (e.g. a recurrent layer)" if kind == "NIRGraph" else "unsupported"
            )
            raise NIRError(
                f"node {key!r} ({kind}) is {detail}; h2learn imports {', '.join(SUPPORTED_TYPES)}"
            )
        try:
            getattr(self, f"_{kind.lower()}")(key, node)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            if isinstance(exc, NIRError):
                raise
            raise NIRError(
                f"node {key!r} ({kind}) is malformed ({type(exc).__name__}: {_short(exc)})"
            ) from None
        self.previous = (key, kind)

    def _input(self, key: str, node: Any) -> None:
        shape = tuple(int(s) for s in np.asarray(node.input_type["input"]).ravel())
        if len(shape) in (2, 4) and shape[0] == 1:  # a leading batch dimension of 1
            shape, self.batch_dropped = shape[1:], True
        if len(shape) not in (1, 3) or min(shape, default=0) < 1:
            raise NIRError(
                f"node {key!r} (Input): shape {list(shape)} is neither (N,) nor (C, H, W)"
            )
        self.input_shape = self.shape = shape

    def _output(self, key: str, node: Any) -> None:
        if self.scale != 1.0:
            raise NIRError(
                f"node {self.scale_from!r} (SumPool2d): no Conv2d/Linear follows to absorb its sum"
            )

    def _conv2d(self, key: str, node: Any) -> None:
        weight = self._array(key, "Conv2d", "weight", node.weight, 4)
        out_c, in_c, kh, kw = weight.shape
        if kh != kw:
            raise NIRError(f"node {key!r} (Conv2d): kernel {kh}x{kw} is not square")
        if _pair(key, "Conv2d", "groups", node.groups) != 1:
            raise NIRError(f"node {key!r} (Conv2d): grouped convolution is not supported")
        if _pair(key, "Conv2d", "dilation", node.dilation) != 1:
            raise NIRError(f"node {key!r} (Conv2d): dilation is not supported")
        stride = _pair(key, "Conv2d", "stride", node.stride)
        padding = self._padding(key, node.padding, kh, stride)
        if len(self.shape) != 3 or self.shape[0] != in_c:
            raise NIRError(
                f"node {key!r} (Conv2d): expects {in_c} input channels, gets shape {self.shape}"
            )
        out = (
            out_c,
            _out(self.shape[1], kh, stride, padding),
            _out(self.shape[2], kh, stride, padding),
        )
        if min(out) < 1:
            raise NIRError(f"node {key!r} (Conv2d): shrinks the map {self.shape} below 1x1")
        bias = self._bias(key, "Conv2d", getattr(node, "bias", None), out_c)
        self._weighted(
            key, weight, bias, Conv(out_c, kh, stride, padding, batch_norm=False, fires=False)
        )
        self.shape = out

    def _linear(self, key: str, node: Any, kind: str = "Linear", bias: Any = None) -> None:
        weight = self._array(key, kind, "weight", node.weight, 2)
        if len(self.shape) > 1:  # flatten implicitly, as the spec language does
            self.sketch.append(Flatten())
            self.shape = (math.prod(self.shape),)
        if weight.shape[1] != self.shape[0]:
            raise NIRError(
                f"node {key!r} ({kind}): expects {weight.shape[1]} inputs, gets {self.shape[0]}"
            )
        bias = self._bias(key, kind, bias, weight.shape[0])
        self._weighted(key, weight, bias, FC(weight.shape[0], batch_norm=False, fires=False))
        self.shape = (weight.shape[0],)

    def _affine(self, key: str, node: Any) -> None:
        self._linear(key, node, "Affine", node.bias)

    def _weighted(self, key: str, weight: np.ndarray, bias: np.ndarray, item: LayerSketch) -> None:
        if self.scale != 1.0:  # a preceding SumPool2d's window sum (bias unaffected)
            weight, self.scale = weight * self.scale, 1.0
        self.sketch.append(item)
        self.layers.append((key, weight, bias))

    def _neuron(self, key: str, node: Any) -> None:
        kind = type(node).__name__
        if self.previous[1] not in WEIGHTED_TYPES:
            raise NIRError(
                f"node {key!r} ({kind}) follows node {self.previous[0]!r} ({self.previous[1]}); "
                "h2learn neurons sit right after a Conv2d, Linear or Affine node"
            )
        for name in ("tau", "r", "v_threshold"):
            size, count = np.asarray(getattr(node, name, 0.0)).size, math.prod(self.shape)
            if size not in (1, count):
                raise NIRError(
                    f"node {key!r} ({kind}): {name} has {size} values for {count} neurons"
                )
        self.neurons[key] = translate_neuron(key, node, self.dt)
        self.firing[len(self.layers) - 1] = key

    _lif = _if = _neuron

    def _pool(self, key: str, node: Any, kind: str) -> None:
        kernel = _pair(key, kind, "kernel_size", node.kernel_size)
        stride = _pair(key, kind, "stride", node.stride)
        if _pair(key, kind, "padding", node.padding) != 0:
            raise NIRError(f"node {key!r} ({kind}): padded pooling is not supported")
        if len(self.shape) != 3 or kernel < 1 or stride < 1:
            raise NIRError(f"node {key!r} ({kind}): needs a (C, H, W) input, gets {self.shape}")
        c, h, w = self.shape
        self.shape = (c, _out(h, kernel, stride, 0), _out(w, kernel, stride, 0))
        if min(self.shape) < 1:
            raise NIRError(f"node {key!r} ({kind}): shrinks the map ({c}, {h}, {w}) below 1x1")
        self.sketch.append(Pool("avgpool", kernel, stride, 0))
        if kind == "SumPool2d":  # a window sum is the average times kernel^2
            self.scale, self.scale_from = self.scale * kernel * kernel, key

    def _avgpool2d(self, key: str, node: Any) -> None:
        self._pool(key, node, "AvgPool2d")

    def _sumpool2d(self, key: str, node: Any) -> None:
        self._pool(key, node, "SumPool2d")

    def _flatten(self, key: str, node: Any) -> None:
        rank = len(self.shape)
        start, end = _dim(key, node.start_dim), _dim(key, node.end_dim)
        # snnTorch writes start_dim=0 for torch's Flatten(start_dim=1), batch or not;
        # start_dim=1 flattens everything only where the file's shapes count a batch.
        whole_start = start in (0, -rank) or (start == 1 and self.batch_dropped)
        if whole_start and end in (-1, rank - 1, rank):
            if rank > 1:
                self.sketch.append(Flatten())
                self.shape = (math.prod(self.shape),)
            return
        raise NIRError(
            f"node {key!r} (Flatten): start_dim={start}, end_dim={end} does not flatten the whole "
            f"{self.shape} map; h2learn flattens all dimensions"
        )

    def _padding(self, key: str, padding: Any, kernel: int, stride: int) -> int:
        if isinstance(padding, bytes):
            padding = padding.decode()
        if isinstance(padding, str):
            if padding == "valid":
                return 0
            if padding == "same" and stride == 1 and kernel % 2 == 1:
                return kernel // 2
            raise NIRError(f"node {key!r} (Conv2d): padding {padding!r} is not supported here")
        return _pair(key, "Conv2d", "padding", padding)

    @staticmethod
    def _array(key: str, kind: str, what: str, value: Any, ndim: int) -> np.ndarray:
        array = np.asarray(value.detach() if isinstance(value, torch.Tensor) else value)
        if array.ndim != ndim or array.dtype.kind not in "fiu" or min(array.shape) < 1:
            raise NIRError(f"node {key!r} ({kind}): {what} must be a {ndim}-d number array")
        array = array.astype(np.float64)
        if not np.all(np.isfinite(array)):
            raise NIRError(f"node {key!r} ({kind}): {what} holds NaN or infinite values")
        return array

    def _bias(self, key: str, kind: str, bias: Any, count: int) -> np.ndarray:
        if bias is None or np.asarray(bias).size == 0:
            return np.zeros(count)
        array = self._array(key, kind, "bias", np.asarray(bias).reshape(-1), 1)
        if array.size == 1:
            return np.full(count, array[0])
        if array.size != count:
            raise NIRError(
                f"node {key!r} ({kind}): bias has {array.size} values for {count} outputs"
            )
        return array

    def finish(self) -> tuple[list[LayerSketch], list, LIFParams, list[str]]:
        """The sketch, the weights, the network's one LIF setting and the foldings done."""
        if not self.layers:
            raise NIRError("the graph has no Conv2d, Linear or Affine node to run")
        if len(self.shape) != 1:
            raise NIRError(
                f"the graph's output has shape {self.shape}; h2learn networks end in a vector "
                "(add Flatten and Linear)"
            )
        notes: list[str] = []
        lif = LIFParams()
        keys = list(self.firing.items())
        if keys:
            first = self.neurons[keys[0][1]]
            lif = LIFParams(alpha=first.alpha, v_th=first.v_th)
        for index, key in keys:
            translation = self.neurons[key]
            if translation.alpha != lif.alpha:
                raise NIRError(
                    f"node {key!r}: alpha={translation.alpha:g} differs from the first neuron's "
                    f"{lif.alpha:g}; h2learn uses one decay per network"
                )
            factor = translation.gain
            if translation.v_th != lif.v_th:
                if translation.v_th * lif.v_th <= 0:
                    raise NIRError(
                        f"node {key!r}: threshold {translation.v_th:g} cannot be rescaled to the "
                        f"network's {lif.v_th:g} (sign differs or zero)"
                    )
                factor *= lif.v_th / translation.v_th
            if factor != 1.0:
                name, weight, bias = self.layers[index]
                self.layers[index] = (name, weight * factor, bias * factor)
                notes.append(f"node {name!r}: weights and bias scaled by {factor:g} for {key!r}")
            position = self._sketch_position(index)
            self.sketch[position] = dataclasses.replace(self.sketch[position], fires=True)
        return self.sketch, self.layers, lif, notes

    def _sketch_position(self, weighted_index: int) -> int:
        positions = [i for i, item in enumerate(self.sketch) if isinstance(item, Conv | FC)]
        return positions[weighted_index]
