"""Augmentation against a pixel-by-pixel reference; determinism of the draws."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from h2learn.snn import augment


def shifted_reference(image: np.ndarray, dy: int, dx: int, flip: bool) -> np.ndarray:
    """out[..., i, j] = image[..., i + dy, j + dx] inside the image, else 0; then mirror j."""
    height, width = image.shape[-2:]
    out = np.zeros_like(image)
    for i in range(height):
        for j in range(width):
            si, sj = i + dy, j + dx
            if 0 <= si < height and 0 <= sj < width:
                out[..., i, j] = image[..., si, sj]
    return out[..., ::-1] if flip else out


@settings(max_examples=40, deadline=None)
@given(
    lead=st.lists(st.integers(1, 3), min_size=1, max_size=2),
    height=st.integers(1, 7),
    width=st.integers(1, 7),
    pad=st.integers(0, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_apply_matches_the_pixel_loop(lead, height, width, pad, seed):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(3, *lead, height, width, generator=gen, dtype=torch.float64)
    choices = augment.draw(3, gen, pad=pad)
    out = augment.apply(x, choices).numpy()
    for i in range(3):
        dy, dx = choices.shifts[i].tolist()
        assert abs(dy) <= pad and abs(dx) <= pad
        expected = shifted_reference(x[i].numpy(), dy, dx, bool(choices.flips[i]))
        np.testing.assert_array_equal(out[i], expected)


def test_draws_are_seeded_and_select_keeps_samples_aligned():
    a = augment.draw(10, torch.Generator().manual_seed(5))
    b = augment.draw(10, torch.Generator().manual_seed(5))
    assert torch.equal(a.shifts, b.shifts) and torch.equal(a.flips, b.flips)
    part = a.select(torch.tensor([7, 2]))
    assert torch.equal(part.shifts, a.shifts[[7, 2]]) and torch.equal(part.flips, a.flips[[7, 2]])


def test_bad_arguments():
    with pytest.raises(ValueError, match="pad=-1"):
        augment.draw(2, torch.Generator(), pad=-1)
    with pytest.raises(ValueError, match="3 samples but 2 draws"):
        augment.apply(torch.zeros(3, 1, 4, 4), augment.draw(2, torch.Generator()))
