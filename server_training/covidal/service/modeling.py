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
from covidal.data.grid import GridMapping, resize_image
from covidal.data.slices import SliceRecord
from covidal.data.volume import Volume
from covidal.data.window import HUWindow, to_unit_intensity
from covidal.errors import CovidalError
from covidal.inference import predict_probabilities
from covidal.regions.grid import RegionGrid
from covidal.sample_data import segment_lungs
from covidal.service.cache import VolumeKey
from covidal.service.proposals import RegionScorer, band_starts
from covidal.strategies.base import Reduction, SliceScores, Strategy
from covidal.strategies.registry import build_strategy
from covidal.training.checkpoint import LoadedRun, load_run
from covidal.training.dataset import standardise


def load_model(path: Path, device: str) -> LoadedRun:
    """The model saved at ``path`` on ``device`` (eval mode). CovidalError if it cannot be read."""
    return load_run(Path(path), torch.device(device))


def volume_slices(array: np.ndarray, window: HUWindow) -> list[SliceRecord]:
    """One record per axial slice ``k`` of ``array`` ``[K, J, I]`` (HU), ``slice_id`` ``str(k)``."""
    unit = to_unit_intensity(array, window)
    return [SliceRecord(str(k), unit[k], None, "volume", k) for k in range(unit.shape[0])]


@dataclass(frozen=True)
class NetworkInputKey:
    """What a volume's network input depends on: the volume's content, the model's HU window and grid size."""

    volume: VolumeKey
    window: HUWindow
    image_size: int


NetworkInputs = Callable[[int, np.ndarray], torch.Tensor]
"""``inputs(volume id, array [K, J, I]) -> [K, 1, S, S]``: the volume's network input, e.g. from a cache."""


def network_input_of(array: np.ndarray, window: HUWindow, image_size: int) -> torch.Tensor:
    """float32 ``[K, 1, S, S]``: every axial slice of ``array`` ``[K, J, I]`` (HU) windowed, resized, standardised.

    The same values as :func:`covidal.training.dataset.network_input` of :func:`volume_slices`, computed a
    slice at a time: windowing a whole CT at once makes a float32 copy of it (300 MB for 512 x 512 x 300)
    and was about four times slower.

    Raises:
        CovidalError: a slice holds NaN or infinite values.
    """
    stacked = np.stack([standardise(resize_image(to_unit_intensity(array[k], window), image_size))
                        for k in range(array.shape[0])])
    return torch.from_numpy(stacked)[:, None]


def tensor_nbytes(tensor: torch.Tensor) -> int:
    return tensor.element_size() * tensor.nelement()


def mc_dropout_scorer(run: LoadedRun, strategy: str, samples: int, seed: int,
                      inputs: NetworkInputs) -> RegionScorer:
    """A :data:`covidal.service.proposals.RegionScorer`: ``[K, R]`` region scores of the ``strategy`` (e.g.
    the maximum over the region's pixels of the entropy of ``samples`` MC-dropout softmax samples).

    A region's pixels are the slice's native pixels, each scored by the network pixel holding its centre,
    as :func:`covidal.activelearning.scoring.score_pool` maps scores; :func:`region_max_scores` takes that
    maximum on the network's grid, without mapping the scores to every native pixel first. (Every strategy
    that needs uncertainty reduces pixels to regions with :meth:`Strategy.region_scores`; the random one
    draws its scores without running the network.)

    Args:
        inputs: the network input of a pool volume.
    """

    def score(volume_id: int, array: np.ndarray, grid: RegionGrid) -> np.ndarray:
        chosen = build_strategy(strategy, grid, Reduction.MAX)
        if not chosen.needs_uncertainty:
            return _drawn_scores(chosen, len(array), array.shape[1:], seed)
        images = inputs(volume_id, array)
        # Records whose images are the network inputs themselves: score_pool maps the scores to each
        # record's grid, so they stay on the S x S network grid.
        records = [SliceRecord(str(k), images[k, 0].numpy(), None, "volume", k) for k in range(len(images))]
        slice_scores = score_pool(run.model, Pool(records, images), range(len(records)), chosen, samples, seed)
        return region_max_scores(np.stack([scores.pixel_scores for scores in slice_scores]), array.shape[1:], grid)

    return score


def region_max_scores(network_scores: np.ndarray, native_shape: tuple[int, int], grid: RegionGrid) -> np.ndarray:
    """``[K, R]`` maximum of each region of ``native_shape`` slices whose pixels take network-grid scores.

    Native pixel ``(j, i)`` takes ``network_scores[k, rows[j], cols[i]]``, ``rows, cols`` from
    :meth:`GridMapping.native_to_train_indices`; a region's maximum over its native pixels is then the
    maximum over its native column bands, then row bands, of the network columns and rows they map to,
    the same number exactly.

    Args:
        network_scores: ``[K, S, S]`` pixel scores on the network grid.
        native_shape: ``(H, W)`` of the slices the regions cut.

    Raises:
        ValueError: ``H`` or ``W`` below the grid's side.
    """
    row_starts, col_starts = band_starts(grid, native_shape)
    rows, cols = GridMapping(native_shape, network_scores.shape[-1]).native_to_train_indices()
    by_column_band = np.maximum.reduceat(network_scores[:, :, cols], col_starts, axis=2)  # [K, S, side]
    by_region = np.maximum.reduceat(by_column_band[:, rows, :], row_starts, axis=1)  # [K, side, side]
    return by_region.reshape(len(network_scores), grid.regions)


def _drawn_scores(chosen: Strategy, slices: int, native_shape: tuple[int, int], seed: int) -> np.ndarray:
    """``[K, R]`` scores of a strategy that runs no network (random): drawn by the strategy from ``seed``,
    given the zero maps :func:`score_pool` gives such a strategy."""
    zeros = np.zeros(native_shape)
    scored = chosen.score_regions([SliceScores("volume", str(k), zeros) for k in range(slices)],
                                  np.random.default_rng(seed))
    scores = np.zeros((slices, chosen.grid.regions))
    for region in scored:
        scores[int(region.region.slice), region.region.region] = region.score
    return scores


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
