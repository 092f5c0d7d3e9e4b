"""``/projects/{p}/volumes/{v}/prediction``: run the project's current model on a volume and download the result
(:mod:`covidal.service.project.predicting`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import FileResponse

from covidal.service.project import predicting
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import CacheDep, LayoutDep, SettingsDep, StoreDep
from covidal.service.schemas import PredictionOut

router = api_router("predictions")
ModelQuery = Annotated[
    predicting.ProjectModel,
    Query(description="'project': the project's own model; '3d': a 2D project's 3D model (its 'clicks-to-3d' jobs')"),
]


@router.post(
    "/projects/{project_id}/volumes/{volume_id}/prediction",
    responses={409: {"description": "the project has no trained model (of that kind) yet"}},
)
def predict(
    project_id: int,
    volume_id: int,
    store: StoreDep,
    settings: SettingsDep,
    layout: LayoutDep,
    cache: CacheDep,
    model: ModelQuery = predicting.ProjectModel.PROJECT,
) -> PredictionOut:
    """Label the volume with the current model inside its lungs (heuristic mask); infected volume (mL) and share
    of each lung."""
    return predicting.predict(store, settings, layout, cache, project_id, volume_id, model)


@router.get(
    "/projects/{project_id}/volumes/{volume_id}/prediction.nrrd",
    response_class=FileResponse,
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "uint8 NRRD on the volume's grid, 1 = infection",
        }
    },
)
def prediction_file(
    project_id: int,
    volume_id: int,
    store: StoreDep,
    layout: LayoutDep,
    model: ModelQuery = predicting.ProjectModel.PROJECT,
) -> FileResponse:
    path = predicting.prediction_file(store, layout, project_id, volume_id, model)
    suffix = "-3d" if model is predicting.ProjectModel.MODEL_3D else ""
    return FileResponse(
        path,
        media_type="application/octet-stream",
        filename=f"prediction-project{project_id}-volume{volume_id}{suffix}.nrrd",
    )
