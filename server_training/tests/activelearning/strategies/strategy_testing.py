"""Small pools for the strategy tests: a tiny model, slices, answers, and a query over all of it."""

from __future__ import annotations

import numpy as np
import torch

from covidal.activelearning.query import PoolPart, QueryOptions, query_regions
from covidal.activelearning.selection import SelectionRule
from covidal.activelearning.strategies import PartAnswers, SliceStack
from covidal.activelearning.strategies.strategy import PoolScratch, ScoringContext
from covidal.models.slices.build import ModelConfig, build_model
from covidal.regions.grid import RegionGrid

SIZE, SLICES, GRID_K = 32, 4, 4


def tiny_model(seed: int = 0):
    torch.manual_seed(seed)
    return build_model(ModelConfig(width=8, dropout=0.5))


def images(seed: int = 0) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal((SLICES, 1, SIZE, SIZE), dtype=np.float32))


def answers(answered: np.ndarray, efforts: np.ndarray | None = None) -> PartAnswers:
    """Answers of the ``[N, R]`` ``answered`` regions: background tags of ``efforts`` seconds (default 3 s), as
    label maps of the network grid (each region a 16 x 16 quarter of the 32 x 32 slice)."""
    seconds = np.where(answered, 3.0 if efforts is None else efforts, np.nan)

    def label_maps(size: int) -> np.ndarray:
        maps = np.full((len(answered), size, size), -1, np.int64)
        half = size // 2
        for n, r in zip(*np.nonzero(answered), strict=True):
            row, col = divmod(int(r), 2)
            maps[n, row * half : (row + 1) * half, col * half : (col + 1) * half] = 0
        maps[:, 0, 0] = np.where(answered.any(axis=1), 1, -1)  # one infection click on each answered slice
        return maps

    return PartAnswers(seconds, label_maps)


def part(pool_images: torch.Tensor, answered: np.ndarray, efforts=None) -> PoolPart:
    stack = SliceStack(((SIZE, SIZE),) * len(pool_images), lambda: pool_images)
    return PoolPart(stack, ~answered, answers(answered, efforts))


def query(strategy, parts, model, count: int = 5, seed: int = 3, cap: int | None = 1):
    options = QueryOptions(RegionGrid(GRID_K), SelectionRule(count, cap), samples=4)
    return query_regions(parts, strategy, model, options, seed)


def scratch_context(open_regions: np.ndarray, pool: PoolScratch, part_index: int = 0, model=None, answered=None):
    """A scoring context of one part, with ``pool`` as the query's notes."""
    return ScoringContext(
        RegionGrid(GRID_K),
        model,
        4,
        7,
        open_regions.any(axis=1),
        open_regions=open_regions,
        answers=None if answered is None else answers(answered),
        part=part_index,
        pool=pool,
    )
