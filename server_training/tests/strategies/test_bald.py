import math

import torch

from covidal.regions.grid import RegionGrid
from covidal.strategies.bald import BaldStrategy


def test_agreeing_samples_have_zero_mutual_information():
    probs = torch.full((2, 1, 2, 4, 4), 0.5)
    scores = BaldStrategy(RegionGrid(4)).pixel_scores(probs)
    torch.testing.assert_close(scores, torch.zeros(1, 4, 4), atol=1e-6, rtol=0)


def test_fully_disagreeing_samples_have_mutual_information_log_2():
    probs = torch.zeros(2, 1, 2, 4, 4)
    probs[0, :, 0] = 1.0
    probs[1, :, 1] = 1.0
    scores = BaldStrategy(RegionGrid(4)).pixel_scores(probs)
    torch.testing.assert_close(scores, torch.full((1, 4, 4), math.log(2.0)))
