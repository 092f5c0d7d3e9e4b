"""The strategies by name: pixel measures of MC-dropout samples, random draws that run no network."""

import numpy as np
import pytest
import torch

from covidal.activelearning.scoring import mc_region_pass
from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.strategies import (
    STRATEGIES,
    ScoringContext,
    SliceStack,
    StrategyName,
    build_strategy,
)
from covidal.activelearning.strategies.heuristics import MEASURES, MeasureStrategy, RandomRegions
from covidal.models.slices.build import ModelConfig, build_model
from covidal.regions.grid import RegionGrid
from covidal.uncertainty.mc_dropout import sample_dropout_masks
from covidal.uncertainty.measures import predictive_entropy

SHAPES = ((40, 48), (33, 33), (40, 48))


def stack(images: torch.Tensor | None = None, intensities=None) -> SliceStack:
    def no_input():
        raise AssertionError("this strategy must not run the network")

    return SliceStack(SHAPES, no_input if images is None else (lambda: images), intensities)


def context(model=None, grid_k=4, seed=5, open_slices=(True, True, True)) -> ScoringContext:
    return ScoringContext(RegionGrid(grid_k), model, samples=4, seed=seed, open_slices=np.array(open_slices))


def test_every_name_builds_its_strategy():
    assert set(STRATEGIES) == set(StrategyName)
    assert isinstance(build_strategy("random"), RandomRegions)
    for name in MEASURES:
        assert build_strategy(name).measure is MEASURES[name]


def test_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="magic.*entropy"):
        build_strategy("magic")


def test_measure_strategy_scores_the_open_slices_with_masks_drawn_for_all(single_thread_torch):
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8))
    images = torch.randn(3, 1, 32, 32)
    scores = build_strategy("entropy").region_scores(stack(images), context(model, open_slices=(True, False, True)))
    masks = sample_dropout_masks(model, 4, 3, derived_seed(5, "dropout-masks"))
    expected = mc_region_pass(model, images, masks, SHAPES, RegionGrid(4), predictive_entropy, positions=[0, 2]).scores
    np.testing.assert_array_equal(scores, expected)
    assert np.all(np.isfinite(scores[[0, 2]])) and np.all(scores[1] == -np.inf)


def test_measure_strategy_needs_a_model():
    with pytest.raises(ValueError, match="train a model"):
        MeasureStrategy(predictive_entropy).region_scores(stack(), context())


def test_random_scores_are_seeded_and_run_no_network():
    first = RandomRegions().region_scores(stack(), context(seed=1))
    assert first.shape == (3, 4) and np.all((first >= 0) & (first < 1))
    np.testing.assert_array_equal(first, RandomRegions().region_scores(stack(), context(seed=1)))
    assert not np.array_equal(first, RandomRegions().region_scores(stack(), context(seed=2)))


def test_random_scores_still_need_slices_that_fit_the_grid():
    with pytest.raises(ValueError, match="too small"):
        RandomRegions().region_scores(stack(), context(grid_k=64 * 64))
