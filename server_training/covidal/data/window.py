"""Map CT intensities to the ``[0, 1]`` range the networks are trained on."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from covidal.errors import CovidalError
from covidal.validation import check_real


@dataclass(frozen=True)
class HUWindow:
    """A Hounsfield-unit display window: ``level`` is its centre, ``width`` its extent.

    Raises:
        ValueError: ``width`` is not a positive finite number, or ``level`` is not finite.
    """

    level: float = -600.0
    width: float = 1500.0

    def __post_init__(self) -> None:
        check_real("window level (HU)", self.level)
        check_real("window width (HU)", self.width, above=0.0)

    @property
    def lower(self) -> float:
        """HU mapped to 0."""
        return self.level - self.width / 2

    @property
    def upper(self) -> float:
        """HU mapped to 1."""
        return self.level + self.width / 2

    def apply(self, hu: np.ndarray) -> np.ndarray:
        """Clip ``hu`` (any shape) to ``[lower, upper]`` and scale linearly to float32 ``[0, 1]``."""
        # float32 throughout: a whole CT in float64 would double the memory for no useful precision.
        unit = np.clip(np.asarray(hu, dtype=np.float32), self.lower, self.upper)
        unit -= np.float32(self.lower)
        unit /= np.float32(self.width)
        return unit


LUNG_WINDOW = HUWindow()


class ImageKind(StrEnum):
    """What a slice's intensities are, hence how :func:`to_unit_intensity` maps them; a model trained on one
    kind sees the other as a different image (its checkpoint records the kind it was trained on)."""

    EIGHT_BIT = "8-bit"  # already rendered in a display window, 0-255 (PNG/JPG slices, uint8 volumes)
    HU = "HU"  # Hounsfield units (any other pixel type)

    @property
    def description(self) -> str:
        """How a message names the kind, e.g. "8-bit slices (0-255, already windowed)"."""
        return "8-bit slices (0-255, already windowed)" if self is ImageKind.EIGHT_BIT else "CT in Hounsfield units"


def image_kind(array: np.ndarray) -> ImageKind:
    """The :class:`ImageKind` of ``array`` (any shape): 8-bit for uint8, Hounsfield units for any other dtype."""
    return ImageKind.EIGHT_BIT if np.asarray(array).dtype == np.uint8 else ImageKind.HU


def to_unit_intensity(array: np.ndarray, window: HUWindow) -> np.ndarray:
    """Float32 intensities in ``[0, 1]``, same shape as ``array``.

    8-bit images (:func:`image_kind`) are already rendered in a display window, so they are
    used as they are (divided by 255); any other dtype is taken to be Hounsfield
    units and windowed with ``window``.

    Raises:
        CovidalError: ``array`` holds NaN or infinite values.
    """
    array = np.asarray(array)
    if image_kind(array) is ImageKind.EIGHT_BIT:
        return array.astype(np.float32) / np.float32(255)
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        raise CovidalError(
            "the image holds NaN or infinite values; replace them (e.g. with -1024 HU for air) before using it"
        )
    return window.apply(array)
