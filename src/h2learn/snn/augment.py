"""Training-time data augmentation: random shifts (pad and crop) and horizontal flips.

Drawn per global batch from a seeded generator, so a run stays deterministic,
resumes to the same weights, and gives the same result on any number of
data-parallel processes (each applies the draws of its own samples).  Works on
any ``[B, ..., H, W]`` batch: images ``[B, C, H, W]`` and event frames
``[B, T, C, H, W]`` (every time step of a sample moves together).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentDraw:
    """Per-sample choices for one global batch: ``shifts [B, 2]`` (dy, dx) and ``flips [B]``."""

    shifts: torch.Tensor
    flips: torch.Tensor
    pad: int

    def select(self, indices: torch.Tensor | slice) -> AugmentDraw:
        """The draws of a subset of the batch (a process's shard)."""
        return AugmentDraw(self.shifts[indices], self.flips[indices], self.pad)


def draw(batch_size: int, generator: torch.Generator, pad: int = 2) -> AugmentDraw:
    """Draw shifts in ``[-pad, pad]`` pixels and flips (probability 1/2) for each sample."""
    if pad < 0:
        raise ValueError(f"pad={pad} must be at least 0")
    shifts = torch.randint(-pad, pad + 1, (batch_size, 2), generator=generator)
    flips = torch.rand(batch_size, generator=generator) < 0.5
    return AugmentDraw(shifts, flips, pad)


def apply(x: torch.Tensor, choices: AugmentDraw) -> torch.Tensor:
    """Shift each sample of ``x`` by its ``(dy, dx)`` (zeros fill in) and flip it if drawn.

    ``out[..., i, j] = x[..., i + dy, j + dx]`` where that lies inside the image, else 0.
    """
    if x.shape[0] != choices.shifts.shape[0]:
        raise ValueError(f"{x.shape[0]} samples but {choices.shifts.shape[0]} draws")
    pad = choices.pad
    height, width = x.shape[-2:]
    padded = F.pad(x, (pad, pad, pad, pad))
    out = torch.empty_like(x)
    draws = zip(choices.shifts.tolist(), choices.flips.tolist(), strict=True)
    for i, ((dy, dx), flip) in enumerate(draws):
        crop = padded[i, ..., pad + dy : pad + dy + height, pad + dx : pad + dx + width]
        out[i] = crop.flip(-1) if flip else crop
    return out
