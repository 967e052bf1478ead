"""Data-parallel training under ``torchrun``: the process world and its collectives.

``h2learn train`` started by ``torchrun --nproc-per-node N`` joins a process
group (gloo on CPU, NCCL when every process has a GPU), wraps the network in
``DistributedDataParallel`` and gives every process a contiguous share of each
global batch.  Three things make N processes train the same network as one
process with the same ``--batch-size`` (the global batch):

* every process draws the same shuffle (seeded per epoch) and takes its slice
  of each global batch, so the union of the shards is the single-process batch;
* each process's loss is its shard's summed loss times ``N / global batch``,
  which DDP's gradient averaging turns into the global mean's gradient;
* batch norm is synchronised (:mod:`h2learn.snn.sync_norm`): statistics over
  the global batch, as in one process.

The remaining difference is floating-point summation order (about 1e-7
relative in float32, 1e-16 in float64; tests compare the two in float64).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

from h2learn.errors import H2LearnError
from h2learn.snn.layers import WeightedBlock


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (one process: rank 0 of 1)."""

    rank: int = 0
    size: int = 1

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        """Whether this process writes files and prints (rank 0)."""
        return self.rank == 0

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This process's contiguous share of a global batch's sample indices.

        Shares differ in size by at most one; a share may be empty when the
        last batch has fewer samples than there are processes.
        """
        if not self.distributed:
            return indices
        return torch.tensor_split(indices, self.size)[self.rank]

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of ``values`` over all processes (float64)."""
        if not self.distributed:
            return [float(v) for v in values]
        tensor = torch.tensor(list(values), dtype=torch.float64)
        dist.all_reduce(tensor)
        return tensor.tolist()

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def _launched_world_size() -> int:
    """The ``WORLD_SIZE`` set by ``torchrun`` (1 when not launched by it)."""
    value = os.environ.get("WORLD_SIZE", "1")
    try:
        size = int(value)
    except ValueError:
        raise H2LearnError(
            f"WORLD_SIZE={value!r} is not an integer; launch with torchrun or unset it"
        ) from None
    if size < 1:
        raise H2LearnError(f"WORLD_SIZE={size} must be at least 1; launch with torchrun")
    return size


@contextlib.contextmanager
def process_world(timeout_s: float = 600.0) -> Iterator[World]:
    """Join the process group ``torchrun`` set up, if any, for the duration of the block.

    Without ``torchrun`` (``WORLD_SIZE`` unset or 1) this is a one-process
    world and touches nothing.  A group that is already initialised (by the
    caller) is used as is and left open.
    """
    if dist.is_available() and dist.is_initialized():
        yield World(dist.get_rank(), dist.get_world_size())
        return
    if _launched_world_size() == 1:
        yield World()
        return
    if not dist.is_available():
        raise H2LearnError("this PyTorch build has no torch.distributed; train in one process")
    backend = "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    try:
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout_s))
    except (RuntimeError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise H2LearnError(
            f"could not join the torchrun process group ({first_line}); "
            "launch with `torchrun --standalone --nproc-per-node N -m h2learn train ...`"
        ) from None
    try:
        yield World(dist.get_rank(), dist.get_world_size())
    finally:
        dist.destroy_process_group()


def synchronise_batch_norm(model: nn.Module, enabled: bool = True) -> None:
    """Make every batch norm of ``model`` use statistics over all processes."""
    for module in model.modules():
        if isinstance(module, WeightedBlock):
            module.sync_batch_norm = enabled


def data_parallel(model: nn.Module, world: World) -> nn.Module:
    """The module to call for training steps: ``model`` itself, or its DDP wrapper.

    The wrapper shares ``model``'s parameters (so the optimizer and checkpoints
    use ``model``) and averages gradients across processes.  Synchronised batch
    norm keeps the running statistics identical on every process (DDP's
    per-step broadcast of rank 0's buffers is then a no-op, and small).
    """
    if not world.distributed:
        return model
    synchronise_batch_norm(model)
    return nn.parallel.DistributedDataParallel(model)
