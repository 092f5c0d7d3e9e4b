"""Labels derived from clicks and intensity on the training grid."""

from __future__ import annotations

import numpy as np
import pytest

from covidal.training.background_prior import BackgroundPrior
from covidal.training.derived_labels import derived_label_map, derived_label_maps


def slice_with_lesion() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """32x32: air (0.05) on the left, tissue (0.5) elsewhere, a denser 8x8 lesion (0.8) at rows/cols 12-19,
    with one infection click in the lesion and one background click in the tissue."""
    image = np.full((32, 32), 0.5, dtype=np.float32)
    image[:, :6] = 0.05
    image[12:20, 12:20] = 0.8
    clicks = np.full((32, 32), -1, dtype=np.int64)
    clicks[15, 15] = 1
    clicks[28, 28] = 0
    lesion = np.zeros((32, 32), dtype=bool)
    lesion[12:20, 12:20] = True
    return image, clicks, lesion


def test_pseudo_mask_and_intensity_background_without_touching_the_clicks():
    image, clicks, lesion = slice_with_lesion()
    derived = derived_label_map(image, clicks, pseudo_masks=True, background=BackgroundPrior.INTENSITY)
    infection = derived == 1
    assert infection[13:19, 13:19].sum() >= 35  # the lesion's core, less the clicked pixel
    assert not infection[~lesion].any() or infection[~lesion].sum() <= 8
    assert (derived[:, :3] == 0).all()  # air is certain background
    assert derived[15, 15] == -1 and derived[28, 28] == -1  # clicks are scored as clicks
    assert (derived[26:, 10:] == -1).all()  # ordinary tissue gets nothing


def test_nothing_derived_gives_none_and_every_option_is_checked():
    image, clicks, _ = slice_with_lesion()
    assert derived_label_maps([image], [clicks], pseudo_masks=False, background=BackgroundPrior.NONE) is None
    maps = derived_label_maps([image, image], [clicks, clicks], pseudo_masks=True, background="none")
    assert maps.shape == (2, 32, 32) and maps.dtype == np.int64 and set(np.unique(maps)) == {-1, 1}
    with pytest.raises(ValueError):
        derived_label_map(image, clicks, pseudo_masks=False, background="lungs")
