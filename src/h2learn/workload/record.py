"""Record a trace from a zoo model (fresh or from a checkpoint) on a batch of a dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from h2learn.errors import H2LearnError
from h2learn.snn.data import dataset_info, load_dataset
from h2learn.snn.models import build
from h2learn.snn.train import TrainConfig, build_model, load_checkpoint, to_time_major
from h2learn.workload.trace import Trace, record_trace


def record_from_dataset(
    model: str | None = None,
    dataset: str = "digits",
    checkpoint: str | Path | None = None,
    batch_size: int = 16,
    seed: int = 0,
    data_dir: str | None = None,
    time_steps: int | None = None,
    split: str = "train",
) -> Trace:
    """One training iteration of ``model`` on the first ``batch_size`` samples of ``dataset``.

    With ``checkpoint`` the trained weights (and the model, dataset and T the
    run used) come from it, so sparsity can be studied across training.
    ``dataset="synthetic"`` feeds seeded random inputs of the model's shape
    (uniform pixels, or events with probability 0.1 per pixel and step) for
    models whose data is not on the machine.
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
        config = config.model_copy(update={"batch_size": batch_size})
        net = build_model(config)
        net.load_state_dict(state["model"])
        dataset, data_dir = config.dataset, data_dir or config.data_dir
        source.update(checkpoint=str(checkpoint), epoch=state["epoch"] + 1, dataset=dataset)
    else:
        config = TrainConfig(
            dataset=dataset, model=model, batch_size=batch_size, seed=seed, time_steps=time_steps
        )
        net = build_model(config)
    steps = net.spec.time_steps
    data = load_dataset(dataset, split, data_dir, steps, limit=batch_size)
    x, y = data.tensors
    if len(y) < batch_size:
        raise H2LearnError(f"{dataset} {split} has only {len(y)} samples; lower --batch-size")
    info = dataset_info(dataset)
    source["classes"] = info.num_classes
    torch.manual_seed(seed)
    return record_trace(net, to_time_major(x, net), y, loss=config.loss, source=source)


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
