"""Region strategies by name: each scores every region of a stack of slices (:class:`Strategy`).

Simple strategies are a pixel measure of MC-dropout samples (:data:`heuristics.MEASURES`, vote entropy among
them) or random draws; a strategy with a model of its own or a pool-level step has its own module named after
it and a line in :data:`STRATEGIES`. Their parameters are one :class:`StrategyParams`.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from covidal.activelearning.strategies.ceal import Ceal
from covidal.activelearning.strategies.cereals import Cereals
from covidal.activelearning.strategies.density import Density
from covidal.activelearning.strategies.heuristics import MEASURES, MeasureStrategy, RandomRegions
from covidal.activelearning.strategies.params import StrategyParams
from covidal.activelearning.strategies.priors import InfectionDensity
from covidal.activelearning.strategies.strategy import PartAnswers, ScoringContext, SliceStack, Strategy
from covidal.activelearning.strategies.suggestive import Suggestive
from covidal.activelearning.strategies.vaal import Vaal


class StrategyName(StrEnum):
    """The region selection strategies a run or a project may choose."""

    RANDOM = "random"
    ENTROPY = "entropy"
    BALD = "bald"
    LEAST_CONFIDENCE = "least-confidence"
    MARGIN = "margin"
    VOTE_ENTROPY = "vote-entropy"
    DENSITY = "density"
    CEAL = "ceal"
    SUGGESTIVE = "suggestive"
    CEREALS = "cereals"
    VAAL = "vaal"


STRATEGIES: dict[StrategyName, Callable[[StrategyParams], Strategy]] = {
    StrategyName.RANDOM: lambda params: RandomRegions(),
    **{
        StrategyName(name): (lambda params, measure=measure: MeasureStrategy(measure))
        for name, measure in MEASURES.items()
    },
    StrategyName.DENSITY: lambda params: Density(params.beta),
    StrategyName.CEAL: lambda params: Ceal(params.delta, params.delta_decay, params.pseudo_weight),
    StrategyName.SUGGESTIVE: lambda params: Suggestive(params.top_k, params.committee, params.head_steps),
    StrategyName.CEREALS: lambda params: Cereals(params.cost_min_answers),
    StrategyName.VAAL: lambda params: Vaal(params.vae_steps, params.crop),
}


def build_strategy(name: StrategyName | str, params: StrategyParams | None = None) -> Strategy:
    """The strategy called ``name``, e.g. ``"entropy"``, with ``params`` (default :class:`StrategyParams`).

    Raises:
        ValueError: an unknown name (listing the known ones), or parameters the strategy cannot use.
    """
    if name not in set(StrategyName):
        raise ValueError(f"unknown selection strategy {name!r}; choose one of: {', '.join(StrategyName)}")
    return STRATEGIES[StrategyName(name)](params or StrategyParams())


__all__ = [
    "STRATEGIES",
    "InfectionDensity",
    "PartAnswers",
    "ScoringContext",
    "SliceStack",
    "Strategy",
    "StrategyName",
    "StrategyParams",
    "build_strategy",
]
