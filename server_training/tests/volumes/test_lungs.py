"""Lung segmentation of a chest CT in HU: a phantom with airway, vessels and bowel gas, and input that is no chest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))  # lung_phantoms (pytest runs with --import-mode=importlib)
from lung_phantoms import chest_phantom, fine_chest_phantom

from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.volumes.lungs import (
    LEFT,
    OUTSIDE_LUNGS_HU,
    RIGHT,
    find_lungs,
    involvement,
    lung_grid_step,
    lungs_only,
    restrict_to_lungs,
    segment_lungs,
)


def test_phantom_lungs_are_found_without_airway_or_bowel_gas() -> None:
    ct, truth = chest_phantom()
    found = segment_lungs(ct)
    dice = 2 * (found & truth).sum() / (found.sum() + truth.sum())
    assert dice > 0.95
    assert ndimage.label(found)[1] == 2
    assert not found[31:, 29:36, 37:44].any()  # trachea above the lungs
    assert not found[:5].any()  # bowel gas
    assert found[17, 31, 21] and found[17, 31, 58]  # vessels filled in


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((8, 8), dtype=np.int16), "3D"),
        (np.full((8, 16, 16), -1000, dtype=np.int16), "no lungs"),
        (np.full((8, 16, 16), 40, dtype=np.int16), "no lungs"),
    ],
    ids=["2D", "all air", "all soft tissue"],
)
def test_segment_lungs_rejects_non_chest_input(array: np.ndarray, message: str) -> None:
    with pytest.raises(CovidalError, match=message):
        segment_lungs(Volume(array))


def test_filled_lungs_are_labelled_right_and_left_and_keep_a_dense_pleural_lesion() -> None:
    ct, truth = chest_phantom()
    hu = ct.array.copy()
    pleural = np.zeros(hu.shape, dtype=bool)
    pleural[14:22, 28:37, 11:15] = True  # consolidation (40 HU) on the outer pleura of the patient's right lung
    pleural &= truth
    hu[pleural] = 40
    lungs = find_lungs(ct.with_array(hu))
    assert lungs.aerated[pleural].mean() < 0.5  # soft-tissue dense: mostly not aerated lung
    assert lungs.filled[pleural].mean() > 0.85  # the convex hull puts most of it back (all but its outer shell)
    # Direction identity: i grows toward the patient's left (LPS +x), so the lung at i ~ 22 is the right one.
    assert (lungs.filled[18, 32, 22], lungs.filled[18, 32, 58]) == (RIGHT, LEFT)
    assert not lungs.filled[:, 0, :].any() and lungs.filled[2, 40, 40] == 0  # no outside air, no bowel gas
    assert lungs.voxel_ml == pytest.approx(0.008)


def test_involvement_measures_each_lung_and_restriction_drops_what_is_outside() -> None:
    ct, _ = chest_phantom()
    lungs = find_lungs(ct)
    right = lungs.filled == RIGHT
    labels = np.zeros(ct.array.shape, dtype=np.uint8)
    labels[:, :, :40] = 1  # everything on the patient's right side of the body, and the air beside it
    restricted = restrict_to_lungs(labels, lungs)
    assert restricted.dtype == np.uint8 and np.array_equal(restricted.astype(bool), right)
    measured = involvement(restricted.astype(bool), lungs)
    assert measured.right_percent == pytest.approx(100.0) and measured.left_percent == 0.0
    assert measured.infected_ml == pytest.approx(right.sum() * lungs.voxel_ml)
    right_aerated = (lungs.aerated & right).sum() * lungs.voxel_ml
    assert measured.lung_ml == pytest.approx(measured.infected_ml + (lungs.aerated & ~right).sum() * lungs.voxel_ml)
    assert measured.infected_ml >= right_aerated  # dense infection counts as lung too
    assert measured.percent == pytest.approx(100 * measured.infected_ml / measured.lung_ml)


def test_lungs_only_keeps_the_lungs_hu_and_puts_air_elsewhere() -> None:
    ct, truth = chest_phantom()
    kept = lungs_only(ct, truth)
    assert np.array_equal(kept[truth], ct.array[truth]) and np.all(kept[~truth] == OUTSIDE_LUNGS_HU)


@pytest.mark.parametrize(
    ("spacing", "step"),
    [((0.8, 0.8, 2.5), 2), ((1.1, 1.1, 3.0), 2), ((0.7, 0.7, 1.0), 3), ((0.5, 0.5, 1.0), 4), ((1.5, 1.5, 1.5), 1)],
)
def test_lung_grid_step_keeps_pixels_at_most_the_lung_grid(spacing: tuple[float, float, float], step: int) -> None:
    assert lung_grid_step(spacing) == step
    assert lung_grid_step((0.7, 1.2, 1.0)) == 1  # the coarser side decides


def test_lungs_of_a_fine_ct_found_on_its_subsample_match_the_full_resolution_lungs() -> None:
    ct = fine_chest_phantom()
    served, full = find_lungs(ct), find_lungs(ct, step=1)
    assert served.aerated.shape == served.filled.shape == ct.array.shape
    assert served.voxel_ml == pytest.approx(full.voxel_ml)
    for mine, theirs in ((served.aerated, full.aerated), (served.filled == RIGHT, full.filled == RIGHT)):
        assert 2 * (mine & theirs).sum() / (mine.sum() + theirs.sum()) > 0.95
    assert (served.filled[18, 64, 44], served.filled[18, 64, 116]) == (RIGHT, LEFT)
    assert not served.filled[:, 0, :].any() and not served.aerated[31:, 58:72, 74:88].any()  # outside air, trachea


def test_the_air_a_ct_table_encloses_under_the_body_is_not_lung() -> None:
    """A real CT's table cushion holds air that touches no slice border (tcia_chest_ct_48 in ../shared: 2.7 L of
    it was taken for the right lung); here a closed box of it, as large as a lung, below the phantom's body."""
    ct, _ = chest_phantom()
    hu = np.pad(ct.array, ((0, 0), (0, 20), (0, 0)), constant_values=-1000)  # 20 rows of air below the body
    hu[:, 66:80, 6:74] = 40  # the table: a soft-tissue shell ...
    hu[:, 68:78, 8:72] = -1000  # ... around air, apart from the body (which ends at row 60)
    lungs = find_lungs(Volume(hu, spacing=ct.spacing))
    assert not lungs.aerated[:, 62:].any() and not lungs.filled[:, 62:].any()
    assert (lungs.filled[18, 32, 22], lungs.filled[18, 32, 58]) == (RIGHT, LEFT)


def test_find_lungs_refuses_a_step_below_one() -> None:
    with pytest.raises(CovidalError, match="lung grid step"):
        find_lungs(chest_phantom()[0], step=0)
