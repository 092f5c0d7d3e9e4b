"""Rank regions by margin, 1 - (top1 - top2) of the mean prediction."""

from __future__ import annotations

from torch import Tensor

from covidal.strategies.base import Strategy
from covidal.uncertainty.measures import margin


class MarginStrategy(Strategy):
    """Pixel score: :func:`covidal.uncertainty.measures.margin`."""

    def pixel_scores(self, probs: Tensor) -> Tensor:
        """``margin(probs)``: MC softmax samples ``[T, B, C, H, W]`` -> ``[B, H, W]``.

        Raises:
            ValueError: ``probs`` is not a ``[T, B, C, H, W]`` probability tensor.
        """
        return margin(probs)
