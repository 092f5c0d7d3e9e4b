"""``/projects``: create, list, read a project and change its settings."""

from __future__ import annotations

from typing import Any

from covidal.losses.registry import LossName
from covidal.regions.grid import RegionGrid
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import StoreDep
from covidal.service.schemas import ProjectCreate, ProjectOut, project_out
from covidal.service.store.errors import Invalid
from covidal.service.volumes import check_plain_name
from covidal.strategies.registry import StrategyName

router = api_router("projects")


@router.post("/projects", status_code=201)
def create_project(body: ProjectCreate, store: StoreDep) -> ProjectOut:
    """A new project (409 if the name is taken)."""
    name = check_plain_name(body.name, "project name")
    try:
        RegionGrid(body.grid_k)
    except ValueError as error:
        raise Invalid(f"grid_k: {error}") from None
    _check_choice(body.strategy, StrategyName, "strategy")
    _check_choice(body.loss, LossName, "loss")
    project = store.create_project(name, model_kind=body.model_kind.value, grid_k=body.grid_k,
                                   strategy=body.strategy, mc_samples=body.mc_samples, loss=body.loss,
                                   settings=body.settings)
    return project_out(project)


@router.get("/projects")
def list_projects(store: StoreDep) -> list[ProjectOut]:
    return [project_out(project) for project in store.list_projects()]


@router.get("/projects/{project_id}")
def get_project(project_id: int, store: StoreDep) -> ProjectOut:
    return project_out(store.get_project(project_id))


@router.patch("/projects/{project_id}/settings")
def update_settings(project_id: int, changes: dict[str, Any], store: StoreDep) -> ProjectOut:
    """Merge ``changes`` into the project's settings (top-level keys replaced)."""
    return project_out(store.update_project_settings(project_id, changes))


def _check_choice(value: str, choices: type, field: str) -> None:
    if value not in {choice.value for choice in choices}:
        allowed = ", ".join(choice.value for choice in choices)
        raise Invalid(f"{field} must be one of {allowed}; got {value!r}")
