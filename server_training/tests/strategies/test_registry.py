import pytest

from covidal.regions.grid import RegionGrid
from covidal.strategies import (
    STRATEGIES,
    BaldStrategy,
    EntropyStrategy,
    LeastConfidenceStrategy,
    MarginStrategy,
    RandomRegions,
    Reduction,
    StrategyName,
    build_strategy,
)


@pytest.mark.parametrize(
    ("name", "expected_class"),
    [
        ("random", RandomRegions),
        ("entropy", EntropyStrategy),
        ("bald", BaldStrategy),
        ("least-confidence", LeastConfidenceStrategy),
        ("margin", MarginStrategy),
        (StrategyName.BALD, BaldStrategy),
    ],
)
def test_every_name_builds_its_strategy(name, expected_class):
    grid = RegionGrid(16)
    strategy = build_strategy(name, grid, "mean")
    assert type(strategy) is expected_class
    assert strategy.grid is grid
    assert strategy.reduction is Reduction.MEAN


def test_registry_covers_every_name():
    assert set(STRATEGIES) == set(StrategyName)


def test_default_reduction_is_max():
    assert build_strategy("entropy", RegionGrid()).reduction is Reduction.MAX


@pytest.mark.parametrize("name", ["entropie", "least_confidence", "", "RANDOM"])
def test_unknown_name_is_rejected(name):
    with pytest.raises(ValueError, match="unknown selection strategy"):
        build_strategy(name, RegionGrid())


def test_bad_reduction_is_rejected():
    with pytest.raises(ValueError, match="unknown region reduction"):
        build_strategy("entropy", RegionGrid(), "sum")
