"""Spike encodings: how a static image batch becomes the network's ``[T, B, ...]`` input.

* ``direct`` -- the analog image, repeated over the ``T`` steps by the model
  itself (the encoding layer multiplies real pixels; today's default, as in the
  first author's library).
* ``poisson`` -- rate coding: at every step each pixel spikes with probability
  equal to its intensity in ``[0, 1]`` (independent Bernoulli draws, the
  discrete-time Poisson process of rate-coded SNN inputs).
* ``latency`` -- time-to-first-spike coding: a pixel of intensity ``x > 0``
  spikes exactly once, at step ``floor((1 - x) * T)`` (clipped to ``T - 1``):
  bright pixels first, dark pixels never.  Deterministic.
* ``delta`` -- event frames of a static image, as a DVS sensor would see it
  [ours, after N-MNIST's saccades]: the image moves by one pixel per step along
  a fixed square path (right, down, left, up, ...), and a pixel emits an ON
  (OFF) event when its intensity rose (fell) by more than ``DELTA_THRESHOLD``
  since the previous step; at ``t = 0`` the previous frame is black.  Two
  channels per pixel: 0 = OFF, 1 = ON, as the event datasets of
  :mod:`h2learn.snn.data`.

The spike encodings give binary frames, so the network's first layer is built
with ``input_kind="spikes"`` (it then runs on the LUT engines and its DRAM
input is one bit per element and step).  Random draws come from one
``torch.Generator`` per sample, seeded from the run's seed, a stream (the epoch,
or evaluation) and the sample's index in its dataset
(:func:`sample_generators`), so a run, a resumed run and a data-parallel run
on any number of processes see the same spikes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from h2learn.errors import H2LearnError

ENCODINGS: tuple[str, ...] = ("direct", "poisson", "latency", "delta")
DELTA_THRESHOLD = 0.1
"""Intensity change that makes a ``delta`` event [ours: 10 % of full scale, well above
the quantisation step of 8-bit images and below the contrast of a digit's stroke]."""
SACCADE: tuple[tuple[int, int], ...] = ((0, 1), (1, 0), (0, -1), (-1, 0))
"""One-pixel moves ``(dy, dx)`` of the ``delta`` path, repeated: right, down, left, up."""


class EncodingError(H2LearnError, ValueError):
    """An unknown encoding or an input it cannot encode."""


@dataclass(frozen=True)
class EncodingInfo:
    """How an encoding changes the network: its ``input_kind`` and per-step input shape."""

    name: str
    input_kind: str
    channels_factor: int  # delta: ON and OFF channels per input channel
    description: str


_INFO: dict[str, EncodingInfo] = {
    "direct": EncodingInfo("direct", "image", 1, "analog image repeated over T"),
    "poisson": EncodingInfo("poisson", "spikes", 1, "Bernoulli spikes, rate = intensity"),
    "latency": EncodingInfo("latency", "spikes", 1, "one spike at floor((1 - x) T)"),
    "delta": EncodingInfo("delta", "spikes", 2, "ON/OFF events of a moving image"),
}


def encoding_info(name: str) -> EncodingInfo:
    """The :class:`EncodingInfo` of ``name``; an unknown name is a one-line error."""
    key = str(name).strip().lower()
    if key not in _INFO:
        raise EncodingError(f"unknown encoding {name!r}; choose one of: {', '.join(ENCODINGS)}")
    return _INFO[key]


def encoded_shape(name: str, image_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The per-step input shape ``(C', H, W)`` the network sees for images of ``image_shape``."""
    info = encoding_info(name)
    return (image_shape[0] * info.channels_factor, *image_shape[1:])


EVAL_STREAM = 0
"""Stream of the evaluation draws; epoch ``e`` (from 0) trains on stream ``e + 1``."""


def sample_generators(seed: int, stream: int, indices: torch.Tensor) -> list[torch.Generator]:
    """One generator per sample: seeded from ``(seed, stream, dataset index)``.

    Large odd multipliers keep the seeds of different streams and samples apart.
    """
    base = seed * 1_000_003 + stream * 2_000_029
    return [torch.Generator().manual_seed((base + int(i) * 7_919) % (2**63 - 1)) for i in indices]


def encode(
    images: torch.Tensor,
    name: str,
    time_steps: int,
    generators: list[torch.Generator] | None = None,
) -> torch.Tensor:
    """Encode ``images [B, C, H, W]`` (values in ``[0, 1]``).

    ``direct`` returns ``images`` unchanged (the model repeats them over ``T``);
    the spike encodings return binary ``[T, B, C', H, W]`` frames in the
    images' dtype.  ``poisson`` needs ``generators``, one per sample.
    """
    info = encoding_info(name)
    if info.name == "direct":
        return images
    if images.dim() != 4:
        raise EncodingError(
            f"encoding {info.name!r} takes image batches [B, C, H, W], got {list(images.shape)}; "
            "event datasets are already spikes, use --encoding direct"
        )
    if isinstance(time_steps, bool) or not isinstance(time_steps, int) or time_steps < 1:
        raise EncodingError(f"time_steps={time_steps!r} must be an integer of at least 1")
    x = images.clamp(0.0, 1.0)
    if info.name == "poisson":
        if generators is None or len(generators) != len(x):
            raise EncodingError("poisson encoding needs one seeded generator per sample")
        shape = (time_steps, *x.shape[1:])
        draws = torch.stack(
            [torch.rand(shape, generator=g, dtype=torch.float64) for g in generators], dim=1
        )
        return (draws < x.unsqueeze(0).double()).to(images.dtype)
    if info.name == "latency":
        return latency_spikes(x, time_steps).to(images.dtype)
    return delta_events(x, time_steps).to(images.dtype)


def latency_spikes(x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """One spike per pixel with ``x > 0`` at step ``min(floor((1 - x) * T), T - 1)``."""
    step = torch.floor((1.0 - x.double()) * time_steps).clamp(max=time_steps - 1).long()
    steps = torch.arange(time_steps).view(-1, *([1] * x.dim()))
    return (steps == step.unsqueeze(0)) & (x > 0).unsqueeze(0)


def saccade_offsets(time_steps: int) -> list[tuple[int, int]]:
    """Cumulative ``(dy, dx)`` position of the image at each step (step 0 at ``(0, 0)``)."""
    offsets, y, x = [(0, 0)], 0, 0
    for t in range(1, time_steps):
        dy, dx = SACCADE[(t - 1) % len(SACCADE)]
        y, x = y + dy, x + dx
        offsets.append((y, x))
    return offsets


def shifted(images: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``out[..., i, j] = images[..., i - dy, j - dx]`` inside the frame, zeros elsewhere."""
    height, width = images.shape[-2:]
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return images
    padded = F.pad(images, (pad, pad, pad, pad))
    return padded[..., pad - dy : pad - dy + height, pad - dx : pad - dx + width]


def delta_events(x: torch.Tensor, time_steps: int) -> torch.Tensor:
    """ON/OFF event frames ``[T, B, 2C, H, W]`` (bool) of the image moving along the saccade.

    Output channel ``2c`` holds channel ``c``'s OFF events, ``2c + 1`` its ON events.
    """
    previous = torch.zeros_like(x)
    frames = []
    for dy, dx in saccade_offsets(time_steps):
        frame = shifted(x, dy, dx)
        change = frame - previous
        off, on = change < -DELTA_THRESHOLD, change > DELTA_THRESHOLD
        frames.append(torch.stack((off, on), dim=2).flatten(1, 2))
        previous = frame
    return torch.stack(frames)
