"""``/projects/{p}/volumes/{v}/prediction``: run the project's current model on a volume.

A 2D model labels the volume slice by slice; a ``unet3d`` project's 3D model by a
sliding window on its training grid, mapped back onto the volume's grid. The label
volume (uint8, 1 = infection) is stored as NRRD with the volume's exact geometry
under ``<project_dir>/predictions/<project>/<volume>.nrrd`` and replaced by the next
prediction.
"""

from __future__ import annotations

from pathlib import Path

from fastapi.responses import FileResponse

from covidal.data.io import write_volume
from covidal.service.jobs.annotations import read_project_volume
from covidal.service.jobs.config import current_model_path
from covidal.service.routes.base import api_router
from covidal.service.routes.deps import SettingsDep, StoreDep
from covidal.service.schemas import ModelKind, PredictionOut
from covidal.service.store.errors import Conflict, NotFound

router = api_router("predictions")


def prediction_path(project_dir: Path, project_id: int, volume_id: int) -> Path:
    return Path(project_dir) / "predictions" / str(int(project_id)) / f"{int(volume_id)}.nrrd"


@router.post("/projects/{project_id}/volumes/{volume_id}/prediction",
             responses={409: {"description": "the project has no trained model yet"}})
def predict(project_id: int, volume_id: int, store: StoreDep, settings: SettingsDep) -> PredictionOut:
    """Label the volume with the current model; infected volume (mL) and share of the lungs (heuristic mask)."""
    project = store.get_project(project_id)
    record = store.get_volume(project_id, volume_id)
    model_path = current_model_path(settings.project_dir, project_id)
    if not model_path.is_file():
        raise Conflict(f"project {project_id} has no trained model yet: run a training job to the end first")
    from covidal.service import modeling  # torch loads only when a model runs

    if project.model_kind == ModelKind.UNET3D:
        from covidal.service import modeling3d

        labels, volume = modeling3d.predict_volume(model_path, settings.device, store, record)
    else:
        volume = read_project_volume(store, record)
        labels = volume.with_array(modeling.predict_labels(modeling.load_model(model_path, settings.device), volume))
    write_volume(labels, prediction_path(settings.project_dir, project_id, volume_id))
    stats = modeling.prediction_stats(labels.array, volume)
    return PredictionOut(volume_id=volume_id, voxels=stats.voxels, infected_ml=stats.infected_ml,
                         lung_percent=stats.lung_percent, lung_ml=stats.lung_ml)


@router.get("/projects/{project_id}/volumes/{volume_id}/prediction.nrrd", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "uint8 NRRD on the volume's grid, 1 = infection"}})
def prediction_file(project_id: int, volume_id: int, store: StoreDep, settings: SettingsDep) -> FileResponse:
    store.get_volume(project_id, volume_id)
    path = prediction_path(settings.project_dir, project_id, volume_id)
    if not path.is_file():
        raise NotFound(f"volume {volume_id} has no prediction yet: POST .../volumes/{volume_id}/prediction first")
    return FileResponse(path, media_type="application/octet-stream",
                        filename=f"prediction-project{project_id}-volume{volume_id}.nrrd")
