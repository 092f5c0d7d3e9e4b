"""Pseudo-masks grown from clicks, on synthetic slices whose true region is known."""

from __future__ import annotations

import numpy as np
import pytest

from covidal.data.pseudo_masks import flood_pseudo_mask


def blob_slice() -> tuple[np.ndarray, np.ndarray]:
    """A 64x64 slice: darker tissue (0.3, with noise) around a bright disc (0.7) of radius 8 at (32, 32)."""
    rows, cols = np.indices((64, 64))
    blob = (rows - 32) ** 2 + (cols - 32) ** 2 <= 8**2
    image = np.where(blob, 0.7, 0.3) + np.random.default_rng(0).normal(0, 0.01, (64, 64))
    return image.astype(np.float32), blob


def test_a_click_on_a_bright_blob_covers_the_blob_and_not_the_darker_tissue():
    image, blob = blob_slice()
    grown = flood_pseudo_mask(image, [(30, 33)], tolerance=0.2, radius=20)
    assert (grown & blob).sum() / blob.sum() > 0.9
    assert (grown & ~blob).sum() / blob.sum() < 0.15  # at most the blurred rim


def test_the_radius_bounds_the_region():
    image = np.full((64, 64), 0.5, dtype=np.float32)  # one uniform tissue: only the radius stops the fill
    grown = flood_pseudo_mask(image, [(32, 32)], tolerance=0.1, radius=5)
    rows, cols = np.nonzero(grown)
    assert grown[32, 32] and np.hypot(rows - 32, cols - 32).max() <= 5


def test_no_click_grows_nothing_and_bad_input_is_refused():
    image, _ = blob_slice()
    assert not flood_pseudo_mask(image, []).any()
    with pytest.raises(ValueError, match="outside"):
        flood_pseudo_mask(image, [(64, 0)])
    with pytest.raises(ValueError, match="tolerance"):
        flood_pseudo_mask(image, [(1, 1)], tolerance=0.0)
    with pytest.raises(ValueError, match="2D"):
        flood_pseudo_mask(image[None], [(1, 1)])
