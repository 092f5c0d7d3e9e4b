"""What every pixel-score strategy shares: its score is its measure, and the ranking finds the uncertain pixel."""

import numpy as np
import pytest
import torch

from covidal.regions.grid import RegionGrid
from covidal.strategies.bald import BaldStrategy
from covidal.strategies.base import SliceScores
from covidal.strategies.entropy import EntropyStrategy
from covidal.strategies.least_confidence import LeastConfidenceStrategy
from covidal.strategies.margin import MarginStrategy
from covidal.uncertainty.measures import (
    bald,
    least_confidence,
    margin,
    predictive_entropy,
)

STRATEGY_AND_MEASURE = [
    (EntropyStrategy, predictive_entropy),
    (BaldStrategy, bald),
    (LeastConfidenceStrategy, least_confidence),
    (MarginStrategy, margin),
]


def random_probs(seed: int = 0) -> torch.Tensor:
    """MC softmax samples [T=3, B=2, C=3, H=4, W=4]."""
    logits = torch.randn(3, 2, 3, 4, 4, generator=torch.Generator().manual_seed(seed))
    return logits.softmax(dim=2)


@pytest.mark.parametrize(("strategy_class", "measure"), STRATEGY_AND_MEASURE)
def test_pixel_scores_are_the_measure(strategy_class, measure):
    probs = random_probs()
    scores = strategy_class(RegionGrid(4)).pixel_scores(probs)
    assert scores.shape == (2, 4, 4)
    torch.testing.assert_close(scores, measure(probs))


@pytest.mark.parametrize(("strategy_class", "measure"), STRATEGY_AND_MEASURE)
def test_rejects_logits(strategy_class, measure):
    with pytest.raises(ValueError):
        strategy_class(RegionGrid(4)).pixel_scores(torch.full((1, 1, 2, 4, 4), 3.0))


@pytest.mark.parametrize(("strategy_class", "measure"), STRATEGY_AND_MEASURE)
def test_selects_the_most_uncertain_region(strategy_class, measure):
    # Confident background everywhere except one pixel of region 3 where
    # the two dropout samples disagree completely (maximally uncertain for every measure).
    probs = torch.zeros(2, 1, 2, 4, 4)
    probs[:, :, 0] = 1.0
    probs[0, 0, :, 3, 3] = torch.tensor([1.0, 0.0])
    probs[1, 0, :, 3, 3] = torch.tensor([0.0, 1.0])
    strategy = strategy_class(RegionGrid(4))
    pixel_scores = strategy.pixel_scores(probs)[0].numpy()
    selected = strategy.select([SliceScores("a", "1", pixel_scores)], set(), per_cycle=1)
    assert [s.region.region for s in selected] == [3]
    assert selected[0].score > 0
    assert np.count_nonzero(pixel_scores > 1e-6) == 1
