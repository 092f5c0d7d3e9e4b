"""What every region strategy gets and gives: a stack of slices in, one score per region ``[N, R]`` out.

The cycle (:func:`covidal.activelearning.query.query_regions`) calls :meth:`Strategy.region_scores` on each
part of the pool (a volume, or a set of 2D slices) and hands the scores to the selection rule; it knows
nothing else about a strategy. A strategy that keeps state between cycles (a committee, a cost model) is a
subclass in its own module that keeps it on itself.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from covidal.activelearning.scoring import DEFAULT_REDUCTION, Reduction
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
    """

    grid: RegionGrid
    model: SegmentationNet | None
    samples: int
    seed: int
    open_slices: np.ndarray
    reduction: Reduction = DEFAULT_REDUCTION
    batch_size: int = 8


class Strategy(ABC):
    """Scores every region of a stack of slices; higher is asked first."""

    @abstractmethod
    def region_scores(self, stack: SliceStack, context: ScoringContext) -> np.ndarray:
        """float64 ``[N, R]`` finite scores for the open slices (rows of other slices are ignored).

        Raises:
            ValueError: the strategy cannot score these slices (e.g. it needs a model and there is none,
                or a slice is smaller than the grid).
        """
