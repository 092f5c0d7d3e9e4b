"""Rank regions by predictive entropy (entropy of the mean prediction over all classes)."""

from __future__ import annotations

from torch import Tensor

from covidal.strategies.base import Strategy
from covidal.uncertainty.measures import predictive_entropy


class EntropyStrategy(Strategy):
    """Pixel score: :func:`covidal.uncertainty.measures.predictive_entropy`."""

    def pixel_scores(self, probs: Tensor) -> Tensor:
        """``predictive_entropy(probs)``: MC softmax samples ``[T, B, C, H, W]`` -> ``[B, H, W]``.

        Raises:
            ValueError: ``probs`` is not a ``[T, B, C, H, W]`` probability tensor.
        """
        return predictive_entropy(probs)
