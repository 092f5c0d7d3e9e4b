"""``/projects``: create, list, read a project and change its settings (:mod:`covidal.service.project.creation`);
``/defaults`` and ``/strategies``: what a creator may leave out or choose."""

from __future__ import annotations

from typing import Any

from covidal.activelearning.strategies import StrategyName, StrategyParams
from covidal.service.defaults import served_defaults
from covidal.service.project import creation
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import SettingsDep, StoreDep
from covidal.service.schemas import DefaultsOut, ProjectCreate, ProjectOut, StrategiesOut

router = api_router("projects")


@router.get("/defaults")
def get_defaults(settings: SettingsDep) -> DefaultsOut:
    """What a project created on this service gets for the choices its creator leaves out."""
    return DefaultsOut(device=settings.device, **served_defaults(settings.device).to_dict())


@router.get("/strategies")
def get_strategies(settings: SettingsDep) -> StrategiesOut:
    """The region strategies a project may choose, this device's default, and the strategies' options."""
    return StrategiesOut(
        names=list(StrategyName),
        default=served_defaults(settings.device).strategy,
        strategy_params=StrategyParams().to_dict(),
    )


@router.post("/projects", status_code=201)
def create_project(body: ProjectCreate, store: StoreDep, settings: SettingsDep) -> ProjectOut:
    """A new project (409 if the name is taken); left-out choices take the device's defaults."""
    chosen = body.model_dump(mode="json", exclude={"name", "settings"}, exclude_none=True)
    return ProjectOut.model_validate(
        creation.create_project(store, body.name, served_defaults(settings.device), chosen, body.settings)
    )


@router.get("/projects")
def list_projects(store: StoreDep) -> list[ProjectOut]:
    return [ProjectOut.model_validate(project) for project in store.list_projects()]


@router.get("/projects/{project_id}")
def get_project(project_id: int, store: StoreDep) -> ProjectOut:
    return ProjectOut.model_validate(store.get_project(project_id))


@router.patch("/projects/{project_id}/settings")
def update_settings(project_id: int, changes: dict[str, Any], store: StoreDep) -> ProjectOut:
    """Merge ``changes`` into the project's settings (top-level keys replaced)."""
    return ProjectOut.model_validate(creation.update_settings(store, project_id, changes))
