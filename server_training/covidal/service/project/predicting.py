"""A project's predictions: its current model (2D slice by slice, or the 3D model by a sliding window) run on
one of its volumes, stored as a uint8 NRRD (1 = infection) with the volume's exact geometry, replacing the
volume's previous prediction; and the infected volume it holds."""

from __future__ import annotations

from pathlib import Path

from covidal.data.io import write_volume
from covidal.models.kinds import ModelKind
from covidal.service.jobs.training_data import read_project_volume
from covidal.service.project.layout import ProjectLayout
from covidal.service.schemas import PredictionOut
from covidal.service.settings import ServiceSettings
from covidal.service.store.errors import Conflict, NotFound
from covidal.service.store.store import Store


def predict(
    store: Store, settings: ServiceSettings, layout: ProjectLayout, project_id: int, volume_id: int
) -> PredictionOut:
    """Label the volume with the project's current model and store the labels.

    Raises:
        NotFound: an unknown project or volume. Conflict: the project has no trained model yet.
        CovidalError: the model or the volume cannot be read.
    """
    project = store.get_project(project_id)
    record = store.get_volume(project_id, volume_id)
    model_path = layout.current_model(project_id)
    if not model_path.is_file():
        raise Conflict(f"project {project_id} has no trained model yet: run a training job to the end first")
    from covidal.service.project.models import slices  # torch loads only when a model runs

    if ModelKind(project.model_kind).dims == 3:
        from covidal.service.project.models import volumes

        labels, volume = volumes.predict_volume(model_path, settings.device, store, record)
    else:
        volume = read_project_volume(store, record)
        labels = volume.with_array(slices.predict_labels(slices.load_model(model_path, settings.device), volume))
    write_volume(labels, layout.prediction(project_id, volume_id))
    stats = slices.prediction_stats(labels.array, volume)
    return PredictionOut(
        volume_id=volume_id,
        voxels=stats.voxels,
        infected_ml=stats.infected_ml,
        lung_percent=stats.lung_percent,
        lung_ml=stats.lung_ml,
    )


def prediction_file(store: Store, layout: ProjectLayout, project_id: int, volume_id: int) -> Path:
    """The stored prediction of the volume.

    Raises:
        NotFound: an unknown project or volume, or no prediction yet.
    """
    store.get_volume(project_id, volume_id)
    path = layout.prediction(project_id, volume_id)
    if not path.is_file():
        raise NotFound(f"volume {volume_id} has no prediction yet: POST .../volumes/{volume_id}/prediction first")
    return path
