"""A clinician's answers on a volume as a sparse 3D label, moved onto the 3D training grid by position.

An answer label is int8 ``[K, J, I]``: 1 at infection clicks, 0 in regions answered "background", -1
(:data:`~covidal.losses.base.IGNORE_INDEX`) everywhere else. It is not resampled like a dense label: a region
answered on one thin axial slice would fall between the slices of a coarser grid and vanish, and a click would
too. Instead every answered voxel is placed at the training-grid voxel that holds its centre, background first
and clicks after (a click wins a voxel it shares with background).
"""

from __future__ import annotations

import numpy as np

from covidal.data.volume import Volume
from covidal.losses.base import IGNORE_INDEX


def answers_on_grid(answers: np.ndarray, source: Volume, grid: Volume) -> np.ndarray:
    """``answers`` ``[K, J, I]`` on ``source``'s grid, moved to ``grid``'s: int8 ``[K', J', I']`` in {-1, 0, 1}.

    Args:
        answers: int ``[K, J, I]`` with values in {-1, 0, 1}, the shape of ``source.array``.
        source: the volume the answers were given on (its geometry is used).
        grid: the training grid (its geometry and shape are used).

    Raises:
        ValueError: another shape than ``source``'s, or values outside {-1, 0, 1}.
    """
    answers = np.asarray(answers)
    if answers.shape != source.array.shape:
        raise ValueError(f"answers are {answers.shape}, the volume {source.array.shape}")
    if not np.isin(answers, (IGNORE_INDEX, 0, 1)).all():
        raise ValueError("answer labels hold only -1 (no answer), 0 (background) and 1 (infection click)")
    placed = np.full(grid.array.shape, IGNORE_INDEX, dtype=np.int8)
    source_to_grid = np.linalg.inv(grid.ijk_to_lps()) @ source.ijk_to_lps()
    for value in (0, 1):
        kji = np.argwhere(answers == value)
        if kji.size == 0:
            continue
        ijk1 = np.column_stack([kji[:, ::-1], np.ones(len(kji))])
        moved = np.rint((ijk1 @ source_to_grid.T)[:, :3]).astype(np.int64)[:, ::-1]
        inside = np.all((moved >= 0) & (moved < np.array(grid.array.shape)), axis=1)
        k, j, i = moved[inside].T
        placed[k, j, i] = value
    return placed


def with_certain_background(labels: np.ndarray, image: np.ndarray, dark: float, bright: float) -> np.ndarray:
    """``labels`` (an answer label on ``image``'s grid) with every unanswered voxel whose axial slice, lightly
    blurred, is darker than ``dark`` or brighter than ``bright`` labelled background (0): the 3D form of a
    project's intensity background prior (:mod:`covidal.training.background_prior`). Clicks are kept.

    Args:
        labels: int8 ``[K, J, I]`` in {-1, 0, 1}.
        image: float ``[K, J, I]`` in [0, 1] (the windowed training grid).
        dark, bright: thresholds on ``image`` (:func:`~covidal.training.background_prior.certain_background_thresholds`).

    Raises:
        ValueError: shapes differ, or bad thresholds.
    """
    from covidal.data.intensity_lungs import certain_background  # scikit-image, only where a prior is used

    if labels.shape != image.shape:
        raise ValueError(f"labels are {labels.shape}, the image {image.shape}")
    certain = np.stack([certain_background(k_slice, dark, bright) for k_slice in image])
    return np.where((labels == IGNORE_INDEX) & certain, np.int8(0), labels).astype(np.int8)
