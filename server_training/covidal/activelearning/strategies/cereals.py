"""CEREALS (cost-effective region-based active learning): rank by informativeness discounted by the predicted
cost of answering, ``g = (1 - C_norm) * I``."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from covidal.activelearning.strategies.heuristics import MeasureStrategy
from covidal.activelearning.strategies.strategy import PoolScratch, ScoringContext, SliceStack
from covidal.uncertainty.mc_dropout import MCSamples
from covidal.uncertainty.measures import predictive_entropy

RIDGE = 1.0  # the cost model's L2 penalty on standardised features: a few dozen answers must not overfit
COST_FEATURES = ("predicted infected area", "predicted boundary length", "intensity variance", "entropy")


def cost_maps(samples: MCSamples, images: Tensor) -> Tensor:
    """``[B, 5, S, S]`` pixel maps whose region means give the cost features: predicted infection (mean
    prediction > 0.5), predicted boundary (a pixel whose right or lower neighbour is predicted otherwise),
    intensity and its square, entropy of the mean prediction."""
    mean = samples.probs.mean(dim=0)  # [B, C, S, S]
    infected = (mean.argmax(dim=1) == 1).double()
    boundary = torch.zeros_like(infected)
    boundary[:, :, :-1] += infected[:, :, :-1] != infected[:, :, 1:]
    boundary[:, :-1, :] += infected[:, :-1, :] != infected[:, 1:, :]
    intensity = images[:, 0].double().to(infected.device)
    entropy = predictive_entropy(samples.probs.double())
    return torch.stack([infected, boundary.clamp_max(1.0), intensity, intensity**2, entropy], dim=1)


def cost_features(means: np.ndarray) -> np.ndarray:
    """``[..., 4]`` :data:`COST_FEATURES` of the region means ``[..., 5]`` of :func:`cost_maps`."""
    area, boundary, intensity, square, entropy = np.moveaxis(means, -1, 0)
    return np.stack([area, boundary, np.maximum(square - intensity**2, 0.0), entropy], axis=-1)


class Cereals(MeasureStrategy):
    """Score ``g = (1 - C_norm) * I``: ``I`` the region's entropy (the context's reduction), ``C`` its predicted
    cost, min-max normalised over the pool's open regions.

    The cost model is a ridge regression of the recorded effort seconds of the answered regions on their
    :data:`COST_FEATURES` (from the same MC pass that scores the open regions), fitted again every cycle.
    Cold start: with fewer than ``min_answers`` answers, or while every answer cost the same (one click or tag
    each, the ``point`` protocol), every cost is taken as equal and CEREALS ranks as entropy.

    Args:
        min_answers: answers needed before the cost model is fitted, >= 2.
    """

    def __init__(self, min_answers: int) -> None:
        super().__init__(predictive_entropy)
        self.min_answers = min_answers

    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        """Raises: ValueError without a model, or a slice smaller than the grid."""
        answers = context.part_answers()
        answered = answers.answered
        result = self.mc_pass(stack, context, slices=context.open_slices | answered.any(axis=1), maps=cost_maps)
        if context.pool is not None and result.means is not None:
            features = cost_features(result.means)
            context.pool.parts[context.part] = (features, context.open_mask(), answered, answers.effort_seconds)
        return result.scores

    def pool_scores(self, scores: list[np.ndarray], pool: PoolScratch) -> list[np.ndarray]:
        notes = [pool.parts[index] for index in sorted(pool.parts)]
        if not notes:
            return scores
        features = np.concatenate([f[answered] for f, _, answered, _ in notes])
        efforts = np.concatenate([effort[answered] for _, _, answered, effort in notes])
        predict = fit_cost_model(features, efforts, self.min_answers)
        if predict is None:
            return scores
        costs = [predict(f) for f, *_ in notes]
        open_costs = np.concatenate([cost[open_] for cost, (_, open_, _, _) in zip(costs, notes, strict=True)])
        low, span = open_costs.min(), np.ptp(open_costs)
        discounted = []
        for part_scores, cost, (_, open_, _, _) in zip(scores, costs, notes, strict=True):
            normalised = np.clip((cost - low) / span, 0.0, 1.0) if span > 0 else np.zeros_like(cost)
            discounted.append(np.where(open_, (1.0 - normalised) * part_scores, part_scores))
        return discounted


def fit_cost_model(features: np.ndarray, efforts: np.ndarray, min_answers: int):
    """A function ``[..., 4] -> [...]`` predicting effort seconds by ridge regression of ``efforts`` ``[M]`` on
    standardised ``features`` ``[M, 4]``; None (cold start) with fewer than ``min_answers`` answers or a constant
    effort."""
    if len(efforts) < min_answers or np.ptp(efforts) == 0:
        return None
    centre, scale = features.mean(axis=0), features.std(axis=0)
    scale[scale == 0] = 1.0
    x = (features - centre) / scale
    weights = np.linalg.solve(x.T @ x + RIDGE * np.eye(x.shape[1]), x.T @ (efforts - efforts.mean()))
    return lambda f: ((np.nan_to_num(f) - centre) / scale) @ weights + efforts.mean()
