"""Creating a project and changing its settings: every choice checked before it is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from covidal.activelearning.strategies import StrategyName
from covidal.losses.registry import LossName
from covidal.models.kinds import ModelKind
from covidal.regions.grid import RegionGrid
from covidal.service.defaults import ServedDefaults
from covidal.service.project.suggestions import cycle_settings
from covidal.service.store.errors import Invalid
from covidal.service.store.records import Project
from covidal.service.store.store import Store
from covidal.service.volumes import check_plain_name
from covidal.validation import check_choice

PROJECT_CHOICES = ("model_kind", "grid_k", "strategy", "mc_samples", "loss")


def create_project(
    store: Store, name: str, defaults: ServedDefaults, chosen: Mapping[str, Any], settings: Mapping[str, Any]
) -> Project:
    """A new project: the creator's ``chosen`` values (``model_kind``, ``grid_k``, ``strategy``, ``mc_samples``,
    ``loss``), the ``defaults`` for the others; its settings record the defaults' training settings
    (``image_size``, ``width``, ``steps``) that ``settings`` leaves out.

    Raises:
        Invalid: a name with path characters, a grid that is not a perfect square, an unknown strategy or loss,
            bad cycle settings. Conflict: the name is taken.
    """
    name = check_plain_name(name, "project name")
    values = {key: chosen.get(key, getattr(defaults, key)) for key in PROJECT_CHOICES}
    try:
        RegionGrid(values["grid_k"])
    except ValueError as error:
        raise Invalid(f"grid_k: {error}") from None
    check_choice("strategy", values["strategy"], StrategyName, error=Invalid)
    check_choice("loss", values["loss"], LossName, error=Invalid)
    check_choice("model_kind", values["model_kind"], ModelKind, error=Invalid)
    settings = {**defaults.training_settings(), **settings}
    cycle_settings(settings)
    return store.create_project(name, settings=settings, **values)


def update_settings(store: Store, project_id: int, changes: Mapping[str, Any]) -> Project:
    """Merge ``changes`` into the project's settings (top-level keys replaced).

    Raises:
        NotFound: an unknown project. Invalid: bad cycle settings.
    """
    cycle_settings({**store.get_project(project_id).settings, **changes})
    return store.update_project_settings(project_id, changes)
