"""The random baseline: regions picked uniformly at random, uncertainty ignored."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from covidal.regions.grid import RegionId
from covidal.strategies.base import ScoredRegion, SliceScores, Strategy
from covidal.uncertainty.measures import check_probabilities


class RandomRegions(Strategy):
    """Scores every region with an independent ``Uniform[0, 1)`` draw.

    The shared ranking then takes the slice holding the highest draw among the
    remaining slices, so each pick is uniform over all unlabelled regions of
    those slices, not over slices first: a slice with more unlabelled regions
    is proportionally more likely to be queried. The pixel scores and the
    reduction are ignored. Draws are made slice by slice in the given order,
    so a seed and the same slice order reproduce the selection.
    """

    needs_uncertainty = False

    def pixel_scores(self, probs: Tensor) -> Tensor:
        """Zeros ``[B, H, W]``: random selection needs no uncertainty.

        Raises:
            ValueError: ``probs`` is not a ``[T, B, C, H, W]`` probability tensor.
        """
        probs = check_probabilities(probs)
        return torch.zeros(probs.shape[1], *probs.shape[3:], dtype=probs.dtype, device=probs.device)

    def score_regions(self, slices: Sequence[SliceScores], rng: np.random.Generator | None) -> list[ScoredRegion]:
        """Every region of every slice with a random score.

        Raises:
            ValueError: ``rng`` is None (a random strategy needs an explicit seed source).
        """
        if rng is None:
            raise ValueError("the random strategy needs rng=np.random.default_rng(seed) to be reproducible")
        regions = self.grid.regions
        scored = []
        for slice_scores in slices:
            # The slice must still fit the grid, as for the other strategies.
            self.grid.label_map(slice_scores.pixel_scores.shape)
            draws = rng.random(regions)
            scored.extend(
                ScoredRegion(RegionId(slice_scores.case, slice_scores.slice, region), float(draws[region]))
                for region in range(regions)
            )
        return scored
