"""The first cycle's prior: the share of a region's voxels that look like infection, blobs kept and vessels not."""

import numpy as np
import pytest
from scipy import ndimage

from covidal.activelearning.strategies import InfectionDensity, ScoringContext, SliceStack
from covidal.activelearning.strategies.priors import infection_density_scores
from covidal.regions.grid import RegionGrid


def context(grid_k: int = 4) -> ScoringContext:
    return ScoringContext(RegionGrid(grid_k), None, samples=1, seed=0, open_slices=np.ones(12, dtype=bool))


def lung_with(*, lesion: bool, vessel: bool) -> np.ndarray:
    """``[12, 32, 32]`` aerated lung (-850 HU) with a ground-glass blob in the top-left region and/or a one-voxel
    vessel (40 HU) running across the bottom-right region."""
    hu = np.full((12, 32, 32), -850, dtype=np.int16)
    if lesion:
        hu[2:10, 2:10, 2:10] = -500
    if vessel:
        hu[:, 24, 16:32] = 40
    return hu


def test_a_lesion_scores_its_region_and_a_vessel_does_not():
    scores = infection_density_scores(lung_with(lesion=True, vessel=True), RegionGrid(4))
    # The 8 x 8 blob fills the region (16 x 16) rows 2..9 and columns 2..9, minus its eroded-and-regrown corners.
    assert scores[5, 0] > 0.15
    assert scores[:, 3].max() == 0.0  # the vessel is opened away
    assert scores[:, 1:].max() == 0.0 and scores[[0, 1, 10, 11], 0].max() == 0.0


def test_voxels_outside_the_range_never_count():
    hu = lung_with(lesion=True, vessel=False)
    hu[2:10, 2:10, 2:10] = 200  # bone-dense, above the range
    assert infection_density_scores(hu, RegionGrid(4)).max() == 0.0
    assert infection_density_scores(np.full((12, 32, 32), -1024.0), RegionGrid(4)).max() == 0.0


@pytest.mark.parametrize(("shape", "grid_k"), [((6, 11, 13), 9), ((4, 40, 17), 16), ((3, 5, 5), 1)])
def test_scores_match_a_loop_over_boxes(shape, grid_k):
    hu = np.random.default_rng(0).choice([-850, -500], size=shape, p=[0.3, 0.7]).astype(np.float32)
    dense = ndimage.binary_opening((hu >= -750) & (hu <= 100), iterations=2)
    grid = RegionGrid(grid_k)
    expected = [[dense[k][box.slices].mean() for box in grid.boxes(shape[1:])] for k in range(shape[0])]
    np.testing.assert_allclose(infection_density_scores(hu, grid), expected)


def test_the_strategy_reads_the_intensities_and_needs_them():
    hu = lung_with(lesion=True, vessel=False)
    stack = SliceStack(((32, 32),) * 12, lambda: None, lambda: hu)
    np.testing.assert_array_equal(
        InfectionDensity().region_scores(stack, context()), infection_density_scores(hu, RegionGrid(4))
    )
    with pytest.raises(ValueError, match="HU"):
        InfectionDensity().region_scores(SliceStack(((32, 32),) * 12, lambda: None), context())
