"""MC-dropout region scores on the network grid: the very numbers of the straightforward path (naive MC samples,
every pixel score mapped to its native pixel, then reduced over each region's box)."""

import numpy as np
import pytest
import torch

from covidal.activelearning.scoring import Reduction, band_starts, mc_pixel_scores, mc_region_pass, reduce_to_regions
from covidal.data.resizing import GridMapping
from covidal.models.slices.build import ModelConfig, build_model
from covidal.regions.grid import RegionGrid
from covidal.uncertainty.mc_dropout import mc_probabilities_naive, sample_dropout_masks
from covidal.uncertainty.measures import predictive_entropy

SIZE = 32
SHAPES = [(40, 48), (33, 33), (40, 48), (20, 24)]  # finer and coarser than the 32 x 32 network grid


def native_reference(network_scores: np.ndarray, shape, grid: RegionGrid, reduction: str) -> np.ndarray:
    """``[R]``: the network scores mapped to every native pixel, then reduced over each native box."""
    rows, cols = GridMapping(shape, network_scores.shape[-1]).native_to_train_indices()
    native = network_scores[rows[:, None], cols[None, :]]
    reduce = np.max if reduction == "max" else np.mean
    return np.array([reduce(native[box.slices]) for box in grid.boxes(shape)])


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig(width=8, dropout=0.5))


@pytest.fixture(scope="module")
def images():
    return torch.from_numpy(np.random.default_rng(0).standard_normal((len(SHAPES), 1, SIZE, SIZE), dtype=np.float32))


@pytest.mark.parametrize("reduction", ["max", "mean"])
@pytest.mark.parametrize(("shape", "grid_k"), [((40, 48), 4), ((20, 24), 9), ((45, 17), 16), ((32, 32), 1)])
def test_reduction_on_the_network_grid_equals_the_native_grid(reduction, shape, grid_k):
    network = np.random.default_rng(grid_k).random((3, SIZE, SIZE))
    grid = RegionGrid(grid_k)
    reduced = reduce_to_regions(network, shape, grid, Reduction(reduction))
    expected = np.stack([native_reference(network[b], shape, grid, reduction) for b in range(3)])
    if reduction == "max":
        np.testing.assert_array_equal(reduced, expected)  # the same numbers exactly
    else:
        np.testing.assert_allclose(reduced, expected, rtol=1e-12)  # sums in another order


def test_band_starts_are_the_boxes_first_rows_and_columns():
    rows, columns = band_starts(RegionGrid(9), (11, 13))
    assert (rows, columns) == ([0, 4, 7], [0, 4, 9])
    assert all(box.row0 in rows and box.col0 in columns for box in RegionGrid(9).boxes((11, 13)))


@pytest.mark.parametrize("reduction", ["max", "mean"])
@pytest.mark.parametrize("batch_size", [1, 3, 8])
def test_region_scores_are_naive_mc_entropy_reduced_on_native_boxes(
    model, images, reduction, batch_size, single_thread_torch
):
    grid = RegionGrid(4)
    masks = sample_dropout_masks(model, 5, len(SHAPES), 11)
    scores = mc_region_pass(
        model, images, masks, SHAPES, grid, predictive_entropy, Reduction(reduction), batch_size
    ).scores
    entropy = predictive_entropy(mc_probabilities_naive(model, images, masks).probs).numpy()
    expected = np.stack([native_reference(entropy[n], SHAPES[n], grid, reduction) for n in range(len(SHAPES))])
    assert scores.shape == (len(SHAPES), 4) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert len(np.unique(scores)) > 1


def test_only_the_given_slices_are_scored_with_their_own_masks(model, images, single_thread_torch):
    grid, masks = RegionGrid(4), sample_dropout_masks(model, 4, len(SHAPES), 3)
    every = mc_region_pass(model, images, masks, SHAPES, grid, predictive_entropy).scores
    some = mc_region_pass(model, images, masks, SHAPES, grid, predictive_entropy, positions=[3, 1]).scores
    np.testing.assert_array_equal(some[[1, 3]], every[[1, 3]])
    assert np.all(some[[0, 2]] == -np.inf)
    assert np.all(
        mc_region_pass(model, images, masks, SHAPES, grid, predictive_entropy, positions=[]).scores == -np.inf
    )


def test_a_slice_smaller_than_the_grid_is_a_value_error(model, images):
    masks = sample_dropout_masks(model, 2, len(SHAPES), 0)
    with pytest.raises(ValueError, match="too small"):
        mc_region_pass(model, images, masks, SHAPES, RegionGrid(625), predictive_entropy)


@pytest.mark.parametrize(
    ("shape", "grid_k"), [((40, 48), 4), ((20, 24), 9), ((45, 17), 16), ((32, 32), 1), ((33, 33), 9), ((96, 80), 64)]
)
def test_top_mean_on_the_network_grid_equals_the_native_grid(shape, grid_k):
    """The mean of the top 10% native pixel scores of each region, computed from the network grid with counts."""
    network = np.random.default_rng(grid_k).random((2, SIZE, SIZE))
    network[1, :4] = 0.5  # ties inside a block
    grid = RegionGrid(grid_k)
    rows, cols = GridMapping(shape, SIZE).native_to_train_indices()
    native = network[:, rows[:, None], cols[None, :]]
    expected = [[top_mean_reference(native[b][box.slices]) for box in grid.boxes(shape)] for b in range(len(network))]
    np.testing.assert_allclose(reduce_to_regions(network, shape, grid, Reduction.TOP_MEAN), expected, rtol=1e-12)


def top_mean_reference(pixels: np.ndarray) -> float:
    ordered = np.sort(pixels.ravel())[::-1]
    return float(ordered[: max(1, int(np.ceil(0.1 * ordered.size)))].mean())


def boundary_probs(uncertain_columns: list[int], p: float = 0.5 + 1e-4) -> torch.Tensor:
    """``[T=1, B=1, 2, 32, 32]`` softmax samples: confident background, except the top half's given columns at
    infection probability ``p``."""
    infected = torch.full((32, 32), 1e-3, dtype=torch.float32)
    infected[:16, uncertain_columns] = p
    return torch.stack([1 - infected, infected])[None, None]


def test_float32_entropy_ties_at_ln2_and_float64_does_not():
    """The lead's finding: near p = 0.5, float32 entropy is ln 2 exactly, so max-reduced regions all tie."""
    near = torch.tensor([0.5, 0.5 + 3e-5, 0.5 + 1e-4], dtype=torch.float32)
    probs = torch.stack([1 - near, near], dim=1)[None, :, :, None, None]  # [1, 3, 2, 1, 1]
    in_float32 = predictive_entropy(probs).ravel()
    assert len(torch.unique(in_float32)) == 1
    in_float64 = predictive_entropy(probs.double()).ravel()
    assert in_float64[0] > in_float64[1] > in_float64[2]


@pytest.mark.parametrize("reduction", [Reduction.TOP_MEAN, Reduction.MEAN])
def test_a_region_with_more_uncertain_area_ranks_first(reduction):
    """Regions 0 and 1 (top left, top right of a 2 x 2 grid) hold the same most uncertain pixel (p = 0.5001) and
    differ only in how many such pixels they hold (1 column against 3): max ties them; top-mean and mean rank the
    larger uncertain area first, on float64 entropy."""
    entropy = predictive_entropy(boundary_probs([3, 18, 22, 27]).double()).numpy()  # [1, 32, 32]
    grid = RegionGrid(4)
    tied = reduce_to_regions(entropy, (32, 32), grid, Reduction.MAX)
    assert tied[0, 0] == tied[0, 1] > tied[0, 2]
    scores = reduce_to_regions(entropy, (32, 32), grid, reduction)[0]
    assert scores[1] > scores[0] > scores[2] == scores[3]


def test_mc_pixel_scores_are_float64(model, images, single_thread_torch):
    masks = sample_dropout_masks(model, 3, len(SHAPES), 1)
    assert mc_pixel_scores(model, images, masks, predictive_entropy).dtype == torch.float64
