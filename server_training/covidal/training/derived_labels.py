"""Labels derived from the clicks and the image, beside the clicks themselves: more supervision per click.

On the training grid each slice gets an int64 map ``[S, S]`` of -1 (nothing derived), 0 (certain background)
and 1 (pseudo-infection): infection clicks grown into pseudo-masks (:mod:`covidal.data.pseudo_masks`) and
background that needs no click (:mod:`covidal.data.intensity_lungs`: outside the lungs, or aerated lung and
bone). The loss weighs them below the clicks (``LossConfig.derived_weight``): they are priors, not answers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from covidal.data.intensity_lungs import certain_background, intensity_lung_mask
from covidal.data.pseudo_masks import flood_pseudo_mask
from covidal.data.slices import SliceRecord, records_kind
from covidal.data.window import HUWindow
from covidal.losses.base import BACKGROUND, IGNORE_INDEX, INFECTION
from covidal.training.background_prior import BRIGHT, DARK, BackgroundPrior, certain_background_thresholds


def derived_label_map(
    image: np.ndarray,
    point_labels: np.ndarray,
    pseudo_masks: bool,
    background: BackgroundPrior,
    thresholds: tuple[float, float] = (DARK, BRIGHT),
) -> np.ndarray:
    """int64 ``[S, S]`` derived labels of one slice on the training grid.

    Args:
        image: ``[S, S]`` intensities in [0, 1] on the training grid.
        point_labels: ``[S, S]`` int64 click map (-1, 0, 1) on the same grid.
        pseudo_masks: grow each infection click into a pseudo-mask.
        background: which certain background to add.
        thresholds: ``(dark, bright)`` blurred intensities of certain background (:func:`~covidal.training.
            background_prior.certain_background_thresholds`).

    Pseudo-infection wins over certain background where both apply (a click is stronger evidence than an
    intensity threshold); clicked pixels keep their click (the click map is scored separately).
    """
    derived = np.full(image.shape, IGNORE_INDEX, dtype=np.int64)
    background = BackgroundPrior(background)
    if background in (BackgroundPrior.INTENSITY, BackgroundPrior.BOTH):
        derived[certain_background(image, *thresholds)] = BACKGROUND
    if background in (BackgroundPrior.OUTSIDE_LUNGS, BackgroundPrior.BOTH):
        derived[~intensity_lung_mask(image)] = BACKGROUND
    clicks = np.argwhere(point_labels == INFECTION)
    if pseudo_masks and len(clicks):
        derived[flood_pseudo_mask(image, [tuple(click) for click in clicks])] = INFECTION
    derived[point_labels != IGNORE_INDEX] = IGNORE_INDEX
    return derived


def derived_label_maps(
    images: Sequence[np.ndarray],
    point_labels: Sequence[np.ndarray],
    pseudo_masks: bool,
    background: BackgroundPrior,
    thresholds: tuple[float, float] = (DARK, BRIGHT),
) -> np.ndarray | None:
    """``[N, S, S]`` derived labels of every slice (:func:`derived_label_map`), or None when nothing is derived."""
    if not pseudo_masks and BackgroundPrior(background) is BackgroundPrior.NONE:
        return None
    return np.stack(
        [
            derived_label_map(image, labels, pseudo_masks, background, thresholds)
            for image, labels in zip(images, point_labels)
        ]
    )


def derived_label_maps_of_records(
    records: Sequence[SliceRecord],
    images: Sequence[np.ndarray],
    point_labels: Sequence[np.ndarray],
    pseudo_masks: bool,
    background: BackgroundPrior,
    window: HUWindow,
) -> np.ndarray | None:
    """:func:`derived_label_maps` of ``records``' slices (``images`` and ``point_labels`` on the training grid),
    with certain background at the thresholds of their kind, HU ones in ``window``, the one they were windowed
    with (:func:`~covidal.training.background_prior.certain_background_thresholds`)."""
    thresholds = certain_background_thresholds(records_kind(records), window)
    return derived_label_maps(images, point_labels, pseudo_masks, background, thresholds)
