"""The intensity lung mask and certain background of 8-bit slices, on synthetic chests with known lungs."""

from __future__ import annotations

import numpy as np
import pytest

from covidal.data.intensity_lungs import certain_background, intensity_lung_mask


def chest() -> tuple[np.ndarray, np.ndarray]:
    """A 96x96 slice: soft tissue (0.6) holding two dark ellipses (0.1, the lungs) with a dense lesion (0.6)
    touching the pleura of the left one; returns the image and the lungs (lesion included)."""
    rows, cols = np.indices((96, 96))
    left = ((rows - 48) / 30) ** 2 + ((cols - 28) / 14) ** 2 <= 1
    right = ((rows - 48) / 30) ** 2 + ((cols - 68) / 14) ** 2 <= 1
    lesion = left & ((rows - 48) ** 2 + (cols - 14) ** 2 <= 8**2)  # a bite out of the lung at its pleura
    image = np.where(left | right, 0.1, 0.6)
    image[lesion] = 0.6
    image = image + np.random.default_rng(0).normal(0, 0.01, image.shape)
    return np.clip(image, 0, 1).astype(np.float32), left | right


def test_the_hull_mask_holds_both_lungs_and_their_pleural_lesion_but_not_the_mediastinum():
    image, lungs = chest()
    mask = intensity_lung_mask(image)
    assert mask[lungs].mean() > 0.97  # the dense lesion at the pleura too
    assert not mask[48, 48]  # between the lungs
    assert not mask[5, 48] and not mask[90, 48]


def test_the_tight_mask_misses_the_dense_lesion():
    image, _ = chest()
    tight = intensity_lung_mask(image, hull=False)
    assert tight[48, 28] and tight[48, 68]
    assert not tight[48, 16]  # the lesion looks like soft tissue
    assert intensity_lung_mask(image)[48, 16]


def test_a_blank_slice_has_no_lungs_and_bad_slices_are_refused():
    assert not intensity_lung_mask(np.full((32, 32), 0.5, dtype=np.float32)).any()
    with pytest.raises(ValueError, match="2D slice"):
        intensity_lung_mask(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="finite"):
        intensity_lung_mask(np.full((16, 16), np.nan))


def test_certain_background_is_the_darkest_and_brightest_tissue():
    image = np.full((32, 32), 0.5, dtype=np.float32)
    image[:, :8] = 0.02  # air
    image[:, -8:] = 1.0  # bone
    sure = certain_background(image, dark=0.15, bright=0.9)
    assert sure[:, :5].all() and sure[:, -5:].all() and not sure[:, 12:20].any()
    with pytest.raises(ValueError, match="below the bright"):
        certain_background(image, dark=0.9, bright=0.2)
