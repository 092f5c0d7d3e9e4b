"""A project's predictions: its current model (2D slice by slice, or the 3D model by a sliding window) run on
one of its volumes, stored as a uint8 NRRD (1 = infection) with the volume's exact geometry, replacing the
volume's previous prediction; and the infected volume it holds.

Both 2D and 3D predictions are restricted to the volume's filled lungs (:mod:`covidal.service.project.lungs`),
so air outside the body and the soft tissue around the chest never count as infection, and the infected mL and
the share of each lung are measured inside them. A volume without lungs found (not a chest CT in HU) keeps its
prediction unrestricted, says so, and has no lung figures."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import numpy as np

from covidal.data.io import write_volume
from covidal.data.volume import Volume
from covidal.models.kinds import ModelKind
from covidal.service.cache import ServiceCache, VolumeKey
from covidal.service.jobs.training_data import read_project_volume
from covidal.service.project.layout import ProjectLayout
from covidal.service.project.lungs import NoLungs, volume_lungs
from covidal.service.schemas import PredictionOut
from covidal.service.settings import ServiceSettings
from covidal.service.store.errors import Conflict, NotFound
from covidal.service.store.store import Store
from covidal.volumes.lungs import Lungs, involvement, restrict_to_lungs


class ProjectModel(StrEnum):
    """Which of a project's models predicts: its own (2D or 3D by its model kind), or a 2D project's 3D model."""

    PROJECT = "project"
    MODEL_3D = "3d"


def predict(
    store: Store,
    settings: ServiceSettings,
    layout: ProjectLayout,
    cache: ServiceCache,
    project_id: int,
    volume_id: int,
    model: ProjectModel = ProjectModel.PROJECT,
) -> PredictionOut:
    """Label the volume with one of the project's models, restricted to its lungs, and store the labels.

    Raises:
        NotFound: an unknown project or volume. Conflict: the project has no trained model of that kind yet.
        CovidalError: the model or the volume cannot be read.
    """
    project = store.get_project(project_id)
    record = store.get_volume(project_id, volume_id)
    model_path, model_3d = _model_file(layout, project_id, ModelKind(project.model_kind), model)
    key = VolumeKey(record.id, record.sha256)
    volume = cache.volume(key, lambda: read_project_volume(store, record))
    from covidal.service.project.models import slices  # torch loads only when a model runs

    if model_3d:
        from covidal.service.project.models import volumes

        labels, _ = volumes.predict_volume(model_path, settings.device, store, record)
        array = labels.array
    else:
        array = slices.predict_labels(slices.load_model(model_path, settings.device), volume)
    lungs = volume_lungs(cache, key, volume)
    if not isinstance(lungs, NoLungs):
        array = restrict_to_lungs(array, lungs)
    write_volume(volume.with_array(array), layout.prediction(project_id, volume_id, _own_3d(project.model_kind, model)))
    return _prediction_out(volume_id, array, volume, lungs)


def _own_3d(model_kind: str, model: ProjectModel) -> bool:
    """Whether ``model`` is a 2D project's 3D model (kept apart from the project's own model and predictions)."""
    return model is ProjectModel.MODEL_3D and ModelKind(model_kind).dims == 2


def _model_file(layout: ProjectLayout, project_id: int, kind: ModelKind, model: ProjectModel) -> tuple[Path, bool]:
    """The file of the chosen model and whether it is a 3D network.

    Raises:
        Conflict: the model is not trained yet.
    """
    if _own_3d(kind.value, model):
        path = layout.current_model_3d(project_id)
        if not path.is_file():
            raise Conflict(f"project {project_id} has no 3D model yet: run a 'clicks-to-3d' job to the end first")
        return path, True
    path = layout.current_model(project_id)
    if not path.is_file():
        raise Conflict(f"project {project_id} has no trained model yet: run a training job to the end first")
    return path, kind.dims == 3


def _prediction_out(volume_id: int, labels: np.ndarray, volume: Volume, lungs: Lungs | NoLungs) -> PredictionOut:
    """The figures of a stored prediction ``labels`` ``[K, J, I]`` of ``volume``."""
    infected = labels.astype(bool)
    voxels = int(np.count_nonzero(infected))
    if isinstance(lungs, NoLungs):
        voxel_ml = float(np.prod(volume.spacing)) / 1000.0
        return PredictionOut(volume_id=volume_id, voxels=voxels, infected_ml=voxels * voxel_ml, lungs=lungs.reason)
    measured = involvement(infected, lungs)
    return PredictionOut(
        volume_id=volume_id,
        voxels=voxels,
        infected_ml=measured.infected_ml,
        lungs="restricted to the lungs",
        lung_ml=measured.lung_ml,
        lung_percent=measured.percent,
        right_lung_percent=measured.right_percent,
        left_lung_percent=measured.left_percent,
    )


def prediction_file(
    store: Store, layout: ProjectLayout, project_id: int, volume_id: int, model: ProjectModel = ProjectModel.PROJECT
) -> Path:
    """The stored prediction of the volume by ``model``.

    Raises:
        NotFound: an unknown project or volume, or no prediction yet.
    """
    project = store.get_project(project_id)
    store.get_volume(project_id, volume_id)
    path = layout.prediction(project_id, volume_id, _own_3d(project.model_kind, model))
    if not path.is_file():
        query = "?model=3d" if model is ProjectModel.MODEL_3D else ""
        raise NotFound(
            f"volume {volume_id} has no prediction yet: POST .../volumes/{volume_id}/prediction{query} first"
        )
    return path
