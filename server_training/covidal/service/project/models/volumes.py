"""A ``unet3d`` project's stored volumes as 3D cases, and whole-volume predictions with its 3D model.

This module imports torch and MONAI; the routes import it inside the request that needs it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch

from covidal.data.volume import Volume
from covidal.noisyteacher.run import load_model
from covidal.service.jobs.training_data import MAX_EXPANDED_BYTES
from covidal.service.store import records
from covidal.service.store.store import Store
from covidal.service.volumes import extract_dicom_zip
from covidal.volumes.cases import CaseSource
from covidal.volumes.preprocess import prepare_case
from covidal.volumes.sliding_window import predict_on_source_grid


def case_name(volume_id: int) -> str:
    """The name of a stored volume as a 3D case (in training logs and histories)."""
    return f"volume{int(volume_id)}"


@contextmanager
def case_sources(
    store: Store, volumes: Sequence[records.Volume], labels: Mapping[int, Path] | None = None
) -> Iterator[list[CaseSource]]:
    """One :class:`CaseSource` per stored volume (named :func:`case_name`), for the ``with`` block.

    A DICOM zip is extracted to a temporary folder that lives as long as the block.

    Args:
        labels: label file of a volume, by volume id (volumes without one get none).

    Raises:
        Invalid: a stored zip that cannot be extracted (the store checked it at upload: a damaged store).
    """
    labels = labels or {}
    with tempfile.TemporaryDirectory(prefix="covidal-cases-") as folder:
        yield [
            CaseSource(case_name(volume.id), _image_path(store, volume, Path(folder)), labels.get(volume.id))
            for volume in volumes
        ]


def predict_volume(model_path: Path, device: str, store: Store, volume: records.Volume) -> tuple[Volume, Volume]:
    """The 3D model's label of a stored volume, by a sliding window on its training grid mapped back onto the
    volume's grid: ``(labels, volume)``, labels uint8 {0, 1} with exactly the volume's geometry.

    Raises:
        CovidalError: the model file cannot be read as a 3D model, or the volume cannot be read.
    """
    loaded = load_model(model_path, torch.device(device))
    config = loaded.config
    with case_sources(store, [volume]) as (source,):
        prepared = prepare_case(source, config.spacing, config.window)
    labels, _ = predict_on_source_grid(loaded.model, prepared, config.sliding_window, torch.device(device), config.amp)
    return labels, prepared.source


def _image_path(store: Store, volume: records.Volume, folder: Path) -> Path:
    path = store.files.path(volume.path)
    if volume.format is records.VolumeFormat.DICOM_ZIP:
        return extract_dicom_zip(path, folder / str(volume.id), MAX_EXPANDED_BYTES)
    return path
