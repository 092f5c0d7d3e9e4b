"""Which pixels a training run labels background without a click, and the intensities that make them certain.

This module imports neither torch nor scikit-image: the service's job config (read by the HTTP routes) checks a
project's choice against :class:`BackgroundPrior`. The labels themselves are made by
:mod:`covidal.training.derived_labels`.
"""

from __future__ import annotations

from enum import StrEnum

from covidal.data.window import HUWindow, ImageKind

# 8-bit lung-window slices: blurred intensities below DARK hold 0.5% of the infection pixels of
# covid_semiseg/train (10.9% of the background); above BRIGHT 2.1% (10% of the background).
DARK = 0.15
BRIGHT = 0.9
# CT in HU: ground glass and consolidation are denser than aerated lung (about -750 to +50 HU against about
# -850 HU). Blurred below -800 HU: none of the synthetic lesion voxels of the demo's cases, 0.9% of the rest of
# their filled lungs (BENCHMARKS.md, "Demo"); above 140 HU: bone and contrast-filled vessels.
AERATED_HU = -800.0
BONE_HU = 140.0


class BackgroundPrior(StrEnum):
    """Which pixels are background without a click.

    NONE: none. INTENSITY: aerated lung and air (darkest) and bone (brightest), after a light blur (thresholds:
    :func:`certain_background_thresholds`). OUTSIDE_LUNGS: outside the widened intensity lung mask. BOTH: either.
    """

    NONE = "none"
    INTENSITY = "intensity"
    OUTSIDE_LUNGS = "outside-lungs"
    BOTH = "both"


def certain_background_thresholds(kind: ImageKind | None, window: HUWindow) -> tuple[float, float]:
    """``(dark, bright)`` on the [0, 1] intensities a slice of ``kind`` is trained on.

    8-bit slices (and slices of unknown kind) use :data:`DARK` and :data:`BRIGHT`; HU slices, windowed with
    ``window``, :data:`AERATED_HU` and :data:`BONE_HU` in that window, each clipped to [0, 1] (a window that ends
    below :data:`BONE_HU` then labels no bone).
    """
    if kind is not ImageKind.HU:
        return DARK, BRIGHT

    def unit(hu: float) -> float:
        return min(max((hu - window.lower) / window.width, 0.0), 1.0)

    return unit(AERATED_HU), unit(BONE_HU)
