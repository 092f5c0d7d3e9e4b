"""The shared active-learning selection pipeline: score pixels, reduce to regions, rank.

A strategy turns Monte-Carlo softmax samples into a pixel uncertainty map
(:meth:`Strategy.pixel_scores`), reduces each slice's map to one score per
region of a :class:`~covidal.regions.grid.RegionGrid`
(:meth:`Strategy.region_scores`), and picks the regions the clinician answers
next (:meth:`Strategy.select`). Subclasses write only their pixel score, or,
when the score does not come from pixels (random), the :meth:`score_regions`
hook; the ranking is the same for all of them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import StrEnum
from itertools import groupby

import numpy as np
from torch import Tensor

from covidal.regions.grid import RegionGrid, RegionId


class Reduction(StrEnum):
    """How a region's pixel scores become its score."""

    MAX = "max"
    MEAN = "mean"


@dataclass(frozen=True)
class ScoredRegion:
    """A region and its uncertainty score (higher = asked first)."""

    region: RegionId
    score: float


@dataclass(frozen=True, eq=False)
class SliceScores:
    """Pixel uncertainty of one slice, on the grid where regions are defined.

    ``eq=False`` because equality of array fields is element-wise, not a bool.

    Attributes:
        case: case id.
        slice: slice id, e.g. ``"12"`` or ``"case:40"``.
        pixel_scores: ``[H, W]`` finite float scores, stored as float64.

    Raises:
        ValueError: ``pixel_scores`` is not 2-D or holds NaN or infinity.
    """

    case: str
    slice: str
    pixel_scores: np.ndarray

    def __post_init__(self) -> None:
        scores = np.asarray(self.pixel_scores, dtype=np.float64)
        if scores.ndim != 2:
            raise ValueError(f"pixel_scores of slice {self.key} must be [H, W], got shape {scores.shape}")
        if not np.all(np.isfinite(scores)):
            raise ValueError(f"pixel_scores of slice {self.key} hold NaN or infinity")
        # Frozen dataclass: store the validated float64 copy through object.__setattr__.
        object.__setattr__(self, "pixel_scores", scores)

    @property
    def key(self) -> tuple[str, str]:
        """``(case, slice)``: what identifies the slice."""
        return (self.case, self.slice)


class Strategy(ABC):
    """Ranks the regions of scored slices and picks the next ones to label.

    Args:
        grid: how each slice is cut into regions.
        reduction: region score = max or mean of its pixel scores (a
            :class:`Reduction` or its string value).

    Attributes:
        needs_uncertainty: whether :meth:`pixel_scores` uses the Monte-Carlo samples;
            when False the caller may skip running the network and pass zero maps.

    Raises:
        ValueError: unknown ``reduction``.
    """

    needs_uncertainty: bool = True

    def __init__(self, grid: RegionGrid, reduction: Reduction | str = Reduction.MAX) -> None:
        if reduction not in set(Reduction):
            choices = ", ".join(Reduction)
            raise ValueError(f"unknown region reduction {reduction!r}; choose one of: {choices}")
        self.grid = grid
        self.reduction = Reduction(reduction)

    @abstractmethod
    def pixel_scores(self, probs: Tensor) -> Tensor:
        """Pixel uncertainty ``[B, H, W]`` (higher = more uncertain) of MC softmax samples ``[T, B, C, H, W]``."""

    def region_scores(self, scores: SliceScores) -> list[ScoredRegion]:
        """The ``K`` regions of one slice with their reduced scores, in region order.

        Raises:
            ValueError: the slice is smaller than the grid's ``side`` along an axis.
        """
        labels = self.grid.label_map(scores.pixel_scores.shape).ravel()
        pixels = scores.pixel_scores.ravel()
        regions = self.grid.regions
        if self.reduction is Reduction.MAX:
            reduced = np.full(regions, -np.inf)
            np.maximum.at(reduced, labels, pixels)
        else:
            # Every region holds at least one pixel (label_map rejects slices smaller than the grid).
            reduced = np.bincount(labels, weights=pixels, minlength=regions) / np.bincount(labels, minlength=regions)
        return [
            ScoredRegion(RegionId(scores.case, scores.slice, region), float(reduced[region]))
            for region in range(regions)
        ]

    def score_regions(
        self, slices: Sequence[SliceScores], rng: np.random.Generator | None
    ) -> list[ScoredRegion]:
        """Hook: every region of every slice with its score. Default: :meth:`region_scores` per slice.

        Args:
            slices: the scored slices.
            rng: random source; unused here, for strategies that draw their scores.
        """
        return [scored for slice_scores in slices for scored in self.region_scores(slice_scores)]

    def select(
        self,
        slices: Sequence[SliceScores],
        labelled: AbstractSet[RegionId],
        per_cycle: int,
        regions_per_slice: int = 1,
        rng: np.random.Generator | None = None,
    ) -> list[ScoredRegion]:
        """The regions to ask about this cycle, most uncertain slice first.

        Slices are ranked by their best unlabelled region's score; the top
        ``per_cycle`` slices each give their best ``regions_per_slice``
        unlabelled regions. Equal scores are ordered by :class:`RegionId`, so
        the result is deterministic. Never returns a labelled region or the
        same region twice; returns fewer when not enough unlabelled regions
        (or slices) are left.

        Args:
            slices: scored slices, each ``(case, slice)`` at most once.
            labelled: regions already answered; they are skipped.
            per_cycle: number of slices to query, >= 1.
            regions_per_slice: regions asked per queried slice, >= 1.
            rng: random source, for strategies that need one.

        Returns:
            Up to ``per_cycle * regions_per_slice`` regions, grouped by slice
            in rank order, best region first within a slice.

        Raises:
            ValueError: ``per_cycle`` or ``regions_per_slice`` below 1, or a
                slice given twice.
        """
        _check_count("per_cycle", per_cycle)
        _check_count("regions_per_slice", regions_per_slice)
        _check_unique_slices(slices)
        unlabelled = [scored for scored in self.score_regions(slices, rng) if scored.region not in labelled]
        by_slice = [
            sorted(group, key=_rank_key)
            for _, group in groupby(sorted(unlabelled, key=_slice_of), key=_slice_of)
        ]
        by_slice.sort(key=lambda ranked: _rank_key(ranked[0]))
        return [scored for ranked in by_slice[:per_cycle] for scored in ranked[:regions_per_slice]]


def _rank_key(scored: ScoredRegion) -> tuple[float, RegionId]:
    """Highest score first, then ``RegionId`` order for ties."""
    return (-scored.score, scored.region)


def _slice_of(scored: ScoredRegion) -> tuple[str, str]:
    return (scored.region.case, scored.region.slice)


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _check_unique_slices(slices: Sequence[SliceScores]) -> None:
    keys = [slice_scores.key for slice_scores in slices]
    if len(set(keys)) != len(keys):
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"each slice must be scored once; given more than once: {repeated}")
