"""``/projects/{p}/cycles``: open a suggestion cycle (:func:`covidal.service.project.suggestions.open_cycle`),
lease its regions to annotators, and a score heat map per volume."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, Response

from covidal.service.project.suggestions import heatmap_nrrd, open_cycle
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import CacheDep, SettingsDep, StoreDep
from covidal.service.schemas import (
    CycleCreate,
    CycleOut,
    SuggestionOut,
    cycle_out,
)

router = api_router("cycles")


@router.post("/projects/{project_id}/cycles", status_code=201)
def create_cycle(
    project_id: int, body: CycleCreate, store: StoreDep, settings: SettingsDep, cache: CacheDep
) -> CycleOut:
    """Score the pool and open a new cycle with the ``count`` best regions (earlier cycles close)."""
    cycle = open_cycle(store, settings, cache, project_id, body.volume_ids, body.count)
    return cycle_out(cycle, store.list_suggestions(project_id, cycle.id))


@router.get("/projects/{project_id}/cycles")
def list_cycles(project_id: int, store: StoreDep) -> list[CycleOut]:
    return [cycle_out(cycle, store.list_suggestions(project_id, cycle.id)) for cycle in store.list_cycles(project_id)]


@router.get("/projects/{project_id}/cycles/{cycle_id}")
def get_cycle(project_id: int, cycle_id: int, store: StoreDep) -> CycleOut:
    """The cycle and all its suggestions (with their leases), without leasing anything."""
    return cycle_out(store.get_cycle(project_id, cycle_id), store.list_suggestions(project_id, cycle_id))


@router.get("/projects/{project_id}/cycles/{cycle_id}/suggestions")
def lease_suggestions(
    project_id: int,
    cycle_id: int,
    store: StoreDep,
    settings: SettingsDep,
    annotator: Annotated[str, Query(min_length=1, max_length=100)],
    limit: Annotated[int, Query(ge=1, le=1000)] = 5,
) -> list[SuggestionOut]:
    """Lease up to ``limit`` unanswered regions to ``annotator`` (never a region another annotator holds)."""
    leased = store.lease_suggestions(project_id, cycle_id, annotator, limit=limit, lease_seconds=settings.lease_seconds)
    return [SuggestionOut.model_validate(suggestion) for suggestion in leased]


@router.get(
    "/projects/{project_id}/cycles/{cycle_id}/heatmap/{volume_id}",
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "float32 NRRD on the volume's grid: each suggested region's score",
        }
    },
)
def heatmap(project_id: int, cycle_id: int, volume_id: int, store: StoreDep) -> Response:
    """An NRRD with the volume's exact geometry holding each suggested region's score over its box (0 elsewhere)."""
    content, filename = heatmap_nrrd(store, project_id, cycle_id, volume_id)
    return Response(
        content,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
