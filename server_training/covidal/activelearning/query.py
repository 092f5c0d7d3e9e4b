"""One query of an active-learning cycle, the same for ``covidal simulate`` and ``covidal serve``.

The pool is a sequence of parts (a volume's axial slices, or a set of 2D slices); each part's regions are
scored by the strategy (:meth:`Strategy.region_scores`, ``[N, R]``, then :meth:`Strategy.pool_scores` once over
all parts), and the selection rule (:func:`select_regions`) picks the cycle's regions over all parts at once. Every random draw derives from
the cycle's one seed: part ``p`` scores with ``derived_seed(seed, "part", p)`` (its dropout masks, random
scores) and equal scores are ordered by ``derived_seed(seed, "ties")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from covidal.activelearning.scoring import DEFAULT_REDUCTION, Reduction
from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.selection import SelectionRule, select_regions
from covidal.activelearning.strategies.strategy import PartAnswers, PoolScratch, ScoringContext, SliceStack, Strategy
from covidal.models.slices.network import SegmentationNet
from covidal.regions.grid import RegionGrid


@dataclass(frozen=True)
class PoolPart:
    """One part of the pool and which of its regions may still be asked.

    Attributes:
        stack: the part's slices.
        open_regions: ``[N, R]`` bool, True where a region is not answered yet.
        answers: the part's answers with their effort, for strategies that learn from them (None: none).
    """

    stack: SliceStack
    open_regions: np.ndarray
    answers: PartAnswers | None = None


@dataclass(frozen=True)
class QueryOptions:
    """How a cycle scores and selects (the same numbers give the same regions in a simulation and a service).

    Attributes:
        grid: how each slice is cut into regions.
        rule: how many regions, and how spread over slices.
        samples: T, Monte-Carlo dropout samples per slice.
        reduction: how a region's pixel scores become its score (default top-mean).
        batch_size: slices per forward pass.
    """

    grid: RegionGrid
    rule: SelectionRule
    samples: int = 20
    reduction: Reduction = DEFAULT_REDUCTION
    batch_size: int = 8


@dataclass(frozen=True)
class QueriedRegion:
    """Region ``region`` of slice ``slice`` of pool part ``part``, with its score."""

    part: int
    slice: int
    region: int
    score: float


def cycle_seed(run_seed: int, cycle: int) -> int:
    """The seed of cycle ``cycle`` of a run (or project) seeded ``run_seed``."""
    return derived_seed(run_seed, "cycle", cycle)


def query_regions(
    parts: Sequence[PoolPart], strategy: Strategy, model: SegmentationNet | None, options: QueryOptions, seed: int
) -> list[QueriedRegion]:
    """The cycle's regions, best first (see the module docstring); fewer than ``rule.count`` only when the
    pool has fewer open regions.

    Args:
        parts: the pool; parts without an open region are not scored.
        strategy: scores each part's regions.
        model: the current model, or None before any training (for strategies that need none).
        options: grid, selection rule and scoring options.
        seed: the cycle's seed (:func:`cycle_seed`).

    Raises:
        ValueError: as the strategy (e.g. no model, slices smaller than the grid) and :func:`select_regions`.
    """
    grid = options.grid
    scores, open_regions, owners = [], [], []
    pool = PoolScratch(options.rule.count, seed)
    for index, part in enumerate(parts):
        if part.open_regions.shape != (len(part.stack), grid.regions):
            raise ValueError(
                f"part {index}: open regions {part.open_regions.shape} do not match "
                f"{len(part.stack)} slices of {grid.regions} regions"
            )
        open_slices = part.open_regions.any(axis=1)
        if not open_slices.any():
            continue
        context = ScoringContext(
            grid,
            model,
            options.samples,
            derived_seed(seed, "part", index),
            open_slices,
            options.reduction,
            options.batch_size,
            part.open_regions,
            part.answers,
            index,
            pool,
        )
        scores.append(strategy.region_scores(part.stack, context))
        open_regions.append(part.open_regions)
        owners += [(index, k) for k in range(len(part.stack))]
    if not scores:
        return []
    final = strategy.pool_scores(scores, pool)
    if [np.shape(part) for part in final] != [part.shape for part in scores]:
        raise ValueError("the strategy's pool scores do not match the parts it scored")
    all_scores = np.concatenate([np.asarray(part, dtype=np.float64) for part in final])
    chosen = select_regions(all_scores, np.concatenate(open_regions), options.rule, derived_seed(seed, "ties"))
    return [QueriedRegion(*owners[row], int(region), float(all_scores[row, region])) for row, region in chosen]
