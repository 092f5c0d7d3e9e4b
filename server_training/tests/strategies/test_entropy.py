import math

import torch

from covidal.regions.grid import RegionGrid
from covidal.strategies.entropy import EntropyStrategy


def test_uniform_mean_prediction_has_entropy_log_c():
    probs = torch.full((2, 1, 3, 4, 4), 1.0 / 3.0)
    scores = EntropyStrategy(RegionGrid(4)).pixel_scores(probs)
    torch.testing.assert_close(scores, torch.full((1, 4, 4), math.log(3.0)))
