"""Information density: uncertainty times mean cosine similarity to the open pool, computed in O(N)."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_testing import GRID_K, images, part, query, tiny_model

from covidal.activelearning.strategies import build_strategy
from covidal.activelearning.strategies.density import Density, unit_rows
from covidal.activelearning.strategies.strategy import PoolScratch


def notes(descriptors: np.ndarray, open_regions: np.ndarray) -> PoolScratch:
    pool = PoolScratch(1, 0)
    pool.parts[0] = (unit_rows(descriptors), open_regions)
    return pool


@pytest.mark.parametrize(
    ("beta", "entropies", "outlier_place"),
    [
        (1.0, [0.5, 0.5, 0.5, 0.5, 0.5], 4),  # equal entropy: the outlier last
        (2.0, [0.5, 0.5, 0.5, 0.5, 0.5], 4),
        (1.0, [0.5, 0.5, 0.5, 0.5, 0.6], 4),  # a little more uncertain: still last
        (0.0, [0.5, 0.5, 0.5, 0.5, 0.6], 0),  # beta 0 is plain entropy
        (1.0, [0.1, 0.1, 0.1, 0.1, 0.6], 0),  # far more uncertain: first
    ],
)
def test_a_region_in_a_dense_cluster_beats_an_outlier_of_equal_entropy(beta, entropies, outlier_place):
    """Regions 0-3 of one slice form a cluster, region 4 is an outlier."""
    cluster = [[1.0, 0.0, 0.0], [1.0, 0.1, 0.0], [1.0, 0.0, 0.1], [1.0, 0.1, 0.1]]
    descriptors = np.array([[*cluster, [0.0, 0.0, 1.0]]])
    scores = Density(beta).pool_scores([np.array([entropies])], notes(descriptors, np.ones((1, 5), bool)))[0][0]
    assert np.argsort(-scores, kind="stable").tolist().index(4) == outlier_place


def test_the_mean_similarity_is_the_mean_over_every_pair_computed_in_linear_time():
    rng = np.random.default_rng(0)
    descriptors = rng.random((5, 9, 6))
    open_regions = rng.random((5, 9)) > 0.3
    scores = Density(1.0).pool_scores([np.ones((5, 9))], notes(descriptors, open_regions))[0]
    unit = unit_rows(descriptors)
    pool = unit[open_regions]
    brute = (unit.reshape(-1, 6) @ pool.T).mean(axis=1).reshape(5, 9)  # the N x N matrix, for the check only
    np.testing.assert_allclose(scores[open_regions], brute[open_regions], rtol=1e-12)
    assert np.all(scores[~open_regions] == 1.0)  # closed regions keep their score, unread by the selection


def test_density_scores_are_entropy_times_similarity_from_one_pass(single_thread_torch):
    """Its informativeness is the entropy strategy's score, so density only reorders by similarity."""
    answered = np.zeros((4, GRID_K), bool)
    entropy = query(build_strategy("entropy"), [part(images(), answered)], tiny_model(), count=16, cap=None)
    density = query(build_strategy("density"), [part(images(), answered)], tiny_model(), count=16, cap=None)
    by_place = {(q.slice, q.region): q.score for q in entropy}
    ratios = [q.score / by_place[(q.slice, q.region)] for q in density]
    assert all(0.0 <= ratio <= 1.0 + 1e-12 for ratio in ratios) and len(set(np.round(ratios, 9))) > 1
