"""``/projects``: create, list, read a project and change its settings (:mod:`covidal.service.project.creation`)."""

from __future__ import annotations

from typing import Any

from covidal.service.project import creation
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import StoreDep
from covidal.service.schemas import ProjectCreate, ProjectOut

router = api_router("projects")


@router.post("/projects", status_code=201)
def create_project(body: ProjectCreate, store: StoreDep) -> ProjectOut:
    """A new project (409 if the name is taken)."""
    return ProjectOut.model_validate(
        creation.create_project(
            store,
            body.name,
            body.model_kind.value,
            body.grid_k,
            body.strategy,
            body.mc_samples,
            body.loss,
            body.settings,
        )
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
