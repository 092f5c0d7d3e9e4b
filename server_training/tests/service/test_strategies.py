"""``GET /strategies`` on a real server on loopback: the registry's names, the device's default and the options."""

from __future__ import annotations

from covidal.activelearning.strategies import StrategyName, StrategyParams
from covidal.service.defaults import CPU_DEFAULTS


def test_the_service_lists_the_registry_and_a_listed_strategy_is_accepted(service):
    listed = service.client.strategies()
    assert listed["names"] == [name.value for name in StrategyName]
    assert listed["default"] == CPU_DEFAULTS.strategy and listed["default"] in listed["names"]
    assert listed["strategy_params"] == StrategyParams().to_dict()
    project = service.client.create_project("listed", strategy=listed["names"][-1])
    assert project["strategy"] == listed["names"][-1]
