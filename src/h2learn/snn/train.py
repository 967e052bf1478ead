"""Trainer: epochs of BPTT, evaluation, metrics, atomic checkpoints, resume.

Determinism: the model is initialised from ``seed`` and every epoch's
shuffle comes from a generator seeded with ``(seed, epoch)``, so an
interrupted run resumed from its last checkpoint ends with the same weights
as an uninterrupted one.  Under ``torchrun`` the same run is split across
processes (:mod:`h2learn.snn.distributed`); ``batch_size`` stays the global
batch, so the result does not depend on the number of processes.

``encoding`` turns static images into spikes (:mod:`h2learn.snn.encoding`);
its random draws are seeded per sample, epoch and run.  ``engine_format``
trains in the number format of H2Learn's engines
(:mod:`h2learn.snn.engine_numerics`).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from torch.utils.data import TensorDataset

from h2learn.errors import CheckpointError, H2LearnError, TrainingDiverged
from h2learn.snn import augment
from h2learn.snn.allocator import reuse_freed_memory
from h2learn.snn.data import dataset_info, load_dataset
from h2learn.snn.distributed import World, data_parallel, process_world
from h2learn.snn.encoding import (
    EVAL_STREAM,
    encode,
    encoded_shape,
    encoding_info,
    sample_generators,
)
from h2learn.snn.models import SpikingNetwork, build
from h2learn.spec import model_names

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
CHECKPOINT_VERSION = 1
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class TrainConfig(BaseModel):
    """Everything that determines a training run (saved in checkpoints and metrics)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    dataset: str = "digits"
    model: str | None = None  # None: the dataset's default model
    epochs: int = Field(30, ge=1)
    time_steps: int | None = Field(None, ge=1)  # None: the model's default T
    batch_size: int = Field(32, ge=1)
    lr: float = Field(2e-3, gt=0)
    optimizer: Literal["adam", "sgd"] = "adam"
    schedule: Literal["cosine", "constant"] = "cosine"
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0)
    loss: Literal["ce", "mse"] = "ce"
    seed: int = 0
    data_dir: str | None = None
    limit_train: int | None = Field(None, ge=1)
    limit_test: int | None = Field(None, ge=1)
    alpha: float | None = None
    v_th: float | None = None
    reset_grad: bool = True
    precision: Literal["float32", "float64"] = "float32"
    augment: bool = False  # random shifts of up to 2 pixels and horizontal flips
    encoding: str = "direct"  # direct, poisson, latency or delta (h2learn.snn.encoding)
    engine_format: str | None = None  # None: PyTorch float; else train in the engines' format

    @field_validator("model")
    @classmethod
    def _known_model(cls, value: str | None) -> str | None:
        if value is not None and value not in model_names():
            raise ValueError(f"unknown model {value!r}; choose one of: {', '.join(model_names())}")
        return value

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str) -> str:
        return encoding_info(value).name

    @field_validator("engine_format")
    @classmethod
    def _training_format(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from h2learn.snn.engine_numerics import parse_training_format

        return str(parse_training_format(value))

    @model_validator(mode="after")
    def _encoding_fits_dataset(self) -> TrainConfig:
        if self.encoding != "direct" and dataset_info(self.dataset).kind != "image":
            raise ValueError(
                f"{self.dataset} is an event dataset (its frames are events already); "
                "spike encodings apply to image datasets, use encoding 'direct'"
            )
        return self

    def resolved_model(self) -> str:
        return self.model or dataset_info(self.dataset).default_model

    def model_overrides(self) -> dict[str, Any]:
        info = dataset_info(self.dataset)
        overrides: dict[str, Any] = {
            "num_classes": info.num_classes,
            "input_shape": info.input_shape,
            "batch_size": self.batch_size,
            "reset_grad": self.reset_grad,
        }
        if self.time_steps is not None:
            overrides["time_steps"] = self.time_steps
        if self.alpha is not None:
            overrides["alpha"] = self.alpha
        if self.v_th is not None:
            overrides["v_th"] = self.v_th
        encoding = encoding_info(self.encoding)
        if encoding.input_kind == "spikes":
            overrides["input_kind"] = "spikes"
            overrides["input_shape"] = encoded_shape(encoding.name, info.input_shape)
        return overrides


def build_model(config: TrainConfig) -> SpikingNetwork:
    """The model the config describes, initialised from its seed."""
    torch.manual_seed(config.seed)
    model = build(config.resolved_model(), **config.model_overrides())
    return model.to(DTYPES[config.precision])


def make_optimizer(config: TrainConfig, model: torch.nn.Module) -> torch.optim.Optimizer:
    params = model.parameters()
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_scheduler(
    config: TrainConfig, optimizer: torch.optim.Optimizer, steps_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Cosine decay of the learning rate to 0 over the whole run, stepped every batch."""
    if config.schedule == "cosine":
        total = max(config.epochs * steps_per_epoch, 1)
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


def loss_fn(rate: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """Cross-entropy on the rate read-out, or MSE of the rate to the one-hot target (STBP).

    Averaged over the batch (and, for MSE, the classes).
    """
    return summed_loss(rate, target, kind) / max(len(target), 1)


def summed_loss(rate: torch.Tensor, target: torch.Tensor, kind: str) -> torch.Tensor:
    """The loss summed over the batch: a shard's share of a global batch's loss."""
    if kind == "ce":
        return F.cross_entropy(rate, target, reduction="sum")
    one_hot = F.one_hot(target, rate.shape[1]).to(rate.dtype)
    return F.mse_loss(rate, one_hot, reduction="sum") / rate.shape[1]


def to_time_major(x: torch.Tensor, model: SpikingNetwork) -> torch.Tensor:
    """Event batches come batch-major ``[B, T, ...]``; the network wants ``[T, B, ...]``.

    The input is also brought to the model's floating-point precision.
    """
    dtype = next(model.parameters()).dtype
    if x.is_floating_point() and x.dtype != dtype:
        x = x.to(dtype)
    if x.dim() == len(model.spec.input_shape) + 2:
        return x.transpose(0, 1)
    return x


def encoded_input(
    x: torch.Tensor,
    model: SpikingNetwork,
    encoding: str = "direct",
    seed: int = 0,
    stream: int = EVAL_STREAM,
    indices: torch.Tensor | None = None,
) -> torch.Tensor:
    """The model's input for a batch ``x``: time-major, in the model's precision.

    Spike encodings draw per sample from ``(seed, stream, indices)`` (the
    samples' dataset indices; ``0..B-1`` when not given).
    """
    if encoding != "direct":
        if indices is None:
            indices = torch.arange(len(x))
        generators = sample_generators(seed, stream, indices)
        spikes = encode(x, encoding, model.spec.time_steps, generators)  # already [T, B, ...]
        return spikes.to(next(model.parameters()).dtype)
    return to_time_major(x, model)


@torch.no_grad()
def evaluate(
    model: SpikingNetwork | torch.nn.Module,
    data: TensorDataset,
    batch_size: int = 256,
    world: World | None = None,
    encoding: str = "direct",
    seed: int = 0,
) -> float:
    """Top-1 accuracy (a fraction) of ``model`` on ``data``.

    In a multi-process ``world`` each process evaluates its share of the
    samples and the counts are summed.  ``encoding`` and ``seed`` turn images
    into spikes as in training (evaluation draws from its own stream).
    ``model`` may be a wrapper (engine numerics) with the network as ``.network``.
    """
    world = world or World()
    network = getattr(model, "network", model)
    model.eval()
    correct = 0
    indices = world.shard(torch.arange(len(data))) if world.distributed else torch.arange(len(data))
    for start in range(0, len(indices), batch_size):
        rows = indices[start : start + batch_size]
        x, y = data[rows]
        inputs = encoded_input(x, network, encoding, seed, EVAL_STREAM, rows)
        correct += (model(inputs).argmax(1) == y).sum().item()
    model.train()
    (correct,) = world.sum([correct])
    return correct / max(len(data), 1)


def atomic_write_bytes(path: Path, write: Callable[[Any], None]) -> None:
    """Write a file through a temporary file in the same folder, then rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_bytes(path, lambda h: h.write(json.dumps(data, indent=2).encode()))


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    atomic_write_bytes(path, lambda h: torch.save(state, h))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`, with one-line errors."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train first or drop --resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means corrupt
        raise CheckpointError(
            f"checkpoint {path} is corrupt or truncated ({type(exc).__name__}); "
            "delete it and train again"
        ) from None
    if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"checkpoint {path} is not an h2learn v{CHECKPOINT_VERSION} checkpoint; "
            "re-create it with this version"
        )
    return state


def load_model(path: Path) -> SpikingNetwork:
    """Rebuild the trained model stored in a checkpoint."""
    state = load_checkpoint(path)
    model = build_model(TrainConfig(**state["config"]))
    try:
        model.load_state_dict(state["model"])
    except RuntimeError:
        raise CheckpointError(f"checkpoint {path} does not match its model") from None
    return model


ProgressHook = Callable[[int, int, int, float], None]  # epoch, step, steps, loss
EpochHook = Callable[[int, SpikingNetwork, float], None]  # epoch (0-based), model, test accuracy


def train(
    config: TrainConfig,
    out_dir: Path,
    resume: bool = False,
    progress: ProgressHook | None = None,
    log: Callable[[str], None] = lambda message: None,
    epoch_end: EpochHook | None = None,
) -> dict[str, Any]:
    """Train per ``config``, writing ``metrics.json`` and a checkpoint each epoch to ``out_dir``.

    Returns the metrics dict.  With ``resume`` the run continues from
    ``out_dir``'s checkpoint (whose config must match).  Launched by
    ``torchrun``, the processes train together (data parallel, same result);
    only rank 0 writes files, logs and reports progress.  Freed memory is kept
    for reuse between steps (:func:`~h2learn.snn.allocator.reuse_freed_memory`).
    ``epoch_end(epoch, model, test_accuracy)`` runs on rank 0 after each
    epoch's evaluation and before its checkpoint (so a run interrupted in
    between redoes the epoch and calls it again); it must leave the model and
    the random state as it found them (:mod:`h2learn.workload.characterize`
    records traces there).
    """
    reuse_freed_memory()
    with process_world() as world:
        if not world.is_main:
            progress, log, epoch_end = None, lambda message: None, None
        hooks = _Hooks(progress, log, epoch_end)
        return _train(config, Path(out_dir), resume, hooks, world)


@dataclass(frozen=True)
class _Hooks:
    """What the caller observes of a run: step progress, log lines, the end of each epoch."""

    progress: ProgressHook | None
    log: Callable[[str], None]
    epoch_end: EpochHook | None


def _train(
    config: TrainConfig, out_dir: Path, resume: bool, hooks: _Hooks, world: World
) -> dict[str, Any]:
    progress, log = hooks.progress, hooks.log
    train_set = load_dataset(
        config.dataset, "train", config.data_dir, _time_steps(config), config.limit_train
    )
    test_set = load_dataset(
        config.dataset, "test", config.data_dir, _time_steps(config), config.limit_test
    )
    model = build_model(config)
    stepper = _stepper(config, model, world)
    evaluated = model if config.engine_format is None else stepper
    optimizer = make_optimizer(config, model)
    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    scheduler = make_scheduler(config, optimizer, steps_per_epoch)
    history: list[dict[str, Any]] = []
    start_epoch, elapsed = 0, 0.0
    checkpoint_path = out_dir / CHECKPOINT_NAME
    if resume:
        state = load_checkpoint(checkpoint_path)
        if state["config"] != config.model_dump():
            raise CheckpointError(
                f"checkpoint {checkpoint_path} was made with different settings; "
                "resume with the same options or use a new --out"
            )
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, ValueError, KeyError):
            raise CheckpointError(
                f"checkpoint {checkpoint_path} does not match its model"
            ) from None
        start_epoch, history, elapsed = state["epoch"] + 1, state["history"], state["train_seconds"]
        log(f"resuming after epoch {state['epoch'] + 1} of {config.epochs}")
    elif checkpoint_path.exists():
        raise H2LearnError(
            f"{out_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    if world.distributed:
        log(f"data parallel over {world.size} processes, global batch {config.batch_size}")

    for epoch in range(start_epoch, config.epochs):
        began = time.perf_counter()
        train_loss, train_acc = _train_epoch(
            stepper, model, optimizer, scheduler, train_set, config, epoch, progress, world
        )
        seconds = time.perf_counter() - began
        elapsed += seconds
        test_acc = evaluate(
            evaluated, test_set, world=world, encoding=config.encoding, seed=config.seed
        )
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_accuracy": train_acc,
                "test_accuracy": test_acc,
                "seconds": seconds,
            }
        )
        log(
            f"epoch {epoch + 1}/{config.epochs}: loss {train_loss:.4f}, "
            f"train {train_acc:.2%}, test {test_acc:.2%} ({seconds:.1f} s)"
        )
        if hooks.epoch_end is not None:
            hooks.epoch_end(epoch, model, test_acc)
        if world.is_main:
            _save_epoch(
                checkpoint_path, config, model, optimizer, scheduler, epoch, history, elapsed, world
            )
        world.barrier()  # the checkpoint exists before any process moves on
    metrics = _metrics(config, model, history, elapsed, world)
    return metrics


def _stepper(config: TrainConfig, model: SpikingNetwork, world: World) -> torch.nn.Module:
    """What computes a training step: the model (DDP-wrapped when distributed), or the
    engine-numerics wrapper when ``engine_format`` is set (one process only)."""
    if config.engine_format is None:
        return data_parallel(model, world)
    if world.distributed:
        raise H2LearnError(
            "training in an engine format runs in one process; launch it without torchrun"
        )
    from h2learn.snn.engine_numerics import EngineNumerics

    return EngineNumerics(model, config.engine_format)


def _save_epoch(
    checkpoint_path, config, model, optimizer, scheduler, epoch, history, elapsed, world
):
    """Write the end-of-epoch checkpoint, then the metrics (both atomically)."""
    state = {
        "version": CHECKPOINT_VERSION,
        "config": config.model_dump(),
        "spec": model.spec.to_dict(),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "epoch": epoch,
        "history": history,
        "train_seconds": elapsed,
    }
    save_checkpoint(checkpoint_path, state)
    metrics = _metrics(config, model, history, elapsed, world)
    atomic_write_json(checkpoint_path.parent / METRICS_NAME, metrics)


def _time_steps(config: TrainConfig) -> int:
    if config.time_steps is not None:
        return config.time_steps
    from h2learn.spec import build_spec

    return build_spec(config.resolved_model()).time_steps


def _metrics(
    config: TrainConfig, model: SpikingNetwork, history, elapsed: float, world: World | None = None
) -> dict[str, Any]:
    return {
        "dataset": config.dataset,
        "model": config.resolved_model(),
        "time_steps": model.spec.time_steps,
        "test_accuracy": history[-1]["test_accuracy"] if history else None,
        "best_test_accuracy": max((h["test_accuracy"] for h in history), default=None),
        "train_seconds": elapsed,
        "epochs": len(history),
        "history": history,
        "processes": (world or World()).size,
        "config": config.model_dump(),
    }


def _train_epoch(
    stepper: torch.nn.Module,
    model: SpikingNetwork,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    data: TensorDataset,
    config: TrainConfig,
    epoch: int,
    progress: ProgressHook | None,
    world: World,
) -> tuple[float, float]:
    """One epoch of BPTT steps; returns the epoch's mean training loss and accuracy.

    ``stepper`` computes the forward pass: ``model`` itself or its DDP wrapper.
    The shuffle is the same permutation a ``DataLoader(shuffle=True)`` with this
    generator draws; each global batch is cut into the processes' shards.
    """
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    batches = torch.randperm(len(data), generator=generator).split(config.batch_size)
    augment_generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch + 50_001)
    total_loss, correct, seen = 0.0, 0, 0
    for step, batch in enumerate(batches):
        rows = world.shard(batch)
        x, y = data[rows]
        if config.augment:  # drawn for the global batch, applied to this process's share
            choices = augment.draw(len(batch), augment_generator)
            x = augment.apply(x, choices.select(world.shard(torch.arange(len(batch)))))
        inputs = encoded_input(x, model, config.encoding, config.seed, epoch + 1, rows)
        rate = stepper(inputs)
        loss_sum = summed_loss(rate, y, config.loss)
        # one collective before backward: every process sees the global loss, so
        # all of them stop together on a NaN instead of leaving peers waiting
        batch_loss, batch_correct = world.sum([loss_sum.item(), (rate.argmax(1) == y).sum().item()])
        batch_loss /= len(batch)
        if not math.isfinite(batch_loss):
            raise TrainingDiverged(
                f"loss became {batch_loss} at epoch {epoch + 1}, step {step + 1}; "
                "lower --lr or check the input data (the last good checkpoint is kept)"
            )
        optimizer.zero_grad(set_to_none=True)
        (loss_sum * (world.size / len(batch))).backward()
        optimizer.step()
        scheduler.step()
        if not all(torch.isfinite(p).all() for p in model.parameters()):
            raise TrainingDiverged(
                f"weights became non-finite at epoch {epoch + 1}, step {step + 1}; lower --lr"
            )
        total_loss += batch_loss * len(batch)
        correct += int(batch_correct)
        seen += len(batch)
        if progress is not None:
            progress(epoch, step + 1, len(batches), batch_loss)
    return total_loss / seen, correct / seen
