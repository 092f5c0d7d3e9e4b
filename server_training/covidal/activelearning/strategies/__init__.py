"""Region strategies by name: each scores every region of a stack of slices (:class:`Strategy`).

Simple strategies are a pixel measure of MC-dropout samples (:data:`heuristics.MEASURES`) or random draws; a
strategy with state between cycles gets its own module and a line in :data:`STRATEGIES`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from covidal.activelearning.strategies.heuristics import MEASURES, MeasureStrategy, RandomRegions
from covidal.activelearning.strategies.priors import InfectionDensity
from covidal.activelearning.strategies.strategy import ScoringContext, SliceStack, Strategy


class StrategyName(StrEnum):
    """The region selection strategies a run or a project may choose."""

    RANDOM = "random"
    ENTROPY = "entropy"
    BALD = "bald"
    LEAST_CONFIDENCE = "least-confidence"
    MARGIN = "margin"


STRATEGIES: dict[StrategyName, Callable[[], Strategy]] = {
    StrategyName.RANDOM: RandomRegions,
    **{StrategyName(name): (lambda measure=measure: MeasureStrategy(measure)) for name, measure in MEASURES.items()},
}


def build_strategy(name: StrategyName | str) -> Strategy:
    """The strategy called ``name``, e.g. ``"entropy"``.

    Raises:
        ValueError: an unknown name (listing the known ones).
    """
    if name not in set(StrategyName):
        raise ValueError(f"unknown selection strategy {name!r}; choose one of: {', '.join(StrategyName)}")
    return STRATEGIES[StrategyName(name)]()


__all__ = [
    "STRATEGIES",
    "InfectionDensity",
    "ScoringContext",
    "SliceStack",
    "Strategy",
    "StrategyName",
    "build_strategy",
]
