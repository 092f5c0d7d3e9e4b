"""CEREALS: informativeness discounted by a cost model fitted to the recorded effort, with a cold start."""

from __future__ import annotations

import numpy as np
import pytest

from covidal.activelearning.strategies.cereals import Cereals, cost_features, fit_cost_model
from covidal.activelearning.strategies.strategy import PoolScratch


def pool_with(answered_features, answered_efforts, open_features) -> tuple[PoolScratch, int]:
    """One part: answered regions, then open ones (one slice of as many regions)."""
    features = np.concatenate([answered_features, open_features])[None]
    answered = np.zeros(features.shape[:2], bool)
    answered[0, : len(answered_features)] = True
    efforts = np.full(features.shape[:2], np.nan)
    efforts[answered] = answered_efforts
    pool = PoolScratch(1, 0)
    pool.parts[0] = (features, ~answered, answered, efforts)
    return pool, len(answered_features)


def costly_by_boundary(count: int, seed: int = 0):
    """Answered regions whose effort grows with their predicted boundary length (as outlines do)."""
    rng = np.random.default_rng(seed)
    features = rng.random((count, 4))
    return features, 3.0 + 90.0 * features[:, 1]


@pytest.mark.parametrize(
    ("open_boundaries", "informativeness", "expected_first"),
    [
        ([0.1, 0.9], [0.5, 0.5], 0),  # equally informative: the cheaper (shorter boundary) first
        ([0.9, 0.1], [0.5, 0.5], 1),
        ([0.1, 0.5, 0.9], [0.1, 0.6, 0.9], 1),  # informative at half the cost range beats cheap and dull; the costliest
        # open region scores 0 whatever its informativeness (C_norm = 1: min-max over the open pool)
    ],
)
def test_cereals_prefers_the_cheaper_of_two_equally_informative_regions(
    open_boundaries, informativeness, expected_first
):
    answered_features, efforts = costly_by_boundary(30)
    open_features = np.array([[0.5, b, 0.5, 0.5] for b in open_boundaries])  # differ only in boundary length
    pool, offset = pool_with(answered_features, efforts, open_features)
    scores = np.concatenate([np.zeros(offset), informativeness])[None]
    result = Cereals(min_answers=20).pool_scores([scores], pool)[0][0, offset:]
    assert int(np.argmax(result)) == expected_first
    assert result.min() == 0.0  # the costliest open region: C_norm = 1


@pytest.mark.parametrize(
    ("answers", "efforts"),
    [(5, None), (30, 3.0)],  # too few answers; or every answer cost the same (the point protocol)
)
def test_cold_start_ranks_by_informativeness_alone(answers, efforts):
    answered_features, varied = costly_by_boundary(answers)
    pool, offset = pool_with(answered_features, varied if efforts is None else efforts, np.random.rand(3, 4))
    scores = np.concatenate([np.zeros(offset), [0.2, 0.7, 0.4]])[None]
    np.testing.assert_array_equal(Cereals(min_answers=20).pool_scores([scores], pool)[0], scores)


def test_the_cost_model_recovers_a_linear_effort():
    features = np.random.default_rng(1).random((200, 4))
    efforts = 5.0 + 40.0 * features[:, 0] + 10.0 * features[:, 2]
    predict = fit_cost_model(features, efforts, 20)
    np.testing.assert_allclose(predict(features), efforts, atol=1.0)
    assert fit_cost_model(features[:3], efforts[:3], 20) is None


def test_cost_features_are_area_boundary_variance_entropy():
    means = np.array([[0.25, 0.1, 2.0, 5.0, 0.3]])  # area, boundary, mean, mean square, entropy
    np.testing.assert_allclose(cost_features(means), [[0.25, 0.1, 1.0, 0.3]])
