"""The one selection rule: score order, a cap per slice that spreads a cycle, the fill when the cap leaves it
short, seeded order of ties; against a plain reference on random inputs."""

import numpy as np
import pytest

from covidal.activelearning.selection import SelectionRule, select_regions
from covidal.validation import ConfigError

SCORES = np.array(
    [
        [0.9, 0.8, 0.1],  # slice 0 holds the two best regions
        [0.7, 0.2, 0.3],
        [0.6, 0.5, 0.4],
    ]
)
EVERYTHING = np.ones(SCORES.shape, dtype=bool)


def pairs(chosen: np.ndarray) -> list[tuple[int, int]]:
    return [tuple(row) for row in chosen.tolist()]


def test_no_cap_takes_the_top_regions_wherever_they_are():
    assert pairs(select_regions(SCORES, EVERYTHING, SelectionRule(3, None), 0)) == [(0, 0), (0, 1), (1, 0)]


def test_a_cap_of_one_spreads_the_cycle_over_slices_best_first():
    assert pairs(select_regions(SCORES, EVERYTHING, SelectionRule(3, 1), 0)) == [(0, 0), (1, 0), (2, 0)]


def test_a_cap_of_two():
    assert pairs(select_regions(SCORES, EVERYTHING, SelectionRule(4, 2), 0)) == [(0, 0), (0, 1), (1, 0), (2, 0)]


def test_the_cap_gives_way_when_too_few_slices_are_open():
    # 3 slices, 5 regions asked at most 1 per slice: the best of each slice first, then the best of the rest.
    assert pairs(select_regions(SCORES, EVERYTHING, SelectionRule(5, 1), 0)) == [(0, 0), (1, 0), (2, 0), (0, 1), (2, 1)]


def test_answered_regions_are_never_asked_and_a_small_pool_gives_fewer():
    open_regions = EVERYTHING.copy()
    open_regions[0, 0] = open_regions[1, :] = False
    chosen = pairs(select_regions(SCORES, open_regions, SelectionRule(10, 1), 0))
    assert chosen == [(0, 1), (2, 0), (2, 1), (2, 2), (0, 2)]
    assert pairs(select_regions(SCORES, np.zeros_like(EVERYTHING), SelectionRule(3), 0)) == []


def test_scores_of_answered_regions_may_be_anything():
    scores = SCORES.copy()
    scores[1, :] = -np.inf
    open_regions = EVERYTHING.copy()
    open_regions[1, :] = False
    assert pairs(select_regions(scores, open_regions, SelectionRule(2, 1), 0)) == [(0, 0), (2, 0)]


def test_ties_follow_a_seeded_order():
    flat = np.zeros((6, 4))
    orders = {
        seed: pairs(select_regions(flat, np.ones((6, 4), bool), SelectionRule(24, None), seed)) for seed in range(4)
    }
    assert orders[0] == pairs(select_regions(flat, np.ones((6, 4), bool), SelectionRule(24, None), 0))
    assert len({tuple(order) for order in orders.values()}) == 4
    assert all(sorted(order) == [(s, r) for s in range(6) for r in range(4)] for order in orders.values())


def test_a_region_keeps_its_place_among_equals_whatever_else_is_open():
    flat = np.zeros((5, 4))
    every = pairs(select_regions(flat, np.ones((5, 4), bool), SelectionRule(20, None), 7))
    open_regions = np.ones((5, 4), bool)
    open_regions[2] = False
    assert pairs(select_regions(flat, open_regions, SelectionRule(16, None), 7)) == [p for p in every if p[0] != 2]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_an_open_region_without_a_finite_score_is_refused(bad):
    scores = SCORES.copy()
    scores[2, 2] = bad
    with pytest.raises(ValueError, match="finite"):
        select_regions(scores, EVERYTHING, SelectionRule(1), 0)


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="same"):
        select_regions(SCORES, EVERYTHING[:2], SelectionRule(1), 0)


@pytest.mark.parametrize(
    ("count", "cap", "words"),
    [(0, 1, "count"), (True, 1, "count"), (1.5, 1, "count"), (2, 0, "max_per_slice"), (2, -1, "max_per_slice")],
)
def test_bad_rules_are_config_errors(count, cap, words):
    with pytest.raises(ConfigError, match=words):
        SelectionRule(count, cap)


def reference(scores: np.ndarray, open_regions: np.ndarray, count: int, cap: int | None) -> list[tuple[int, int]]:
    """The rule as written in words, for distinct scores: greedy by score under the cap, then fill."""
    ranked = sorted(((scores[s, r], s, r) for s, r in zip(*np.nonzero(open_regions))), reverse=True)
    taken, skipped, per_slice = [], [], {}
    for _, s, r in ranked:
        if cap is None or per_slice.get(s, 0) < cap:
            per_slice[s] = per_slice.get(s, 0) + 1
            taken.append((int(s), int(r)))
        else:
            skipped.append((int(s), int(r)))
    return (taken + skipped)[:count]


@pytest.mark.parametrize("trial", range(30))
def test_random_inputs_match_the_reference(trial):
    rng = np.random.default_rng(trial)
    slices, regions = int(rng.integers(1, 8)), int(rng.integers(1, 10))
    scores = rng.random((slices, regions))
    open_regions = rng.random((slices, regions)) < 0.7
    count, cap = int(rng.integers(1, 20)), [None, 1, 2, 3][trial % 4]
    chosen = pairs(select_regions(scores, open_regions, SelectionRule(count, cap), trial))
    assert chosen == reference(scores, open_regions, count, cap)
    assert len(chosen) == len(set(chosen)) == min(count, int(open_regions.sum()))
