"""Record a trace from a zoo model (fresh or from a checkpoint) on a batch of a dataset.

The batch may be spike-encoded (``encoding``), and the iteration may be the one
computed in the engines' arithmetic (``engine_format``, :func:`record_engine_trace`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from h2learn.errors import H2LearnError
from h2learn.snn.data import dataset_info, load_dataset
from h2learn.snn.models import SpikingNetwork, build
from h2learn.snn.train import TrainConfig, build_model, encoded_input, load_checkpoint
from h2learn.workload.trace import LayerRecord, Trace, record_trace

if TYPE_CHECKING:
    from h2learn.snn.engine_numerics import EngineNumerics


def record_from_dataset(
    model: str | None = None,
    dataset: str = "digits",
    checkpoint: str | Path | None = None,
    batch_size: int = 16,
    seed: int = 0,
    data_dir: str | None = None,
    time_steps: int | None = None,
    split: str = "train",
    encoding: str | None = None,
    engine_format: str | None = None,
) -> Trace:
    """One training iteration of ``model`` on the first ``batch_size`` samples of ``dataset``.

    With ``checkpoint`` the trained weights (and the model, dataset and T the
    run used) come from it, so sparsity can be studied across training.
    ``dataset="synthetic"`` feeds seeded random inputs of the model's shape
    (uniform pixels, or events with probability 0.1 per pixel and step) for
    models whose data is not on the machine.

    ``encoding`` turns the images into spikes (:mod:`h2learn.snn.encoding`;
    default ``direct``, or the checkpoint's); the draws are those evaluation
    uses for these samples.  ``engine_format`` records the iteration as the
    engines compute it in that format (default: PyTorch float32, or the
    checkpoint's training format): see :func:`record_engine_trace`.
    """
    if batch_size < 1:
        raise H2LearnError(f"batch_size={batch_size}: record at least 1 sample")
    source: dict[str, Any] = {"dataset": dataset, "split": split, "seed": seed}
    if dataset == SYNTHETIC:
        if checkpoint is not None or model is None:
            raise H2LearnError("--dataset synthetic needs --model and no --checkpoint")
        return _record_synthetic(model, batch_size, seed, time_steps, source)
    if checkpoint is not None:
        state = load_checkpoint(Path(checkpoint))
        config = TrainConfig(**state["config"])
        if model is not None and model != config.resolved_model():
            raise H2LearnError(
                f"checkpoint {checkpoint} holds {config.resolved_model()}, not {model}; "
                "drop --model or pick the matching checkpoint"
            )
        update: dict[str, Any] = {"batch_size": batch_size}
        if encoding is not None:
            update["encoding"] = encoding
        if engine_format is not None:
            update["engine_format"] = engine_format
        config = TrainConfig(**{**config.model_dump(), **update})
        net = build_model(config)
        net.load_state_dict(state["model"])
        dataset, data_dir = config.dataset, data_dir or config.data_dir
        source.update(checkpoint=str(checkpoint), epoch=state["epoch"] + 1, dataset=dataset)
    else:
        config = TrainConfig(
            dataset=dataset,
            model=model,
            batch_size=batch_size,
            seed=seed,
            time_steps=time_steps,
            encoding=encoding or "direct",
            engine_format=engine_format,
        )
        net = build_model(config)
    steps = net.spec.time_steps
    data = load_dataset(dataset, split, data_dir, steps, limit=batch_size)
    x, y = data.tensors
    if len(y) < batch_size:
        raise H2LearnError(f"{dataset} {split} has only {len(y)} samples; lower --batch-size")
    source["classes"] = dataset_info(dataset).num_classes
    return record_network(net, config, x, y, source, seed)


def record_network(
    net: SpikingNetwork,
    config: TrainConfig,
    x: torch.Tensor,
    labels: torch.Tensor,
    source: dict[str, Any],
    seed: int = 0,
) -> Trace:
    """One training iteration of the built ``net`` on the batch ``x``, as ``config`` trains it.

    The images are encoded as in evaluation (``config.encoding``), and with
    ``config.engine_format`` the iteration is computed in the engines'
    arithmetic.  ``seed`` seeds PyTorch's generator first.
    """
    source = {**source, "encoding": config.encoding}
    inputs = encoded_input(x, net, config.encoding, config.seed)
    torch.manual_seed(seed)
    if config.engine_format is not None:
        from h2learn.snn.engine_numerics import EngineNumerics

        stepper = EngineNumerics(net, config.engine_format)
        return record_engine_trace(stepper, inputs, labels, loss=config.loss, source=source)
    return record_trace(net, inputs, labels, loss=config.loss, source=source)


SYNTHETIC = "synthetic"


def _record_synthetic(
    model: str, batch_size: int, seed: int, time_steps: int | None, source: dict[str, Any]
) -> Trace:
    overrides: dict[str, Any] = {"batch_size": batch_size}
    if time_steps is not None:
        overrides["time_steps"] = time_steps
    torch.manual_seed(seed)
    net = build(model, **overrides)
    spec = net.spec
    generator = torch.Generator().manual_seed(seed)
    if spec.input_kind != "image":  # events or spikes: one frame per step
        shape = (spec.time_steps, batch_size, *spec.input_shape)
        x = (torch.rand(shape, generator=generator) < 0.1).float()
    else:
        x = torch.rand((batch_size, *spec.input_shape), generator=generator)
    labels = torch.randint(0, spec.num_classes, (batch_size,), generator=generator)
    source["classes"] = spec.num_classes
    return record_trace(net, x, labels, source=source)


def record_engine_trace(
    stepper: EngineNumerics,
    x: torch.Tensor,
    labels: torch.Tensor,
    loss: str = "ce",
    source: dict[str, Any] | None = None,
) -> Trace:
    """One training iteration computed in the engines' arithmetic, recorded as a trace.

    ``stepper`` wraps the network (:class:`~h2learn.snn.engine_numerics.EngineNumerics`).
    The tensors are those the engine-format training step computes (forward,
    loss, BPTT; no weight update); the network's parameters and batch-norm
    running statistics are left unchanged.  ``grad_*`` are in loss-scaled
    units, as the engines hold them.
    """
    from h2learn.snn.train import loss_fn

    net = stepper.network
    saved = {name: value.clone() for name, value in net.state_dict().items()}
    was_training = stepper.training
    stepper.train()
    net.zero_grad(set_to_none=True)
    slots: list[dict[str, torch.Tensor]] = []
    rate = stepper(x, slots)
    loss_value = loss_fn(rate, labels, loss)
    loss_value.backward()
    records = []
    pairs = zip(net.spec.layers, net.layers, strict=True)
    weighted = [(layer, module) for layer, module in pairs if layer.weighted]
    for (layer, module), slot in zip(weighted, slots, strict=True):
        tensors = dict(slot)
        if module.op.bias is not None:
            tensors["bias"] = module.op.bias.detach().clone()
        if module.norm is not None:
            tensors["bn_weight"] = module.norm.weight.detach().clone()
            tensors["bn_bias"] = module.norm.bias.detach().clone()
        records.append(LayerRecord(layer, tensors))
    net.zero_grad(set_to_none=True)
    net.load_state_dict(saved)
    stepper.train(was_training)
    meta = {
        "loss": loss,
        "loss_value": float(loss_value.detach()),
        "labels": labels.tolist(),
        "logits": rate.detach().tolist(),
        "source": {**(source or {}), "engine_format": str(stepper.fmt)},
        "loss_scale": stepper.loss_scale,
    }
    return Trace(net.spec, records, meta)
