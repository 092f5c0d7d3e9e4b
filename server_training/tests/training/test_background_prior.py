"""Certain background of 8-bit and HU slices: its thresholds, and what it labels on a CT slice in HU."""

from __future__ import annotations

import numpy as np
import pytest

from covidal.data.window import LUNG_WINDOW, HUWindow, ImageKind, to_unit_intensity
from covidal.training.background_prior import (
    AERATED_HU,
    BONE_HU,
    BRIGHT,
    DARK,
    BackgroundPrior,
    certain_background_thresholds,
)
from covidal.training.derived_labels import derived_label_map


@pytest.mark.parametrize("kind", [ImageKind.EIGHT_BIT, None])
def test_8_bit_and_unknown_slices_keep_the_8_bit_thresholds(kind):
    assert certain_background_thresholds(kind, LUNG_WINDOW) == (DARK, BRIGHT)


def test_hu_thresholds_are_the_hu_values_in_the_window():
    window = HUWindow(level=-600.0, width=1500.0)  # -1350 .. 150 HU
    dark, bright = certain_background_thresholds(ImageKind.HU, window)
    assert dark == pytest.approx((AERATED_HU + 1350) / 1500) and bright == pytest.approx((BONE_HU + 1350) / 1500)
    # A window ending below bone labels no bone: a windowed pixel is never above 1.
    assert certain_background_thresholds(ImageKind.HU, HUWindow(level=-600.0, width=1000.0))[1] == 1.0


def test_on_a_ct_slice_aerated_lung_and_bone_are_background_and_ground_glass_is_not():
    hu = np.full((48, 48), 40, dtype=np.int16)  # soft tissue
    hu[4:44, 4:24] = -870  # aerated lung
    hu[14:24, 8:18] = -600  # ground glass inside it
    hu[4:44, 30:40] = 700  # bone
    image = to_unit_intensity(hu, LUNG_WINDOW)
    clicks = np.full(hu.shape, -1, dtype=np.int64)
    thresholds = certain_background_thresholds(ImageKind.HU, LUNG_WINDOW)
    derived = derived_label_map(image, clicks, False, BackgroundPrior.INTENSITY, thresholds)
    assert (derived[30:40, 8:20] == 0).all()  # aerated lung, away from the lesion
    assert (derived[14:24, 8:18] == -1).all()  # the lesion is never certain background
    assert (derived[10:40, 32:38] == 0).all()  # bone
    assert (derived[10:40, 26:28] == -1).all()  # soft tissue between them: nothing derived
    # The 8-bit thresholds on the same HU slice would miss the aerated lung (it is not that dark in this window).
    assert not (derived_label_map(image, clicks, False, BackgroundPrior.INTENSITY) == 0)[30:40, 8:20].any()
