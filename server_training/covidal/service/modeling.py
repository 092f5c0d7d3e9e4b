"""The project's current model in the HTTP process: MC-dropout region scores for cycles, and predictions.

This module imports torch; the routes import it inside the request that needs
a model, so a service that never trains starts without torch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from covidal.activelearning.pool import Pool
from covidal.activelearning.scoring import score_pool
from covidal.data.slices import SliceRecord
from covidal.data.volume import Volume
from covidal.data.window import HUWindow, to_unit_intensity
from covidal.errors import CovidalError
from covidal.inference import predict_probabilities
from covidal.regions.grid import RegionGrid
from covidal.sample_data import segment_lungs
from covidal.strategies.registry import build_strategy
from covidal.training.checkpoint import LoadedRun, load_run
from covidal.training.dataset import network_input


def load_model(path: Path, device: str) -> LoadedRun:
    """The model saved at ``path`` on ``device`` (eval mode). CovidalError if it cannot be read."""
    return load_run(Path(path), torch.device(device))


def volume_slices(array: np.ndarray, window: HUWindow) -> list[SliceRecord]:
    """One record per axial slice ``k`` of ``array`` ``[K, J, I]`` (HU), ``slice_id`` ``str(k)``."""
    unit = to_unit_intensity(array, window)
    return [SliceRecord(str(k), unit[k], None, "volume", k) for k in range(unit.shape[0])]


def mc_dropout_scorer(run: LoadedRun, strategy: str, samples: int,
                      seed: int) -> Callable[[np.ndarray, RegionGrid], np.ndarray]:
    """A :data:`covidal.service.proposals.RegionScorer`: ``[K, R]`` region scores of the ``strategy`` (e.g.
    entropy of ``samples`` MC-dropout softmax samples, reduced to the region's maximum), on each slice's native grid.
    """

    def score(array: np.ndarray, grid: RegionGrid) -> np.ndarray:
        records = volume_slices(array, run.config.window)
        pool = Pool(records, network_input(records, run.config.image_size))
        chosen = build_strategy(strategy, grid)
        slice_scores = score_pool(run.model, pool, range(len(records)), chosen, samples, seed)
        scores = np.zeros((len(records), grid.regions))
        for scored in chosen.score_regions(slice_scores, np.random.default_rng(seed)):
            scores[int(scored.region.slice), scored.region.region] = scored.score
        return scores

    return score


@dataclass(frozen=True)
class PredictionStats:
    """Summary of a predicted label volume.

    Attributes:
        voxels: voxels labelled infection.
        infected_ml: their volume in mL (voxels x voxel volume in mm^3 / 1000).
        lung_percent: infected lung voxels in percent of the lung mask's voxels, or None without a lung mask.
        lung_ml: the lung mask's volume in mL, or None.
    """

    voxels: int
    infected_ml: float
    lung_percent: float | None
    lung_ml: float | None


def predict_labels(run: LoadedRun, volume: Volume) -> np.ndarray:
    """uint8 ``[K, J, I]``: 1 where the model's infection probability is at least 0.5, slice by slice."""
    device = next(run.model.parameters()).device
    labels = np.zeros(volume.array.shape, dtype=np.uint8)
    for record, probability in predict_probabilities(run.model, volume_slices(volume.array, run.config.window),
                                                     run.config.image_size, device):
        labels[record.slice_index] = probability >= 0.5
    return labels


def prediction_stats(labels: np.ndarray, volume: Volume) -> PredictionStats:
    """Infected volume, and its share of the lungs when :func:`covidal.sample_data.segment_lungs` finds them."""
    voxel_ml = float(np.prod(volume.spacing)) / 1000.0
    infected = labels.astype(bool)
    try:
        lungs = segment_lungs(volume)
    except CovidalError:
        lungs = None
    if lungs is None or not lungs.any():
        return PredictionStats(int(infected.sum()), float(infected.sum()) * voxel_ml, None, None)
    percent = 100.0 * float((infected & lungs).sum()) / float(lungs.sum())
    return PredictionStats(int(infected.sum()), float(infected.sum()) * voxel_ml, percent,
                           float(lungs.sum()) * voxel_ml)
