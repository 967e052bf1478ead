"""Traces: one recorded BPTT training iteration, as the hardware sees it.

A trace holds, for every weighted layer and time step, the weights, the
layer input (analog for the encoding layer, spikes after it), the partial sums
``W (*) input``, the neuron's input current, membrane potential, spikes and
surrogate mask, and the gradients: the incoming ``do``, ``du``, the gradient
at the partial sums, the gradient sent to the layer below, and ``dW``.  It
also stores the network spec and the neuron parameters, so the accelerator
model needs nothing else.

On disk a trace is a ZIP archive (stored, not compressed; every member is
CRC-checked on read) of ``meta.json`` and one member per array: ``.npy`` for
numbers, ``.bits`` for binary tensors packed 8 per byte.  No pickle is used.
The format is specified in ``docs/trace-format.md``.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from h2learn.errors import H2LearnError
from h2learn.graph import route
from h2learn.snn.models import SpikingNetwork
from h2learn.snn.neuron import lif, lif_states
from h2learn.spec import LayerSpec, SpecError, Workload

FORMAT_NAME = "h2learn-trace"
FORMAT_VERSION = 1
BIT_FIELDS = frozenset({"spikes", "mask", "lower_mask"})

FIELD_DOCS = {
    "weight": "W, the layer's weights (torch layout)",
    "bias": "bias (layers without batch norm)",
    "bn_weight": "batch-norm scale gamma",
    "bn_bias": "batch-norm shift beta",
    "input": "layer input [T, B, *in_shape]: analog for the encoding layer, else spikes",
    "psum": "W (*) input, no bias: the Forward Engine's result [T, B, *out_shape]",
    "current": "the neuron's input x (after bias, batch norm and residual)",
    "u": "membrane potential",
    "spikes": "output spikes o (bits)",
    "mask": "surrogate mask h(u) != 0 (bits)",
    "lower_mask": "where the gradient w.r.t. the input is needed (bits, shaped like input)",
    "grad_output": "incoming do = dL/d(output) from the layer above",
    "grad_current": "du = dL/d(current)",
    "grad_psum": "dL/d(psum): what the Backward and Weight Update Engines consume",
    "grad_input": "dL/d(input) = W^T (*) grad_psum: the Backward Engine's result",
    "grad_weight": "dW = grad_psum (x) input, summed in float64: the Weight Update Engine result",
}


class TraceError(H2LearnError):
    """A trace file is missing, corrupt, truncated or from another format version."""


@dataclass
class LayerRecord:
    """The tensors of one weighted layer (torch, time-major)."""

    spec: LayerSpec
    tensors: dict[str, torch.Tensor] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------


def _pooled_mask(mask: torch.Tensor, layer: LayerSpec) -> torch.Tensor:
    """Route a mask through a pooling layer: set where any pooled neuron's mask is set."""
    steps = mask.shape[0]
    flat = mask.flatten(0, 1).float()
    pooled = F.max_pool2d(flat, layer.kernel, layer.stride, layer.padding)
    return pooled.unflatten(0, (steps, -1)) > 0


def _lower_masks(spec: Workload, masks: list[torch.Tensor | None]) -> list[torch.Tensor | None]:
    """For each layer, the mask of the neurons whose values it receives (None: all needed)."""

    def through(layer: LayerSpec, mask: torch.Tensor) -> torch.Tensor:
        return mask.flatten(2) if layer.kind == "flatten" else _pooled_mask(mask, layer)

    return route(spec, masks, through)


def _forward(model: SpikingNetwork, x: torch.Tensor):
    """The model's forward with every weighted layer's intermediates kept for recording.

    Uses the model's parameters with plain torch operations and h2learn's
    LIF; the tests check that its output equals ``model(x)``.
    """
    spec = model.spec
    signal = model.encode(x)
    steps = signal.shape[0]
    outputs: list[torch.Tensor] = []
    kept: list[dict[str, torch.Tensor] | None] = []
    for layer, module in zip(spec.layers, model.layers, strict=True):
        inp = signal if layer.source < 0 else outputs[layer.source]
        flat = inp.flatten(0, 1)
        if not layer.weighted:
            out = module(inp)
            kept.append(None)
            outputs.append(out)
            continue
        if layer.kind == "conv":
            psum = F.conv2d(flat, module.op.weight, None, layer.stride, layer.padding)
        else:
            psum = F.linear(flat, module.op.weight)
        psum = psum.unflatten(0, (steps, -1))
        z = psum.flatten(0, 1)
        if module.op.bias is not None:
            z = z + module.op.bias.view(1, -1, *([1] * (z.dim() - 2)))
        if module.norm is not None:
            norm = module.norm
            z = F.batch_norm(z, None, None, norm.weight, norm.bias, True, 0.0, norm.eps)
        current = z.unflatten(0, (steps, -1))
        if layer.residual is not None:
            current = current + outputs[layer.residual]
        out = lif(current, spec.lif) if layer.fires else current * 1.0
        for tensor in (inp, psum, current, out):
            if tensor.requires_grad:
                tensor.retain_grad()
        kept.append({"input": inp, "psum": psum, "current": current, "output": out})
        outputs.append(out)
    return outputs[-1].mean(0), kept


def record_trace(
    model: SpikingNetwork,
    x: torch.Tensor,
    labels: torch.Tensor,
    loss: str = "ce",
    source: dict[str, Any] | None = None,
) -> Trace:
    """Run one training iteration (forward, loss, BPTT; no weight update) and record it.

    ``x`` is a batch as the model takes it; ``labels`` its classes.  The model
    runs in training mode (batch-norm uses the batch's statistics) and its
    parameters and running statistics are left unchanged.
    """
    from h2learn.snn.train import loss_fn

    model = model.float()
    was_training = model.training
    model.train()
    model.zero_grad(set_to_none=True)
    signal = model.encode(x.float()).detach()
    rate, kept = _forward(model, signal)
    loss_value = loss_fn(rate, labels, loss)
    loss_value.backward()
    spec = model.spec
    masks: list[torch.Tensor | None] = []
    records: list[LayerRecord] = []
    for layer, module, entry in zip(spec.layers, model.layers, kept, strict=True):
        if entry is None:
            masks.append(None)
            continue
        tensors = _layer_tensors(layer, module, entry, spec)
        masks.append(tensors.get("mask"))
        records.append(LayerRecord(layer, tensors))
    routed = _lower_masks(spec, masks)
    weighted = [i for i, layer in enumerate(spec.layers) if layer.weighted]
    for index, record in zip(weighted, records, strict=True):
        layer = spec.layers[index]
        if not layer.encoding and layer.source >= 0 and routed[layer.source] is not None:
            record.tensors["lower_mask"] = routed[layer.source].clone()
    model.zero_grad(set_to_none=True)
    model.train(was_training)
    meta = {
        "loss": loss,
        "loss_value": float(loss_value.detach()),
        "labels": labels.tolist(),
        "logits": rate.detach().tolist(),
        "source": source or {},
    }
    return Trace(spec, records, meta)


def exact_weight_gradient(
    layer: LayerSpec, inputs: torch.Tensor, grad_psum: torch.Tensor
) -> torch.Tensor:
    """``dW = grad_psum (x) input`` summed in float64, rounded once to float32.

    The float32 weight-gradient kernels of PyTorch's CPU backend sum the ~1e5
    points of a CIFAR layer with ~1e-4 relative error; the trace stores the
    correctly rounded value so that it can serve as a reference.
    """
    x = inputs.detach().double().flatten(0, 1)
    g = grad_psum.detach().double().flatten(0, 1)
    if layer.kind == "fc":
        return (g.t() @ x).float()
    weight = torch.empty(layer.weight_shape, dtype=torch.float64)
    stride, pad = [layer.stride] * 2, [layer.padding] * 2
    mask = (False, True, False)
    _, dw, _ = torch.ops.aten.convolution_backward(
        g, x, weight, None, stride, pad, [1, 1], False, [0, 0], 1, mask
    )
    return dw.float()


def _layer_tensors(layer: LayerSpec, module, entry: dict[str, torch.Tensor], spec) -> dict:
    def grad(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.grad if tensor.grad is not None else torch.zeros_like(tensor)

    tensors: dict[str, torch.Tensor] = {
        "weight": module.op.weight.detach().clone(),
        "input": entry["input"].detach().clone(),
        "psum": entry["psum"].detach().clone(),
        "current": entry["current"].detach().clone(),
        "grad_output": grad(entry["output"]).clone(),
        "grad_current": grad(entry["current"]).clone(),
        "grad_psum": grad(entry["psum"]).clone(),
        "grad_weight": exact_weight_gradient(layer, entry["input"], grad(entry["psum"])),
    }
    if module.op.bias is not None:
        tensors["bias"] = module.op.bias.detach().clone()
    if module.norm is not None:
        tensors["bn_weight"] = module.norm.weight.detach().clone()
        tensors["bn_bias"] = module.norm.bias.detach().clone()
    if not layer.encoding:
        tensors["grad_input"] = grad(entry["input"]).clone()
    if layer.fires:
        u, spikes, mask = lif_states(tensors["current"], spec.lif)
        tensors.update(u=u, spikes=spikes, mask=mask)
    if layer.binary_input:
        tensors["input"] = tensors["input"].bool()
    return tensors


# --------------------------------------------------------------------------
# The trace object, saving and loading
# --------------------------------------------------------------------------


class Trace:
    """A recorded training iteration: spec, per-layer tensors, metadata."""

    def __init__(self, spec: Workload, layers: list[LayerRecord], meta: dict[str, Any]):
        self.spec = spec
        self.layers = layers
        self.meta = meta
        self._by_name = {record.spec.name: record for record in layers}

    def __getitem__(self, name: str) -> LayerRecord:
        try:
            return self._by_name[name]
        except KeyError:
            known = ", ".join(self._by_name)
            raise TraceError(f"trace has no layer {name!r}; layers: {known}") from None

    def __iter__(self) -> Iterator[LayerRecord]:
        return iter(self.layers)

    @property
    def time_steps(self) -> int:
        return int(self.layers[0].tensors["input"].shape[0])

    @property
    def batch_size(self) -> int:
        return int(self.layers[0].tensors["input"].shape[1])

    def save(self, path: str | Path) -> Path:
        """Write the trace atomically to ``path``."""
        from h2learn.snn.train import atomic_write_bytes

        path = Path(path)
        arrays: dict[str, dict[str, Any]] = {}

        def write(handle) -> None:
            with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
                for record in self.layers:
                    for name, tensor in record.tensors.items():
                        member, info = _encode(record.spec.name, name, tensor)
                        arrays[f"{record.spec.name}/{name}"] = info
                        archive.writestr(member, info.pop("_payload"))
                meta = {
                    "format": FORMAT_NAME,
                    "version": FORMAT_VERSION,
                    "spec": self.spec.to_dict(),
                    "time_steps": self.time_steps,
                    "batch_size": self.batch_size,
                    "arrays": arrays,
                    **self.meta,
                }
                archive.writestr("meta.json", json.dumps(meta, indent=1))

        atomic_write_bytes(path, write)
        return path

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace, checking format, version, CRCs and shapes against the spec."""
        path = Path(path)
        if not path.is_file():
            raise TraceError(f"no trace at {path}; record one with `h2learn trace --out {path}`")
        try:
            with zipfile.ZipFile(path) as archive:
                meta = _read_meta(archive, path)
                spec = Workload.from_dict(meta["spec"])
                layers = _read_layers(archive, meta, spec, path)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise TraceError(
                f"{path} is corrupt or truncated ({exc}); record the trace again"
            ) from None
        except SpecError as exc:
            raise TraceError(f"{path}: {exc}") from None
        extra = {k: v for k, v in meta.items() if k not in ("arrays", "spec")}
        return cls(spec, layers, extra)


def _encode(layer: str, name: str, tensor: torch.Tensor) -> tuple[str, dict[str, Any]]:
    array = tensor.detach().cpu().numpy()
    if tensor.dtype == torch.bool:
        payload = np.packbits(array.reshape(-1), bitorder="little").tobytes()
        return f"{layer}/{name}.bits", {
            "encoding": "bits",
            "shape": list(array.shape),
            "_payload": payload,
        }
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return f"{layer}/{name}.npy", {
        "encoding": "npy",
        "shape": list(array.shape),
        "dtype": str(array.dtype),
        "_payload": buffer.getvalue(),
    }


def _read_meta(archive: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(archive.read("meta.json"))
    except KeyError:
        raise TraceError(f"{path} is not an h2learn trace (no meta.json)") from None
    except json.JSONDecodeError:
        raise TraceError(f"{path}: meta.json is corrupt; record the trace again") from None
    if meta.get("format") != FORMAT_NAME:
        raise TraceError(f"{path} is not an h2learn trace (format {meta.get('format')!r})")
    if meta.get("version") != FORMAT_VERSION:
        raise TraceError(
            f"{path} is trace format version {meta.get('version')}, this h2learn reads "
            f"version {FORMAT_VERSION}; record it again with this version"
        )
    return meta


def _expected_shapes(layer: LayerSpec, steps: int, batch: int) -> dict[str, tuple[int, ...]]:
    inp = (steps, batch, *layer.in_shape)
    out = (steps, batch, *layer.out_shape)
    shapes = {name: out for name in ("psum", "current", "u", "spikes", "mask", "grad_output")}
    shapes.update(grad_current=out, grad_psum=out, input=inp, grad_input=inp, lower_mask=inp)
    shapes.update(weight=layer.weight_shape, grad_weight=layer.weight_shape)
    shapes.update(bias=(layer.out_channels,), bn_weight=(layer.out_channels,))
    shapes["bn_bias"] = (layer.out_channels,)
    return shapes


def _read_layers(archive, meta, spec: Workload, path: Path) -> list[LayerRecord]:
    steps, batch = int(meta["time_steps"]), int(meta["batch_size"])
    records = []
    for layer in spec.weighted_layers:
        expected = _expected_shapes(layer, steps, batch)
        tensors = {}
        prefix = f"{layer.name}/"
        for key, info in meta["arrays"].items():
            if not key.startswith(prefix):
                continue
            name = key[len(prefix) :]
            tensor = _decode(archive, key, info, path)
            if name in expected and tuple(tensor.shape) != expected[name]:
                raise TraceError(
                    f"{path}: layer {layer.name} {name} has shape {tuple(tensor.shape)} but its "
                    f"spec needs {expected[name]}; the trace does not match its spec"
                )
            tensors[name] = tensor
        missing = {"weight", "input", "psum", "grad_psum", "grad_weight"} - set(tensors)
        if missing:
            raise TraceError(f"{path}: layer {layer.name} lacks {', '.join(sorted(missing))}")
        records.append(LayerRecord(layer, tensors))
    return records


def _decode(archive, key: str, info: dict[str, Any], path: Path) -> torch.Tensor:
    try:
        if info["encoding"] == "bits":
            raw = np.frombuffer(archive.read(f"{key}.bits"), dtype=np.uint8)
            count = int(np.prod(info["shape"]))
            bits = np.unpackbits(raw, count=count, bitorder="little").astype(bool)
            return torch.from_numpy(bits.reshape(info["shape"]))
        array = np.lib.format.read_array(io.BytesIO(archive.read(f"{key}.npy")), allow_pickle=False)
        return torch.from_numpy(np.array(array))
    except KeyError:
        raise TraceError(f"{path}: member {key} is missing; record the trace again") from None
    except ValueError as exc:
        raise TraceError(f"{path}: member {key} is corrupt ({exc}); record it again") from None
