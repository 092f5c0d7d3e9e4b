"""Rank regions by BALD mutual information (disagreement between dropout samples)."""

from __future__ import annotations

from torch import Tensor

from covidal.strategies.base import Strategy
from covidal.uncertainty.measures import bald


class BaldStrategy(Strategy):
    """Pixel score: :func:`covidal.uncertainty.measures.bald`."""

    def pixel_scores(self, probs: Tensor) -> Tensor:
        """``bald(probs)``: MC softmax samples ``[T, B, C, H, W]`` -> ``[B, H, W]``.

        Raises:
            ValueError: ``probs`` is not a ``[T, B, C, H, W]`` probability tensor.
        """
        return bald(probs)
