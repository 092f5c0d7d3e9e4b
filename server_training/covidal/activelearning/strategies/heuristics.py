"""The simple strategies: a pixel uncertainty measure of MC-dropout samples, reduced per region; and random.

``MEASURES`` names each measure (as baal's ``heuristics`` does): MC softmax samples ``[T, B, C, S, S]`` ->
pixel scores ``[B, S, S]`` (:mod:`covidal.uncertainty.measures`). :class:`MeasureStrategy` scores the
regions of a stack of slices with one of them; :class:`RandomRegions` draws the scores instead and runs no
network.
"""

from __future__ import annotations

import numpy as np

from covidal.activelearning.scoring import PixelMeasure, RegionMaps, RegionScores, Sampler, mc_region_pass
from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.strategies.strategy import ScoringContext, SliceStack, Strategy
from covidal.uncertainty.mc_dropout import mc_probabilities_cached, sample_dropout_masks
from covidal.uncertainty.measures import bald, least_confidence, margin, predictive_entropy, vote_entropy

MEASURES: dict[str, PixelMeasure] = {
    "entropy": predictive_entropy,
    "bald": bald,
    "least-confidence": least_confidence,
    "margin": margin,
    "vote-entropy": vote_entropy,  # the committee: the T dropout samples, each voting its argmax
}


class MeasureStrategy(Strategy):
    """Region score = max (or mean) of a pixel measure of T MC-dropout samples of the current model.

    The dropout masks ``[T, N, F]`` are drawn for all N slices from the context's seed (purpose
    ``"dropout-masks"``), so a slice's masks do not depend on which slices are open or on the batch size.
    """

    def __init__(self, measure: PixelMeasure) -> None:
        self.measure = measure

    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        """Raises: ValueError without a model, or a slice smaller than the grid."""
        return self.mc_pass(stack, context).scores

    def mc_pass(
        self,
        stack: SliceStack,
        context: ScoringContext,
        slices: np.ndarray | None = None,
        maps: RegionMaps | None = None,
        sampler: Sampler = mc_probabilities_cached,
    ) -> RegionScores:
        """The measure's region scores of ``slices`` (bool ``[N]``, default the open ones), and the region means
        of ``maps`` from the same pass (:func:`~covidal.activelearning.scoring.mc_region_pass`).

        Raises:
            ValueError: without a model, or a slice smaller than the grid.
        """
        if context.model is None:
            raise ValueError("this strategy ranks regions by the model's uncertainty: train a model first")
        masks = sample_dropout_masks(
            context.model, context.samples, len(stack), derived_seed(context.seed, "dropout-masks")
        )
        positions = np.flatnonzero(context.open_slices if slices is None else slices).tolist()
        if not positions:
            return RegionScores(np.full((len(stack), context.grid.regions), -np.inf), None)
        return mc_region_pass(
            context.model,
            stack.network_input(),
            masks,
            stack.shapes,
            context.grid,
            self.measure,
            context.reduction,
            context.batch_size,
            positions,
            maps,
            sampler,
        )


class RandomRegions(Strategy):
    """Every region scored by an independent ``Uniform[0, 1)`` draw (purpose ``"random-scores"``): the
    selection then takes uniformly random open regions. Runs no network and needs no model."""

    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        """Raises: ValueError if a slice is smaller than the grid."""
        for shape in set(stack.shapes):
            context.grid.boxes(shape)  # the slices must still fit the grid, as for the other strategies
        rng = np.random.default_rng(derived_seed(context.seed, "random-scores"))
        return rng.random((len(stack), context.grid.regions))
