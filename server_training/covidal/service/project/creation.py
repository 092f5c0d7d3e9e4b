"""Creating a project and changing its settings: every choice checked before it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covidal.activelearning.strategies import StrategyName
from covidal.losses.registry import LossName
from covidal.regions.grid import RegionGrid
from covidal.service.project.suggestions import cycle_settings
from covidal.service.store.errors import Invalid
from covidal.service.store.records import Project
from covidal.service.store.store import Store
from covidal.service.volumes import check_plain_name
from covidal.validation import check_choice


def create_project(
    store: Store,
    name: str,
    model_kind: str,
    grid_k: int,
    strategy: str,
    mc_samples: int,
    loss: str,
    settings: Mapping[str, Any],
) -> Project:
    """A new project.

    Raises:
        Invalid: a name with path characters, a grid that is not a perfect square, an unknown strategy or loss,
            bad cycle settings. Conflict: the name is taken.
    """
    name = check_plain_name(name, "project name")
    try:
        RegionGrid(grid_k)
    except ValueError as error:
        raise Invalid(f"grid_k: {error}") from None
    check_choice("strategy", strategy, StrategyName, error=Invalid)
    check_choice("loss", loss, LossName, error=Invalid)
    cycle_settings(settings)
    return store.create_project(
        name,
        model_kind=model_kind,
        grid_k=grid_k,
        strategy=strategy,
        mc_samples=mc_samples,
        loss=loss,
        settings=settings,
    )


def update_settings(store: Store, project_id: int, changes: Mapping[str, Any]) -> Project:
    """Merge ``changes`` into the project's settings (top-level keys replaced).

    Raises:
        NotFound: an unknown project. Invalid: bad cycle settings.
    """
    cycle_settings({**store.get_project(project_id).settings, **changes})
    return store.update_project_settings(project_id, changes)
