"""Sparsity across training: the paper's characterization, measured on real data.

H2Learn's engines gain from sparsity (binary input spikes, zero gradients,
surrogate masks that gate the Backward Engine), so a cost figure is only as
good as the densities behind it.  A fresh network's densities are not a
trained one's.  :func:`characterize` trains a zoo model with the ordinary
trainer and, before training and after every ``trace_every``-th epoch,
records one training iteration on a fixed batch of training samples (the
same samples each time), so the densities of every layer can be followed
from initialisation to the end of training.

What it writes to ``out_dir`` beside the trainer's own files:

- ``traces/epoch-NNN.h2t``: the recorded iterations (``epoch-000`` is fresh);
- ``characterization.json``: per epoch, the test accuracy so far and each
  layer's densities (:data:`DENSITY_FIELDS`), written atomically after every
  trace so an interrupted run resumed with ``resume=True`` loses nothing;
- (through :mod:`h2learn.report.characterization`) ``characterization.md``
  and ``densities.png``: the table and the plot.

Recording works on a copy of the model with the random-number state saved
and restored, so characterizing a run changes none of its training results.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from h2learn.errors import H2LearnError
from h2learn.snn.data import load_dataset
from h2learn.snn.models import SpikingNetwork
from h2learn.snn.train import (
    CHECKPOINT_NAME,
    TrainConfig,
    atomic_write_json,
    build_model,
    train,
)
from h2learn.workload.record import record_network
from h2learn.workload.stats import trace_stats
from h2learn.workload.trace import Trace

DENSITY_FIELDS = ("input", "mask", "du_psum", "lower_mask")
"""The densities the cost model reads (see :mod:`h2learn.workload.stats`):
input spikes (Forward and Weight Update Engines), surrogate masks, gradients
at the partial sums (Backward Engine input sparsity) and the lower layer's
mask (Backward Engine output sparsity)."""

SUMMARY_NAME = "characterization.json"
TRACE_FOLDER = "traces"


def trace_path(out_dir: Path, epoch: int) -> Path:
    """Where the trace recorded after ``epoch`` (0: before training) is kept."""
    return Path(out_dir) / TRACE_FOLDER / f"epoch-{epoch:03d}.h2t"


def epoch_densities(trace: Trace) -> list[dict[str, Any]]:
    """One row per weighted or pooling layer: its name, kind and overall densities."""
    rows = []
    for layer in trace_stats(trace)["layers"]:
        row = {"layer": layer["layer"], "kind": layer["kind"]}
        row.update({name: layer[name] for name in DENSITY_FIELDS if name in layer})
        rows.append(row)
    return rows


class _Recorder:
    """Records the fixed batch on a copy of the model and keeps the summary file current."""

    def __init__(self, config: TrainConfig, out_dir: Path, trace_every: int, trace_batch: int):
        self.config, self.out_dir = config, out_dir
        self.trace_every, self.trace_batch = trace_every, trace_batch
        self.summary_path = out_dir / SUMMARY_NAME
        self.summary = self._load_summary()
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def _load_summary(self) -> dict[str, Any]:
        if self.summary_path.is_file():
            return json.loads(self.summary_path.read_text())
        return {
            "model": self.config.resolved_model(),
            "dataset": self.config.dataset,
            "trace_batch": self.trace_batch,
            "trace_every": self.trace_every,
            "fields": list(DENSITY_FIELDS),
            "epochs": [],
        }

    def batch(self, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batch is None:
            data = load_dataset(
                self.config.dataset, "train", self.config.data_dir, steps, limit=self.trace_batch
            )
            x, y = data.tensors
            if len(y) < self.trace_batch:
                raise H2LearnError(
                    f"{self.config.dataset} has only {len(y)} training samples; lower --trace-batch"
                )
            self._batch = (x, y)
        return self._batch

    def wants(self, epoch: int, last: bool) -> bool:
        return epoch == 0 or last or epoch % self.trace_every == 0

    def record(self, epoch: int, model: SpikingNetwork, test_accuracy: float | None) -> None:
        """Record after ``epoch`` (0: the fresh model) unless that trace is already kept."""
        if any(row["epoch"] == epoch for row in self.summary["epochs"]):
            return
        net = copy.deepcopy(model)
        x, y = self.batch(net.spec.time_steps)
        source = {"dataset": self.config.dataset, "split": "train", "epoch": epoch}
        with torch.random.fork_rng(devices=[]):
            trace = record_network(net, self.config, x, y, source, seed=self.config.seed)
        trace.save(trace_path(self.out_dir, epoch))
        self.summary["epochs"].append(
            {
                "epoch": epoch,
                "test_accuracy": test_accuracy,
                "trace": str(trace_path(self.out_dir, epoch).relative_to(self.out_dir)),
                "layers": epoch_densities(trace),
            }
        )
        self.summary["epochs"].sort(key=lambda row: row["epoch"])
        atomic_write_json(self.summary_path, self.summary)


def characterize(
    config: TrainConfig,
    out_dir: str | Path,
    trace_every: int = 1,
    trace_batch: int = 16,
    resume: bool = False,
    progress: Callable[[int, int, int, float], None] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Train per ``config`` and record the densities of every layer across training.

    Returns the summary also written to ``out_dir/characterization.json``
    (:mod:`h2learn.report.characterization` turns it into a table and a plot).
    """
    if trace_every < 1:
        raise H2LearnError(f"trace_every={trace_every}: record at least every epoch (>= 1)")
    if trace_batch < 1:
        raise H2LearnError(f"trace_batch={trace_batch}: record at least 1 sample")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    recorder = _Recorder(config, out_dir, trace_every, trace_batch)
    if not resume and (recorder.summary["epochs"] or (out_dir / CHECKPOINT_NAME).exists()):
        raise H2LearnError(
            f"{out_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    recorder.record(0, build_model(config), None)

    def epoch_end(epoch: int, model: SpikingNetwork, test_accuracy: float) -> None:
        done = epoch + 1
        if recorder.wants(done, last=done == config.epochs):
            recorder.record(done, model, test_accuracy)

    train(config, out_dir, resume=resume, progress=progress, log=log, epoch_end=epoch_end)
    return recorder.summary


def density_series(summary: Mapping[str, Any], field: str) -> dict[str, list[float]]:
    """``{layer: [density at each recorded epoch]}`` for one field (layers that have it)."""
    series: dict[str, list[float]] = {}
    for row in summary["epochs"]:
        for layer in row["layers"]:
            if field in layer:
                series.setdefault(layer["layer"], []).append(layer[field])
    return series


def layer_mean(layers: list[dict[str, Any]]) -> dict[str, float]:
    """Each density field's mean over the layer rows that have it."""
    means = {}
    for name in DENSITY_FIELDS:
        values = [layer[name] for layer in layers if name in layer]
        if values:
            means[name] = sum(values) / len(values)
    return means


def mean_densities(summary: Mapping[str, Any], epoch: int | None = None) -> dict[str, float]:
    """Each field's mean over the layers that have it, at ``epoch`` (default: the last)."""
    rows = summary["epochs"]
    if not rows:
        raise H2LearnError("the characterization has no recorded epoch yet")
    matching = rows[-1:] if epoch is None else [row for row in rows if row["epoch"] == epoch]
    if not matching:
        recorded = ", ".join(str(row["epoch"]) for row in rows)
        raise H2LearnError(f"epoch {epoch} was not recorded; recorded epochs: {recorded}")
    return layer_mean(matching[0]["layers"])
