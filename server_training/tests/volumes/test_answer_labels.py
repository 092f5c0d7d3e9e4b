"""Answers moved onto the 3D training grid by position: thin-slice answers survive a coarser grid, a click keeps its
place in mm on an oblique grid, and a click wins a voxel shared with background."""

from __future__ import annotations

import numpy as np
import pytest

from covidal.data.volume import Volume
from covidal.volumes.answer_labels import answers_on_grid, with_certain_background
from covidal.volumes.preprocess import Interpolation, resample_to_spacing

OBLIQUE = np.array([[0.98, -0.17, 0.0], [0.17, 0.98, 0.0], [0.0, 0.0, 1.0]])


def source_volume(shape=(20, 30, 40)) -> Volume:
    return Volume(np.zeros(shape, np.int16), (0.7, 0.8, 1.25), (-40.0, 12.5, 300.0), OBLIQUE)


def training_grid(source: Volume) -> Volume:
    return resample_to_spacing(source, (1.6, 1.6, 3.2), Interpolation.LINEAR)


def position_mm(volume: Volume, kji) -> np.ndarray:
    k, j, i = kji
    return (volume.ijk_to_lps() @ np.array([i, j, k, 1.0]))[:3]


def test_every_answered_slice_and_click_survives_a_coarser_grid():
    source = source_volume()
    grid = training_grid(source)
    answers = np.full(source.array.shape, -1, np.int8)
    for k in range(source.array.shape[0]):  # one background box on every thin slice
        answers[k, 2:8, 2:8] = 0
    answers[7, 20, 25] = 1
    placed = answers_on_grid(answers, source, grid)
    assert placed.shape == grid.array.shape and placed.dtype == np.int8
    clicked = np.argwhere(placed == 1)
    assert len(clicked) == 1
    # The click sits where it was in mm, to within half a training voxel along each axis.
    offset = np.linalg.norm(position_mm(grid, clicked[0]) - position_mm(source, (7, 20, 25)))
    assert offset <= 0.5 * np.linalg.norm(grid.spacing) + 1e-6
    # A nearest-neighbour resampling would keep only the thin slices nearest to grid slices; here every
    # grid slice the source slices fall into has background.
    answered_slices = {int(k) for k in np.argwhere(placed == 0)[:, 0]}
    assert answered_slices == set(range(grid.array.shape[0]))
    assert int((placed == -1).sum()) > placed.size // 2


def test_a_click_wins_a_voxel_it_shares_with_background():
    source = source_volume()
    grid = training_grid(source)
    answers = np.zeros(source.array.shape, np.int8)
    answers[10, 15, 20] = 1
    placed = answers_on_grid(answers, source, grid)
    assert int((placed == 1).sum()) == 1 and int((placed == 0).sum()) > 0


@pytest.mark.parametrize(
    ("answers", "message"),
    [(np.zeros((20, 30, 41), np.int8), "answers are"), (np.full((20, 30, 40), 2, np.int8), "only -1")],
)
def test_bad_answers_are_refused(answers, message):
    source = source_volume()
    with pytest.raises(ValueError, match=message):
        answers_on_grid(answers, source, training_grid(source))


def test_certain_background_fills_unanswered_air_and_bone_and_keeps_clicks():
    image = np.full((3, 20, 20), 0.5, np.float32)  # soft tissue
    image[:, :, :6] = 0.0  # air
    image[:, :, 14:] = 1.0  # bone
    labels = np.full(image.shape, -1, np.int8)
    labels[1, 10, 2] = 1  # a click in the dark part stays a click
    labels[1, 10, 10] = 0
    filled = with_certain_background(labels, image, 0.2, 0.9)
    assert filled[1, 10, 2] == 1 and filled[1, 10, 10] == 0
    assert (filled[:, :, :4] >= 0).all() and (filled[:, :, 16:] == 0).all()
    assert (filled[:, :, 8:12] == labels[:, :, 8:12]).all()  # soft tissue stays unanswered
    with pytest.raises(ValueError, match="labels are"):
        with_certain_background(labels[:2], image, 0.2, 0.9)
