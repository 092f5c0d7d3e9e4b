"""``/projects/{p}/cycles``: open a suggestion cycle (:func:`covidal.service.project.suggestions.open_cycle`),
lease its regions to annotators, and a score heat map per volume."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import SimpleITK as sitk
from fastapi import APIRouter, Query, Response

from covidal.service.project.suggestions import open_cycle
from covidal.service.routes.deps import CacheDep, SettingsDep, StoreDep
from covidal.service.schemas import (
    CycleCreate,
    CycleOut,
    SuggestionOut,
    cycle_out,
    suggestion_out,
)
from covidal.service.store import records

router = APIRouter(tags=["cycles"])


@router.post("/projects/{project_id}/cycles", status_code=201)
def create_cycle(project_id: int, body: CycleCreate, store: StoreDep, settings: SettingsDep,
                 cache: CacheDep) -> CycleOut:
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
def lease_suggestions(project_id: int, cycle_id: int, store: StoreDep, settings: SettingsDep,
                      annotator: Annotated[str, Query(min_length=1, max_length=100)],
                      limit: Annotated[int, Query(ge=1, le=1000)] = 5) -> list[SuggestionOut]:
    """Lease up to ``limit`` unanswered regions to ``annotator`` (never a region another annotator holds)."""
    leased = store.lease_suggestions(project_id, cycle_id, annotator, limit=limit,
                                     lease_seconds=settings.lease_seconds)
    return [suggestion_out(suggestion) for suggestion in leased]


@router.get("/projects/{project_id}/cycles/{cycle_id}/heatmap/{volume_id}",
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "float32 NRRD on the volume's grid: each suggested region's score"}})
def heatmap(project_id: int, cycle_id: int, volume_id: int, store: StoreDep) -> Response:
    """An NRRD with the volume's exact geometry holding each suggested region's score over its box (0 elsewhere)."""
    cycle = store.get_cycle(project_id, cycle_id)
    volume = store.get_volume(project_id, volume_id)
    suggestions = [s for s in store.list_suggestions(project_id, cycle_id) if s.volume_id == volume_id]
    content = _nrrd_bytes(heatmap_image(volume.geometry, suggestions))
    filename = f"heatmap-cycle{cycle.number}-volume{volume_id}.nrrd"
    return Response(content, media_type="application/octet-stream",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


def heatmap_image(geometry: records.VolumeGeometry, suggestions: list[records.Suggestion]) -> sitk.Image:
    """float32 image on ``geometry`` with ``score`` over each suggestion's box of its slice, 0 elsewhere."""
    di, dj, dk = geometry.dims
    scores = np.zeros((dk, dj, di), dtype=np.float32)
    for suggestion in suggestions:
        box = suggestion.box
        scores[suggestion.k, box.j0:box.j1, box.i0:box.i1] = suggestion.score
    image = sitk.GetImageFromArray(scores)
    image.SetSpacing(geometry.spacing)
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


def _nrrd_bytes(image: sitk.Image) -> bytes:
    with tempfile.TemporaryDirectory(prefix="covidal-heatmap-") as folder:
        path = Path(folder) / "heatmap.nrrd"
        sitk.WriteImage(image, str(path), True)
        return path.read_bytes()
