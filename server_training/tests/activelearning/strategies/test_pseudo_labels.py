"""How a cycle's pseudo-labels join its training: every slice with an answer or a pseudo-label, answers winning."""

from __future__ import annotations

import numpy as np
import pytest

from covidal.activelearning.strategies.pseudo_labels import PseudoLabels, training_label_maps


def pool_pseudo_labels() -> PseudoLabels:
    """A pool of 4 slices on a 2 x 2 grid: slice 0 all background, slice 1 one infection pixel, 2 and 3 none."""
    labels = np.full((4, 2, 2), -1, dtype=np.int64)
    labels[0] = 0
    labels[1, 0, 0] = 1
    return PseudoLabels(labels, cycle=2, threshold=0.9, seed=7)


def test_without_pseudo_labels_only_the_answered_slices_train():
    answers = np.array([[[1, -1], [-1, -1]]])
    rows, maps = training_label_maps([3], answers, None)
    assert rows == [3] and maps is answers


def test_pseudo_labelled_slices_join_and_answers_win_where_both_exist():
    answers = np.array([[[1, -1], [-1, -1]], [[-1, -1], [-1, 0]]])  # answers on slices 0 and 3
    rows, maps = training_label_maps([0, 3], answers, pool_pseudo_labels())
    assert rows == [0, 1, 3]  # slice 2 has neither
    np.testing.assert_array_equal(maps[0], [[1, 0], [0, 0]])  # the answered pixel keeps its answer
    np.testing.assert_array_equal(maps[1], [[1, -1], [-1, -1]])
    np.testing.assert_array_equal(maps[2], [[-1, -1], [-1, 0]])


def test_the_record_counts_pixels_and_slices():
    assert pool_pseudo_labels().record() == {"cycle": 2, "threshold": 0.9, "seed": 7, "pixels": 5, "slices": 2}


def test_answers_on_another_grid_are_refused():
    with pytest.raises(ValueError, match="grid"):
        training_label_maps([0], np.full((1, 4, 4), -1), pool_pseudo_labels())
