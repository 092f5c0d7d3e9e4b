"""Selection strategies by name."""

from __future__ import annotations

from enum import StrEnum

from covidal.regions.grid import RegionGrid
from covidal.strategies.bald import BaldStrategy
from covidal.strategies.base import Reduction, Strategy
from covidal.strategies.entropy import EntropyStrategy
from covidal.strategies.least_confidence import LeastConfidenceStrategy
from covidal.strategies.margin import MarginStrategy
from covidal.strategies.random_regions import RandomRegions


class StrategyName(StrEnum):
    """The region selection strategies compared."""

    RANDOM = "random"
    ENTROPY = "entropy"
    BALD = "bald"
    LEAST_CONFIDENCE = "least-confidence"
    MARGIN = "margin"


STRATEGIES: dict[StrategyName, type[Strategy]] = {
    StrategyName.RANDOM: RandomRegions,
    StrategyName.ENTROPY: EntropyStrategy,
    StrategyName.BALD: BaldStrategy,
    StrategyName.LEAST_CONFIDENCE: LeastConfidenceStrategy,
    StrategyName.MARGIN: MarginStrategy,
}


def build_strategy(
    name: StrategyName | str, grid: RegionGrid, reduction: Reduction | str = Reduction.MAX
) -> Strategy:
    """The strategy called ``name``.

    Args:
        name: a :class:`StrategyName` or its string value, e.g. ``"entropy"``.
        grid: how slices are cut into regions.
        reduction: region score = max or mean of its pixel scores.

    Raises:
        ValueError: unknown ``name`` or ``reduction``.
    """
    if name not in set(StrategyName):
        choices = ", ".join(StrategyName)
        raise ValueError(f"unknown selection strategy {name!r}; choose one of: {choices}")
    return STRATEGIES[StrategyName(name)](grid, reduction)
