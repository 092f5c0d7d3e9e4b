"""The lungs found on an in-plane subsample against those found at full resolution (``covidal bench-lungs``).

:func:`covidal.volumes.lungs.find_lungs` finds the lungs of a fine CT on every ``step``-th row and column; this
measures what that costs in quality and saves in time on given CTs (:func:`compare_lungs`), and whether the
first cycle's prior, which ranks regions inside the aerated lungs, finds as much infection with the subsampled
lungs (:func:`first_cycle_hits`, on the demo's cases, whose lesions are known).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from covidal.activelearning.query import PoolPart, QueryOptions, cycle_seed, query_regions
from covidal.activelearning.selection import DEFAULT_MAX_PER_SLICE, SelectionRule
from covidal.activelearning.strategies import InfectionDensity, SliceStack
from covidal.data.volume import Volume
from covidal.regions.grid import RegionGrid
from covidal.volumes.lungs import LEFT, RIGHT, Lungs, find_lungs, lungs_only


@dataclass(frozen=True)
class LungsComparison:
    """One CT's lungs at full resolution (step 1) and on its subsample (``step``).

    Attributes:
        name: the CT, as the user named it.
        shape: ``(K, J, I)`` voxels.
        spacing: ``(i, j, k)`` mm.
        step: the subsampling compared.
        full_s, subsampled_s: seconds :func:`find_lungs` took at step 1 and at ``step``.
        dice: Dice of the subsampled mask against the full one, for ``aerated``, ``filled`` (both lungs),
            ``right`` and ``left``.
        aerated_ml: aerated lung volume in mL at step 1 and at ``step``.
    """

    name: str
    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    step: int
    full_s: float
    subsampled_s: float
    dice: dict[str, float]
    aerated_ml: tuple[float, float]


def compare_lungs(ct: Volume, name: str, step: int) -> LungsComparison:
    """Find the lungs of ``ct`` at step 1 and at ``step``, timed, and compare the masks.

    Raises:
        CovidalError: as :func:`find_lungs` (e.g. no lungs in the CT).
    """
    (full, full_s), (coarse, coarse_s) = (_timed_lungs(ct, s) for s in (1, step))
    masks = {
        "aerated": (full.aerated, coarse.aerated),
        "filled": (full.filled > 0, coarse.filled > 0),
        "right": (full.filled == RIGHT, coarse.filled == RIGHT),
        "left": (full.filled == LEFT, coarse.filled == LEFT),
    }
    return LungsComparison(
        name,
        tuple(np.shape(ct.array)),
        ct.spacing,
        step,
        full_s,
        coarse_s,
        {key: dice(*pair) for key, pair in masks.items()},
        (_ml(full.aerated, full), _ml(coarse.aerated, coarse)),
    )


def first_cycle_hits(ct: Volume, lesions: np.ndarray, lungs: Lungs, grid_k: int, count: int) -> int:
    """How many of the first cycle's ``count`` regions hold a lesion voxel, ranked as the service ranks a project's
    first cycle (seed 0): :class:`InfectionDensity` inside the aerated ``lungs``, at most
    ``DEFAULT_MAX_PER_SLICE`` regions per slice, ``grid_k`` regions per slice.

    Args:
        ct: CT in HU, ``[K, J, I]``.
        lesions: bool ``[K, J, I]``, the true lesions.
        lungs: the CT's lungs (:func:`find_lungs`).
    """
    grid = RegionGrid(grid_k)
    hu = lungs_only(ct, lungs.aerated)
    slices = len(hu)
    stack = SliceStack((hu.shape[1:],) * slices, lambda: None, lambda: hu)
    part = PoolPart(stack, np.ones((slices, grid.regions), dtype=bool))
    options = QueryOptions(grid, SelectionRule(count, DEFAULT_MAX_PER_SLICE), samples=1)
    boxes = grid.boxes(hu.shape[1:])
    chosen = query_regions([part], InfectionDensity(), None, options, cycle_seed(0, 1))
    return sum(
        bool(
            lesions[
                q.slice, boxes[q.region].row0 : boxes[q.region].row1, boxes[q.region].col0 : boxes[q.region].col1
            ].any()
        )
        for q in chosen
    )


def dice(first: np.ndarray, second: np.ndarray) -> float:
    """Dice of two bool masks of one shape (1.0 when both are empty)."""
    total = int(np.count_nonzero(first)) + int(np.count_nonzero(second))
    return 2.0 * int(np.count_nonzero(first & second)) / total if total else 1.0


def _timed_lungs(ct: Volume, step: int) -> tuple[Lungs, float]:
    started = time.perf_counter()
    lungs = find_lungs(ct, step)
    return lungs, time.perf_counter() - started


def _ml(mask: np.ndarray, lungs: Lungs) -> float:
    return float(np.count_nonzero(mask)) * lungs.voxel_ml
