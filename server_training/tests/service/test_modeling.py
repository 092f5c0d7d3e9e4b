"""The cycle's MC-dropout scores: the region maxima taken on the network grid and the slice-at-a-time network
input are the very numbers of the straightforward path (map every score to the native grid, then reduce)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covidal.activelearning.pool import Pool
from covidal.activelearning.scoring import score_pool
from covidal.data.grid import GridMapping
from covidal.data.window import HUWindow
from covidal.errors import CovidalError
from covidal.models.registry import ModelConfig, build_model
from covidal.regions.grid import RegionGrid
from covidal.service import modeling
from covidal.strategies.base import SliceScores
from covidal.strategies.registry import StrategyName, build_strategy
from covidal.training.checkpoint import LoadedRun
from covidal.training.config import TrainConfig
from covidal.training.dataset import network_input

IMAGE_SIZE = 32
# (slices, rows, columns): native grids finer than the network's 32 x 32, coarser, and mixed.
SHAPES = [(3, 40, 48), (2, 20, 24), (2, 45, 17)]


@pytest.fixture(scope="module")
def run() -> LoadedRun:
    """An untrained U-Net of width 8 on a 32 px grid: its MC-dropout samples disagree, so scores vary."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(width=8)).eval()
    return LoadedRun(model, TrainConfig(image_size=IMAGE_SIZE, model=ModelConfig(width=8)), 1, None)


def ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1100, 200, shape).astype(np.int16)


def reference_scores(run: LoadedRun, array: np.ndarray, grid: RegionGrid, strategy: str, samples: int,
                     seed: int) -> np.ndarray:
    """``[K, R]`` as the service scored regions before: every score mapped to its native pixel, then reduced."""
    records = modeling.volume_slices(array, run.config.window)
    pool = Pool(records, network_input(records, run.config.image_size))
    chosen = build_strategy(strategy, grid)
    slice_scores = score_pool(run.model, pool, range(len(records)), chosen, samples, seed)
    scores = np.zeros((len(records), grid.regions))
    for scored in chosen.score_regions(slice_scores, np.random.default_rng(seed)):
        scores[int(scored.region.slice), scored.region.region] = scored.score
    return scores


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("grid_k", [1, 4, 9])
def test_region_maxima_on_the_network_grid_equal_those_on_the_native_grid(shape, grid_k):
    slices, rows, columns = shape
    network = np.random.default_rng(grid_k).random((slices, IMAGE_SIZE, IMAGE_SIZE))
    grid = RegionGrid(grid_k)
    native_rows, native_cols = GridMapping((rows, columns), IMAGE_SIZE).native_to_train_indices()
    strategy = build_strategy(StrategyName.ENTROPY, grid)
    expected = [[scored.score for scored in strategy.region_scores(
        SliceScores("c", str(k), network[k][native_rows[:, None], native_cols[None, :]]))] for k in range(slices)]
    assert modeling.region_max_scores(network, (rows, columns), grid).tolist() == expected


@pytest.mark.parametrize("strategy", list(StrategyName))
@pytest.mark.parametrize("shape", SHAPES)
def test_scorer_gives_the_straightforward_scores_exactly(run, strategy, shape):
    array, grid = ct(shape), RegionGrid(4)
    scorer = modeling.mc_dropout_scorer(run, strategy, 3, 7, lambda volume_id, volume: modeling.network_input_of(
        volume, run.config.window, IMAGE_SIZE))
    scores = scorer(1, array, grid)
    assert scores.dtype == np.float64 and scores.shape == (shape[0], 4)
    np.testing.assert_array_equal(scores, reference_scores(run, array, grid, strategy, 3, 7))
    assert len(np.unique(scores)) > 1


def test_scorer_asks_for_the_network_input_of_the_volume_it_scores(run):
    asked = []

    def inputs(volume_id: int, array: np.ndarray) -> torch.Tensor:
        asked.append(volume_id)
        return modeling.network_input_of(array, run.config.window, IMAGE_SIZE)

    scorer = modeling.mc_dropout_scorer(run, "entropy", 2, 0, inputs)
    scorer(5, ct((2, 40, 40)), RegionGrid(4))
    assert asked == [5]
    modeling.mc_dropout_scorer(run, "random", 2, 0, inputs)(6, ct((2, 40, 40)), RegionGrid(4))
    assert asked == [5]  # random scores run no network


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.uint8])
def test_network_input_a_slice_at_a_time_equals_the_whole_volume_way(dtype):
    array = ct((4, 37, 50), seed=3)
    array = (array % 256).astype(dtype) if dtype == np.uint8 else array.astype(dtype)
    window = HUWindow(-500.0, 1200.0)
    expected = network_input(modeling.volume_slices(array, window), IMAGE_SIZE)
    computed = modeling.network_input_of(array, window, IMAGE_SIZE)
    assert computed.dtype == torch.float32 and computed.shape == (4, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(computed, expected)
    assert modeling.tensor_nbytes(computed) == 4 * IMAGE_SIZE * IMAGE_SIZE * 4


def test_network_input_of_a_volume_with_nan_is_a_clear_error():
    array = np.zeros((2, 8, 8), dtype=np.float32)
    array[1, 3, 3] = np.nan
    with pytest.raises(CovidalError, match="NaN or infinite"):
        modeling.network_input_of(array, HUWindow(), IMAGE_SIZE)
