"""Suggestive annotation: the top K by a bootstrapped committee's disagreement, then a greedy max-cover."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_testing import GRID_K, images, part, query, tiny_model

from covidal.activelearning.strategies import StrategyParams, build_strategy
from covidal.activelearning.strategies.suggestive import suggestive_order, tier_scores


def test_max_cover_takes_the_other_cluster_before_a_second_region_of_the_first():
    """Candidates 0-2 disagree most and sit in cluster A with most of the pool; 3 sits in cluster B. With k = 2,
    the cover takes A's best and then B, not A's second best."""
    a, b = np.array([1.0, 0.0]), np.array([0.0, 1.0])
    descriptors = np.array([a, a, a, b, a, a, b, b])
    disagreement = np.array([0.9, 0.8, 0.7, 0.6, 0.1, 0.1, 0.05, 0.05])
    order = suggestive_order(disagreement, descriptors, top_k=4, k=2)
    assert order.tolist() == [0, 3, 1, 2]
    scores = tier_scores(disagreement, order, k=2, top_k=4)
    assert np.argsort(-scores, kind="stable").tolist()[:4] == [0, 3, 1, 2]
    assert scores[[4, 5, 6, 7]].max() < scores[[1, 2]].min() < scores[3] < scores[0]


@pytest.mark.parametrize(("top_k", "k"), [(3, 3), (8, 1), (2, 5)])
def test_the_picks_come_from_the_top_k_only(top_k, k):
    rng = np.random.default_rng(k)
    disagreement, descriptors = rng.random(12), rng.random((12, 3))
    order = suggestive_order(disagreement, descriptors, top_k, k)
    top = set(np.argsort(-disagreement)[:top_k].tolist())
    assert set(order.tolist()) == top and len(order) == min(top_k, 12)


def test_no_answered_pixel_is_a_clear_error(single_thread_torch):
    with pytest.raises(ValueError, match="answered pixels"):
        query(build_strategy("suggestive"), [part(images(), np.zeros((4, GRID_K), bool))], tiny_model())


def test_the_committee_disagrees_and_its_picks_are_scored_first(single_thread_torch):
    answered = np.zeros((4, GRID_K), bool)
    answered[0] = True
    params = StrategyParams(top_k=6, committee=4, head_steps=10)
    chosen = query(build_strategy("suggestive", params), [part(images(), answered)], tiny_model(), count=3, cap=None)
    assert [q.score > 2.0 for q in chosen] == [True] * 3  # the max-cover's three picks, in pick order
    assert [q.score for q in chosen] == sorted((q.score for q in chosen), reverse=True)
