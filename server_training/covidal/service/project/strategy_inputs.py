"""What a project's strategy learns from besides the volumes: its parameters (the ``strategy_params`` setting)
and each volume's answers with their recorded effort, as :class:`~covidal.activelearning.strategies.PartAnswers`
(the same inputs a simulation gives its strategy)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from covidal.activelearning.strategies import PartAnswers, StrategyParams
from covidal.annotation.state import AnnotationState
from covidal.data.points import IGNORE_INDEX
from covidal.regions.grid import RegionGrid
from covidal.service.jobs.training_data import AnsweredRegion, region_label


def strategy_params(project_settings: Mapping[str, Any]) -> StrategyParams:
    """The project's ``strategy_params`` setting (an object of :class:`StrategyParams` fields; default all
    defaults).

    Raises:
        ConfigError: not an object, an unknown key or a value out of range (named).
    """
    return StrategyParams.from_dict(project_settings.get("strategy_params") or {})


def volume_answers(
    volume_id: int, slices: int, shape: tuple[int, int], grid: RegionGrid, answered: Sequence[AnsweredRegion]
) -> PartAnswers:
    """The answers of volume ``volume_id`` (``slices`` axial slices of ``shape`` ``(J, I)``) among ``answered``:
    each answered region's effort seconds, and label maps as a training job builds them (all of a background
    region, the clicked points of an infection one)."""
    mine = [answer for answer in answered if answer.volume_id == volume_id and answer.k < slices]
    efforts = np.full((slices, grid.regions), np.nan)
    for answer in mine:
        efforts[answer.k, answer.region] = answer.effort_seconds
    keys = {answer.k: (str(volume_id), f"{volume_id}:{answer.k}") for answer in mine}

    def label_maps(size: int) -> np.ndarray:
        state = AnnotationState(grid, dict.fromkeys(keys.values(), shape))
        state.add_many(region_label(answer) for answer in mine)
        maps = np.full((slices, size, size), IGNORE_INDEX, dtype=np.int64)
        for k, key in keys.items():
            maps[k] = state.label_map_on_grid(key, size)
        return maps

    return PartAnswers(efforts, label_maps)
