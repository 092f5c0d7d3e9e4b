"""The one selection rule of a cycle: the best open regions, spread over slices by an optional cap.

Open regions are taken in order of score, highest first (equal scores in a seeded random order), skipping a
region whose slice has already given ``max_per_slice`` regions this cycle. When that leaves the cycle short
of ``count`` (fewer open slices than the cap needs), the skipped regions fill it, still in score order, so a
cycle is short only when the pool has fewer open regions than ``count``. ``max_per_slice=None`` takes the top
``count`` regions wherever they are; ``max_per_slice=1`` asks about ``count`` different slices.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from covidal.validation import check_int

DEFAULT_MAX_PER_SLICE = 1  # chosen by measurement: BENCHMARKS.md, "one region per slice or no cap"


@dataclass(frozen=True)
class SelectionRule:
    """How many regions a cycle asks about, and how many of them one slice may give.

    Attributes:
        count: regions per cycle, >= 1.
        max_per_slice: at most this many regions of one slice while other open slices can fill the cycle
            (>= 1), or None for no cap.

    Raises:
        ConfigError: a value that is not an integer >= 1.
    """

    count: int
    max_per_slice: int | None = DEFAULT_MAX_PER_SLICE

    def __post_init__(self) -> None:
        check_int("count", self.count, minimum=1)
        if self.max_per_slice is not None:
            check_int("max_per_slice", self.max_per_slice, minimum=1)


def select_regions(scores: np.ndarray, open_regions: np.ndarray, rule: SelectionRule, tie_seed: int) -> np.ndarray:
    """int64 ``[M, 2]`` ``(slice, region)`` rows, best first, ``M = min(count, open regions)``.

    Args:
        scores: ``[N, R]`` region scores (higher = asked first); finite wherever ``open_regions`` is True.
        open_regions: ``[N, R]`` bool, the regions that may be asked (not answered yet).
        rule: how many, and how spread.
        tie_seed: seeds the order of equal scores: a random permutation of all ``N * R`` regions, so a
            region's place among equals does not depend on which others are open.

    Raises:
        ValueError: shapes that differ, or an open region whose score is NaN or infinite.
    """
    if scores.shape != open_regions.shape or scores.ndim != 2:
        raise ValueError(f"scores {scores.shape} and open regions {open_regions.shape} must be the same [N, R]")
    candidates = np.flatnonzero(open_regions.ravel())
    values = scores.ravel()[candidates]
    if not np.all(np.isfinite(values)):
        raise ValueError("region scores must be finite for every open region")
    ties = np.random.default_rng(tie_seed).permutation(scores.size)[candidates]
    ordered = candidates[np.lexsort((ties, -values))]
    chosen = ordered[: rule.count] if rule.max_per_slice is None else _capped(ordered, scores.shape[1], rule)
    return np.stack(np.divmod(np.asarray(chosen, dtype=np.int64), scores.shape[1]), axis=1)


def _capped(ordered: np.ndarray, regions: int, rule: SelectionRule) -> list[int]:
    """The first ``count`` of ``ordered`` (flat indices) with at most ``max_per_slice`` per slice, then the
    skipped ones in order when the cap leaves the cycle short."""
    taken: dict[int, int] = {}
    first: list[int] = []
    skipped: list[int] = []
    for flat in ordered.tolist():
        slice_index = flat // regions
        if taken.get(slice_index, 0) < rule.max_per_slice:
            taken[slice_index] = taken.get(slice_index, 0) + 1
            first.append(flat)
            if len(first) == rule.count:
                return first
        else:
            skipped.append(flat)
    return (first + skipped)[: rule.count]
