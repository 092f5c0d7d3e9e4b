from collections import Counter

import numpy as np
import pytest
import torch

from covidal.regions.grid import RegionGrid, RegionId
from covidal.strategies.base import Reduction, SliceScores
from covidal.strategies.random_regions import RandomRegions


def flat_slices(count: int, shape: tuple[int, int] = (4, 4)) -> list[SliceScores]:
    return [SliceScores("case", str(i), np.zeros(shape)) for i in range(count)]


def test_pixel_scores_are_zeros_of_shape_b_h_w():
    probs = torch.full((3, 2, 2, 5, 6), 0.5)
    scores = RandomRegions(RegionGrid(4)).pixel_scores(probs)
    assert scores.shape == (2, 5, 6)
    assert not scores.any()


def test_same_seed_same_selection_and_different_seeds_differ():
    strategy = RandomRegions(RegionGrid(16))
    slices = flat_slices(5, (8, 8))

    def pick(seed: int):
        return strategy.select(slices, set(), per_cycle=3, regions_per_slice=2, rng=np.random.default_rng(seed))

    assert pick(7) == pick(7)
    assert len({tuple(s.region for s in pick(seed)) for seed in range(10)}) > 1


def test_never_returns_labelled_or_repeated_regions():
    strategy = RandomRegions(RegionGrid(4))
    slices = flat_slices(3)
    rng = np.random.default_rng(0)
    labelled = {RegionId("case", "0", 0), RegionId("case", "0", 1), RegionId("case", "2", 3)}
    for _ in range(50):
        chosen = [s.region for s in strategy.select(slices, labelled, per_cycle=3, regions_per_slice=4, rng=rng)]
        assert len(chosen) == 12 - len(labelled)
        assert set(chosen).isdisjoint(labelled)
        assert len(set(chosen)) == len(chosen)


def test_first_pick_is_uniform_over_unlabelled_regions_not_slices():
    # Slice "0" has 4 unlabelled regions, slice "1" only one: uniform over regions
    # gives each of the 5 regions probability 1/5 (slice "1" is picked 1/5, not 1/2).
    strategy = RandomRegions(RegionGrid(4))
    slices = flat_slices(2)
    labelled = {RegionId("case", "1", r) for r in (0, 1, 2)}
    rng = np.random.default_rng(123)
    trials = 2000
    counts = Counter(
        strategy.select(slices, labelled, per_cycle=1, rng=rng)[0].region for _ in range(trials)
    )
    assert set(counts) == {RegionId("case", "0", r) for r in range(4)} | {RegionId("case", "1", 3)}
    # Binomial(2000, 0.2): mean 400, std ~18; 80 is ~4.5 std.
    for count in counts.values():
        assert abs(count - trials / 5) < 80


def test_requires_an_rng():
    with pytest.raises(ValueError, match="rng"):
        RandomRegions(RegionGrid(4)).select(flat_slices(1), set(), per_cycle=1)


def test_ignores_reduction_and_pixel_scores():
    slices = [SliceScores("case", "0", np.arange(16.0).reshape(4, 4))]
    by_max = RandomRegions(RegionGrid(4), Reduction.MAX).select(slices, set(), 1, 4, np.random.default_rng(3))
    by_mean = RandomRegions(RegionGrid(4), Reduction.MEAN).select(slices, set(), 1, 4, np.random.default_rng(3))
    assert by_max == by_mean


def test_rejects_slices_smaller_than_the_grid():
    with pytest.raises(ValueError):
        RandomRegions(RegionGrid(64)).select(flat_slices(1), set(), per_cycle=1, rng=np.random.default_rng(0))
