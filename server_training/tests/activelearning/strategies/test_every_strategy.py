"""Properties every strategy of the registry keeps in the one query: it never returns an answered or a repeated
region, it fills the cycle from the open regions, the same seed gives the same regions, and bad options are
refused with a message naming them."""

from __future__ import annotations

import numpy as np
import pytest
from strategy_testing import GRID_K, SLICES, images, part, query, tiny_model

from covidal.activelearning.strategies import STRATEGIES, StrategyName, StrategyParams, build_strategy
from covidal.validation import ConfigError

QUICK = StrategyParams(head_steps=3, vae_steps=5, top_k=6, committee=3, cost_min_answers=2)


def answered_regions() -> np.ndarray:
    answered = np.zeros((SLICES, GRID_K), bool)
    answered[0] = True  # a whole slice, as a simulation starts
    answered[2, [1, 3]] = True
    return answered


@pytest.mark.parametrize("name", list(StrategyName))
def test_no_strategy_returns_an_answered_or_repeated_region(name, single_thread_torch):
    answered = answered_regions()
    efforts = np.where(answered, np.arange(SLICES * GRID_K).reshape(SLICES, GRID_K) + 3.0, np.nan)
    parts = [part(images(), answered, efforts), part(images(1), np.zeros_like(answered))]
    chosen = query(build_strategy(name, QUICK), parts, tiny_model())
    places = [(q.part, q.slice, q.region) for q in chosen]
    assert len(places) == 5 and len(set(places)) == 5
    assert not any(part_index == 0 and answered[s, r] for part_index, s, r in places)
    assert all(np.isfinite(q.score) for q in chosen)
    again = query(build_strategy(name, QUICK), parts, tiny_model())  # a fresh strategy, as the service builds it
    assert [(q.part, q.slice, q.region, q.score) for q in again] == [(*p, q.score) for p, q in zip(places, chosen)]


@pytest.mark.parametrize("name", list(StrategyName))
def test_every_strategy_fills_the_cycle_and_stops_at_the_last_open_region(name, single_thread_torch):
    answered = np.ones((SLICES, GRID_K), bool)
    answered[1, 2] = answered[3, 0] = False
    chosen = query(build_strategy(name, QUICK), [part(images(), answered)], tiny_model(), count=5)
    assert sorted((q.slice, q.region) for q in chosen) == [(1, 2), (3, 0)]


def test_the_registry_names_every_strategy_once():
    assert set(STRATEGIES) == set(StrategyName)
    assert (
        len({type(build_strategy(name)) for name in StrategyName}) == 7
    )  # random, the measures (one class), and one class per file for the five others


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"beta": -1}, "beta"),
        ({"delta": 0.5}, "delta"),
        ({"delta": 1.0}, "delta"),
        ({"delta_decay": -0.1}, "delta_decay"),
        ({"pseudo_weight": 0}, "pseudo_weight"),
        ({"top_k": 0}, "top_k"),
        ({"committee": 1}, "committee"),
        ({"head_steps": True}, "head_steps"),
        ({"cost_min_answers": 1}, "cost_min_answers"),
        ({"vae_steps": 0}, "vae_steps"),
        ({"crop": 10}, "crop"),
        ({"crop": 4}, "crop"),
        ({"beta": float("nan")}, "beta"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_strategy_params_are_refused_by_name(values, message):
    with pytest.raises(ConfigError, match=message):
        StrategyParams.from_dict(values)


def test_strategy_params_round_trip_and_default():
    params = StrategyParams(beta=2.0, top_k=7)
    assert StrategyParams.from_dict(params.to_dict()) == params
    assert StrategyParams.from_dict({}) == StrategyParams()
    with pytest.raises(ConfigError, match="JSON object"):
        StrategyParams.from_dict([1])
