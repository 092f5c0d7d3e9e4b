"""Rank regions by least confidence, 1 - max_c of the mean prediction."""

from __future__ import annotations

from torch import Tensor

from covidal.strategies.base import Strategy
from covidal.uncertainty.measures import least_confidence


class LeastConfidenceStrategy(Strategy):
    """Pixel score: :func:`covidal.uncertainty.measures.least_confidence`."""

    def pixel_scores(self, probs: Tensor) -> Tensor:
        """``least_confidence(probs)``: MC softmax samples ``[T, B, C, H, W]`` -> ``[B, H, W]``.

        Raises:
            ValueError: ``probs`` is not a ``[T, B, C, H, W]`` probability tensor.
        """
        return least_confidence(probs)
