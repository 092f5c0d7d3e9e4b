"""What every region strategy gets and gives: a stack of slices in, one score per region ``[N, R]`` out.

The cycle (:func:`covidal.activelearning.query.query_regions`) calls :meth:`Strategy.region_scores` on each
part of the pool (a volume, or a set of 2D slices), then :meth:`Strategy.pool_scores` once on all parts' scores,
and hands the result to the selection rule; it knows nothing else about a strategy. A strategy that needs the
whole pool (density, suggestive annotation, a cost model, VAAL) keeps what each part's scoring found in the
query's :class:`PoolScratch` (``context.pool``) and combines it in :meth:`Strategy.pool_scores`; the identity
for the others. A strategy with a model of its own (a committee, a cost model, a VAE) is a subclass in its own
module, fitted again every cycle from the answers in the context, so a service that builds it afresh for each
cycle ranks as a simulation that keeps one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from covidal.activelearning.scoring import DEFAULT_REDUCTION, Reduction
from covidal.activelearning.strategies.pseudo_labels import PseudoLabels
from covidal.models.slices.network import SegmentationNet
from covidal.regions.grid import RegionGrid


@dataclass(frozen=True)
class SliceStack:
    """N slices of one part of the pool (a volume's axial slices, or a set of 2D slices).

    Attributes:
        shapes: native ``(H, W)`` of each slice; its regions are cut on this grid.
        network_input: returns the float32 ``[N, 1, S, S]`` network inputs; called only by a strategy that
            runs the model, so a caller may compute them lazily or take them from a cache.
        intensities: returns the ``[N, H, W]`` CT in HU, for strategies that rank by the CT itself (before
            any model exists); None when the slices are not CT in HU (e.g. 8-bit images).
    """

    shapes: tuple[tuple[int, int], ...]
    network_input: Callable[[], Tensor]
    intensities: Callable[[], np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.shapes)


@dataclass(frozen=True)
class PartAnswers:
    """The answers already given in one part of the pool.

    Attributes:
        effort_seconds: float64 ``[N, R]``, the recorded effort of each answered region, NaN where unanswered.
        label_maps: ``S -> int64 [N, S, S]`` the answers as training targets on the ``S x S`` network grid
            (-1 unknown, 0 background, 1 infection), as the model trains on them.
    """

    effort_seconds: np.ndarray
    label_maps: Callable[[int], np.ndarray]

    @property
    def answered(self) -> np.ndarray:
        """bool ``[N, R]``: True where a region is answered."""
        return ~np.isnan(self.effort_seconds)


def no_answers(slices: int, regions: int) -> PartAnswers:
    """The :class:`PartAnswers` of a part nobody has answered yet."""
    return PartAnswers(np.full((slices, regions), np.nan), lambda size: np.full((slices, size, size), -1, np.int64))


@dataclass
class PoolScratch:
    """One query's shared notes: what each part's scoring leaves for the strategy's pool-level step.

    Attributes:
        count: regions the cycle asks for (the selection rule's count).
        seed: the cycle's seed; a pool-level draw derives from it under its own name.
        parts: by part index, whatever the strategy stored while scoring that part.
    """

    count: int
    seed: int
    parts: dict[int, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ScoringContext:
    """What a strategy may use to score one part of the pool.

    Attributes:
        grid: how each slice is cut into R regions.
        model: the current model (on its device), or None before the first training.
        samples: T, Monte-Carlo dropout samples per slice.
        seed: this part's seed in this cycle; every draw of a strategy derives from it under its own name
            (:func:`covidal.activelearning.seeds.derived_seed`).
        open_slices: ``[N]`` bool, the slices with a region left to ask; the others need no score.
        reduction: how a region's pixel scores become its score (default top-mean).
        batch_size: slices per forward pass.
        open_regions: ``[N, R]`` bool, the regions that may be asked (None: every region of an open slice).
        answers: the part's answers so far (None: none).
        part: this part's index in the pool.
        pool: the query's shared notes (None outside a query: then one part is the whole pool).
    """

    grid: RegionGrid
    model: SegmentationNet | None
    samples: int
    seed: int
    open_slices: np.ndarray
    reduction: Reduction = DEFAULT_REDUCTION
    batch_size: int = 8
    open_regions: np.ndarray | None = None
    answers: PartAnswers | None = None
    part: int = 0
    pool: PoolScratch | None = None

    def open_mask(self) -> np.ndarray:
        """bool ``[N, R]``: the regions that may be asked."""
        if self.open_regions is not None:
            return self.open_regions
        return np.repeat(self.open_slices[:, None], self.grid.regions, axis=1)

    def part_answers(self) -> PartAnswers:
        """The part's answers, :func:`no_answers` when none were given."""
        return self.answers or no_answers(len(self.open_slices), self.grid.regions)


class Strategy(ABC):
    """Scores every region of a stack of slices; higher is asked first."""

    def pool_scores(self, scores: list[np.ndarray], pool: PoolScratch) -> list[np.ndarray]:
        """The final ``[N_p, R]`` scores of the scored parts (in the order they were scored), once every part's
        :meth:`region_scores` is known; by default the same scores. Only open regions' scores are read."""
        return scores

    adds_pseudo_labels: bool = False  # True where :meth:`pseudo_labels` may give any (a caller may skip the pool)

    def pseudo_labels(self, model: SegmentationNet, images: Tensor, cycle: int, seed: int) -> PseudoLabels | None:
        """Labels the next training adds on pixels nobody answered, for the ``[N, 1, S, S]`` pool ``images``
        after query ``cycle`` (``seed``: the run's or project's seed); None (the default): the strategy adds none.
        Such labels never count as effort and are made afresh each cycle
        (:func:`~covidal.activelearning.strategies.pseudo_labels.training_label_maps`)."""
        return None

    @abstractmethod
    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        """float64 ``[N, R]`` finite scores for the open slices (rows of other slices are ignored).

        Raises:
            ValueError: the strategy cannot score these slices (e.g. it needs a model and there is none,
                or a slice is smaller than the grid).
        """


class PoolLevelStrategy(Strategy):
    """A strategy that scores the whole pool at once (its model learns from every part's regions): each part is
    only noted while the query goes through the parts, and :meth:`pool_scores` scores them all. Called outside
    a query (no pool in the context), one part is the whole pool."""

    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        placeholder = np.zeros((len(stack), context.grid.regions))
        if context.pool is None:
            pool = PoolScratch(1, context.seed)
            pool.parts[0] = (stack, context)
            return self.pool_scores([placeholder], pool)[0]
        context.pool.parts[context.part] = (stack, context)
        return placeholder
