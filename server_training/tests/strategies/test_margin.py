import torch

from covidal.regions.grid import RegionGrid
from covidal.strategies.margin import MarginStrategy


def test_hand_computed_value():
    probs = torch.zeros(1, 1, 3, 4, 4)
    probs[0, 0, :, :, :] = torch.tensor([0.2, 0.5, 0.3])[:, None, None]
    scores = MarginStrategy(RegionGrid(4)).pixel_scores(probs)
    torch.testing.assert_close(scores, torch.full((1, 4, 4), 0.8))
