"""A project's predictions: its current model (2D slice by slice, or the 3D model by a sliding window) run on
one of its volumes, stored as a uint8 NRRD (1 = infection) with the volume's exact geometry, replacing the
volume's previous prediction; and the infected volume it holds.

Both 2D and 3D predictions are restricted to the volume's filled lungs (:mod:`covidal.service.project.lungs`),
so air outside the body and the soft tissue around the chest never count as infection, and the infected mL and
the share of each lung are measured inside them. A volume without lungs found (not a chest CT in HU) keeps its
prediction unrestricted, says so, and has no lung figures."""

from __future__ import annotations

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


def predict(
    store: Store,
    settings: ServiceSettings,
    layout: ProjectLayout,
    cache: ServiceCache,
    project_id: int,
    volume_id: int,
) -> PredictionOut:
    """Label the volume with the project's current model, restricted to its lungs, and store the labels.

    Raises:
        NotFound: an unknown project or volume. Conflict: the project has no trained model yet.
        CovidalError: the model or the volume cannot be read.
    """
    project = store.get_project(project_id)
    record = store.get_volume(project_id, volume_id)
    model_path = layout.current_model(project_id)
    if not model_path.is_file():
        raise Conflict(f"project {project_id} has no trained model yet: run a training job to the end first")
    key = VolumeKey(record.id, record.sha256)
    volume = cache.volume(key, lambda: read_project_volume(store, record))
    from covidal.service.project.models import slices  # torch loads only when a model runs

    if ModelKind(project.model_kind).dims == 3:
        from covidal.service.project.models import volumes

        labels, _ = volumes.predict_volume(model_path, settings.device, store, record)
        array = labels.array
    else:
        array = slices.predict_labels(slices.load_model(model_path, settings.device), volume)
    lungs = volume_lungs(cache, key, volume)
    if not isinstance(lungs, NoLungs):
        array = restrict_to_lungs(array, lungs)
    write_volume(volume.with_array(array), layout.prediction(project_id, volume_id))
    return _prediction_out(volume_id, array, volume, lungs)


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
