"""Region selection strategies for active learning: score pixels, reduce to regions, rank.

Pick one with :func:`build_strategy`; every strategy's :meth:`Strategy.select`
returns the next regions to ask the clinician about.
"""

from covidal.strategies.bald import BaldStrategy
from covidal.strategies.base import Reduction, ScoredRegion, SliceScores, Strategy
from covidal.strategies.entropy import EntropyStrategy
from covidal.strategies.least_confidence import LeastConfidenceStrategy
from covidal.strategies.margin import MarginStrategy
from covidal.strategies.random_regions import RandomRegions
from covidal.strategies.registry import STRATEGIES, StrategyName, build_strategy

__all__ = [
    "STRATEGIES",
    "BaldStrategy",
    "EntropyStrategy",
    "LeastConfidenceStrategy",
    "MarginStrategy",
    "RandomRegions",
    "Reduction",
    "ScoredRegion",
    "SliceScores",
    "Strategy",
    "StrategyName",
    "build_strategy",
]
