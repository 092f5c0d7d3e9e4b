"""The names of the training-batch augmentations (:mod:`covidal.training.augment` applies them). No torch here:
the service's job settings, checked in the HTTP routes, name them too."""

from __future__ import annotations

from enum import StrEnum


class Augment(StrEnum):
    """Which augmentation a run applies to its training batches: none, intensity (gamma, contrast, brightness),
    or intensity+scale (also a zoom that keeps every infection click)."""

    NONE = "none"
    INTENSITY = "intensity"
    INTENSITY_SCALE = "intensity+scale"
