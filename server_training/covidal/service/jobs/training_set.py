"""What a ``train`` job trains on: the answered slices, and for a strategy that adds pseudo-labels (CEAL) the
project's pool as its current model labels it.

Without pseudo-labels the job trains the answered slices' label maps. With them, the project's current model
(the one that made the latest cycle's query; none before the first job finishes, so the first job adds none)
labels every axial slice of the project's volumes on the job's grid, at the threshold of the latest cycle ``t``
and with the project's ``seed`` (:meth:`Strategy.pseudo_labels`); the slices then join as in ``covidal simulate``
(:func:`~covidal.activelearning.strategies.pseudo_labels.training_label_maps`). They are made afresh by every job,
never count as answers or effort, and are kept in the job's folder so that a resumed job trains on the same ones.

Beside the answers, a project's ``background_prior`` labels certain background on the answered slices (aerated
lung, air and bone by their intensity: :mod:`covidal.training.derived_labels`), weighed below the answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidal.activelearning.strategies import build_strategy
from covidal.activelearning.strategies.pseudo_labels import PseudoLabels, training_label_maps
from covidal.data.resizing import resize_image
from covidal.data.window import HUWindow
from covidal.errors import CovidalError
from covidal.losses.base import IGNORE_INDEX
from covidal.service.jobs.job_config import TrainJobConfig
from covidal.service.jobs.training_data import ProjectAnnotations, read_project_volume
from covidal.service.project.layout import JobPaths
from covidal.service.project.models.slices import network_input_of
from covidal.service.project.strategy_inputs import strategy_params
from covidal.service.project.suggestions import cycle_settings
from covidal.service.store.records import Project
from covidal.service.store.store import Store
from covidal.training.background_prior import BackgroundPrior
from covidal.training.checkpoint import load_run
from covidal.training.dataset import TrainingSlices, network_input
from covidal.training.derived_labels import derived_label_maps_of_records
from covidal.utils.atomic import atomic_write


@dataclass(frozen=True)
class JobTrainingSet:
    """A job's training slices and the pseudo-labels among them (None: none joined)."""

    slices: TrainingSlices
    pseudo: PseudoLabels | None


def job_training_set(
    store: Store,
    project: Project,
    config: TrainJobConfig,
    data: ProjectAnnotations,
    window: HUWindow,
    current_model: Path,
    paths: JobPaths,
    device: torch.device,
) -> JobTrainingSet:
    """The training slices of a job of ``project`` (see the module docstring).

    Args:
        data: the project's answered slices (``data.slices`` not empty).
        current_model: the project's current model file (it may not exist).
        paths: the job's files; its pseudo-labels are saved there, or read back when the job resumes.

    Raises:
        CovidalError: a bad ``strategy_params`` or ``seed`` setting, an unreadable current model or volume, or
            (a resumed job) answers on a volume its kept pseudo-labels do not cover.
    """
    answer_maps = np.stack(
        [
            data.state.label_map_on_grid(
                (s.case_id, s.slice_id), config.image_size, config.background_sample, config.seed
            )
            for s in data.slices
        ]
    )
    derived = _derived_labels(data, answer_maps, config, window)
    strategy = build_strategy(project.strategy, strategy_params(project.settings))
    if not strategy.adds_pseudo_labels or not (paths.pseudo_labels.is_file() or current_model.is_file()):
        images = network_input([s.image for s in data.slices], config.image_size)
        return JobTrainingSet(TrainingSlices(images, torch.from_numpy(answer_maps), None, _tensor(derived)), None)
    if paths.pseudo_labels.is_file():
        pseudo, volume_ids = _read_pseudo_labels(paths.pseudo_labels)
        keys, images = _pool_inputs(store, project.id, volume_ids, window, config.image_size)
    else:
        volume_ids = [volume.id for volume in store.list_volumes(project.id)]
        keys, images = _pool_inputs(store, project.id, volume_ids, window, config.image_size)
        seed = cycle_settings(project.settings)[0]
        cycle = store.list_cycles(project.id)[-1].number
        pseudo = strategy.pseudo_labels(load_run(current_model, device).model, images, cycle, seed)
        _save_pseudo_labels(paths.pseudo_labels, pseudo, volume_ids)
    position = {key: row for row, key in enumerate(keys)}
    outside = sorted({int(s.case_id) for s in data.slices if (int(s.case_id), s.slice_index) not in position})
    if outside:  # only a resumed job can meet them: its pool was fixed when it first started
        raise CovidalError(
            f"volume(s) {outside} were answered after this job pseudo-labelled the pool: start a new training job"
        )
    answered = [position[(int(s.case_id), s.slice_index)] for s in data.slices]
    rows, maps = training_label_maps(answered, answer_maps, pseudo)
    if derived is not None:  # the pool's other slices have no derived labels
        of_row = dict(zip(answered, derived))
        derived = np.stack([of_row.get(row, np.full(maps.shape[1:], IGNORE_INDEX)) for row in rows])
    return JobTrainingSet(TrainingSlices(images[rows], torch.from_numpy(maps), None, _tensor(derived)), pseudo)


def _derived_labels(
    data: ProjectAnnotations, answer_maps: np.ndarray, config: TrainJobConfig, window: HUWindow
) -> np.ndarray | None:
    """int64 ``[N, S, S]`` background labelled without an answer on the answered slices (``config.background_prior``;
    an answered pixel keeps its answer), or None for none."""
    prior = BackgroundPrior(config.background_prior)
    if prior is BackgroundPrior.NONE:
        return None
    images = [resize_image(s.image, config.image_size) for s in data.slices]
    return derived_label_maps_of_records(data.slices, images, answer_maps, False, prior, window)


def _tensor(labels: np.ndarray | None) -> torch.Tensor | None:
    return None if labels is None else torch.from_numpy(labels)


def _pool_inputs(
    store: Store, project_id: int, volume_ids: list[int], window: HUWindow, image_size: int
) -> tuple[list[tuple[int, int]], torch.Tensor]:
    """``(keys (volume id, k), float32 [N, 1, S, S])``: every axial slice of the volumes, as the network sees it."""
    keys: list[tuple[int, int]] = []
    inputs = []
    for volume_id in volume_ids:
        array = read_project_volume(store, store.get_volume(project_id, volume_id)).array
        inputs.append(network_input_of(array, window, image_size))
        keys += [(volume_id, k) for k in range(len(array))]
    return keys, torch.cat(inputs)


def _save_pseudo_labels(path: Path, pseudo: PseudoLabels, volume_ids: list[int]) -> None:
    """Keep the job's pseudo-labels (atomically) with what made them and the pool they label."""

    def write(target: Path) -> None:
        np.savez_compressed(
            target,
            labels=pseudo.labels.astype(np.int8),
            made_by=np.array([pseudo.cycle, pseudo.seed]),
            threshold=np.array(pseudo.threshold),
            volume_ids=np.array(volume_ids, dtype=np.int64),
        )

    atomic_write(path, write)


def _read_pseudo_labels(path: Path) -> tuple[PseudoLabels, list[int]]:
    with np.load(path) as saved:
        cycle, seed = (int(value) for value in saved["made_by"])
        pseudo = PseudoLabels(saved["labels"].astype(np.int64), cycle, float(saved["threshold"]), seed)
        return pseudo, [int(value) for value in saved["volume_ids"]]
