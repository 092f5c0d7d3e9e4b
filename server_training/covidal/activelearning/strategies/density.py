"""Information density: a region's uncertainty weighted by how typical it is of the unlabelled pool."""

from __future__ import annotations

import numpy as np
from torch import Tensor

from covidal.activelearning.strategies.heuristics import MeasureStrategy
from covidal.activelearning.strategies.strategy import PoolScratch, ScoringContext, SliceStack
from covidal.uncertainty.mc_dropout import MCSamples
from covidal.uncertainty.measures import predictive_entropy


def trunk_features(samples: MCSamples, images: Tensor) -> Tensor:
    """The MC pass's trunk features ``[B, F, S, S]``: pooled per region, they describe it."""
    return samples.features


class Density(MeasureStrategy):
    """Score = entropy (the context's reduction) x (mean cosine similarity to the open regions of the pool) ** beta.

    A region's descriptor is the mean of the trunk features over it, from the same MC pass that scores it (no
    second forward pass). The mean cosine similarity of ``d_i`` to the N open regions is
    ``d_i / |d_i| . mean_j d_j / |d_j|``: one mean over the pool, O(N), not the N x N matrix. Trunk features
    follow a ReLU, so similarities lie in [0, 1]; a negative one (another trunk) counts as 0.

    Args:
        beta: the similarity's exponent, >= 0 (0 is plain entropy).
    """

    def __init__(self, beta: float) -> None:
        super().__init__(predictive_entropy)
        self.beta = beta

    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        """Raises: ValueError without a model, or a slice smaller than the grid."""
        result = self.mc_pass(stack, context, maps=trunk_features)
        if context.pool is not None and result.means is not None:
            context.pool.parts[context.part] = (unit_rows(result.means), context.open_mask())
        return result.scores

    def pool_scores(self, scores: list[np.ndarray], pool: PoolScratch) -> list[np.ndarray]:
        notes = [pool.parts[index] for index in sorted(pool.parts)]
        if not notes:
            return scores
        open_descriptors = np.concatenate([descriptors[open_] for descriptors, open_ in notes])
        centre = open_descriptors.mean(axis=0)  # [F]: the mean unit descriptor of the open pool
        weighted = []
        for part_scores, (descriptors, open_) in zip(scores, notes, strict=True):
            similarity = np.clip(np.nan_to_num(descriptors @ centre), 0.0, None)  # [N, R]
            final = np.array(part_scores, dtype=np.float64)
            final[open_] *= similarity[open_] ** self.beta
            weighted.append(final)
        return weighted


def unit_rows(descriptors: np.ndarray) -> np.ndarray:
    """``descriptors`` ``[..., F]`` scaled to unit length (an all-zero one stays zero)."""
    norms = np.linalg.norm(descriptors, axis=-1, keepdims=True)
    return np.divide(descriptors, norms, out=np.zeros_like(descriptors), where=norms > 0)
