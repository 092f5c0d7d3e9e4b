import dataclasses

import numpy as np
import pytest

from covidal.data.window import LUNG_WINDOW, HUWindow, ImageKind, image_kind, to_unit_intensity
from covidal.errors import CovidalError


@pytest.mark.parametrize(
    ("hu", "expected"),
    [
        (-1350.0, 0.0),  # lower edge of level -600, width 1500
        (150.0, 1.0),  # upper edge
        (-600.0, 0.5),  # level
        (-975.0, 0.25),
        (-2000.0, 0.0),  # below the window: clipped
        (3000.0, 1.0),  # above the window: clipped
    ],
)
def test_lung_window_maps_hu_linearly_and_clips(hu, expected):
    assert LUNG_WINDOW.apply(np.array([hu]))[0] == pytest.approx(expected, abs=1e-6)


def test_lung_window_defaults():
    assert (LUNG_WINDOW.level, LUNG_WINDOW.width) == (-600.0, 1500.0)
    assert (LUNG_WINDOW.lower, LUNG_WINDOW.upper) == (-1350.0, 150.0)


def test_custom_window_table():
    window = HUWindow(level=40, width=400)
    result = window.apply(np.array([[-160, 240], [40, 140]], dtype=np.int16))
    np.testing.assert_allclose(result, [[0.0, 1.0], [0.5, 0.75]], atol=1e-6)


def test_apply_returns_float32_of_same_shape_and_leaves_input_alone():
    hu = np.full((2, 3, 4), -2000.0, dtype=np.float32)
    result = LUNG_WINDOW.apply(hu)
    assert result.dtype == np.float32 and result.shape == (2, 3, 4)
    assert np.all(result == 0.0)
    assert np.all(hu == -2000.0)


@pytest.mark.parametrize("width", [0.0, -10.0, float("nan"), float("inf")])
def test_window_refuses_bad_width(width):
    with pytest.raises(ValueError, match="width"):
        HUWindow(level=0.0, width=width)


def test_window_refuses_non_finite_level():
    with pytest.raises(ValueError, match="level"):
        HUWindow(level=float("nan"))


def test_window_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        LUNG_WINDOW.level = 0.0  # type: ignore[misc]


def test_uint8_is_used_as_is():
    result = to_unit_intensity(np.array([0, 51, 255], dtype=np.uint8), LUNG_WINDOW)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [0.0, 0.2, 1.0], atol=1e-7)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.uint16, np.float32, np.float64])
def test_other_dtypes_are_windowed_as_hu(dtype):
    result = to_unit_intensity(np.array([0, 150, 75], dtype=dtype), LUNG_WINDOW)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, [0.9, 1.0, 0.95], atol=1e-6)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused(bad):
    with pytest.raises(CovidalError, match="NaN or infinite"):
        to_unit_intensity(np.array([[-1000.0, bad]]), LUNG_WINDOW)


@pytest.mark.parametrize(
    ("dtype", "kind"),
    [(np.uint8, ImageKind.EIGHT_BIT), (np.int16, ImageKind.HU), (np.uint16, ImageKind.HU), (np.float32, ImageKind.HU)],
)
def test_image_kind_is_the_rule_the_intensities_are_mapped_by(dtype, kind):
    values = np.array([[0, 200]], dtype=dtype)
    assert image_kind(values) is kind
    divided = np.allclose(to_unit_intensity(values, HUWindow(level=100, width=400)), [[0.0, 200 / 255]])
    assert divided == (kind is ImageKind.EIGHT_BIT)  # 8-bit is divided by 255, HU windowed (-100..300 here)
