"""The lung benchmark's measures on phantoms whose lungs and lesions are known."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "volumes"))  # lung_phantoms (--import-mode=importlib)
from lung_phantoms import chest_phantom, fine_chest_phantom

from covidal.bench.lungs import compare_lungs, dice, first_cycle_hits
from covidal.volumes.lungs import find_lungs


def test_a_fine_ct_compared_with_itself_agrees_exactly_and_its_subsample_nearly():
    ct = fine_chest_phantom()
    same = compare_lungs(ct, "phantom", step=1)
    assert same.dice == {"aerated": 1.0, "filled": 1.0, "right": 1.0, "left": 1.0}
    assert same.aerated_ml[0] == same.aerated_ml[1] > 0
    coarse = compare_lungs(ct, "phantom", step=2)
    assert (coarse.name, coarse.shape, coarse.spacing, coarse.step) == ("phantom", (40, 127, 159), (0.8, 0.8, 2.0), 2)
    assert all(0.95 < value < 1.0 for value in coarse.dice.values()), coarse.dice
    assert coarse.aerated_ml[1] == pytest.approx(coarse.aerated_ml[0], rel=0.05)
    assert coarse.full_s > 0 and coarse.subsampled_s > 0


def test_dice_of_masks():
    first, second = np.zeros((2, 3), bool), np.zeros((2, 3), bool)
    assert dice(first, second) == 1.0  # both empty: they agree
    first[0, :2], second[0, 1:] = True, True
    assert dice(first, second) == pytest.approx(0.5)


def test_the_first_cycle_finds_a_ground_glass_lesion_and_nothing_where_there_is_none():
    ct, truth = chest_phantom()
    hu = ct.array.copy()
    lesion = np.zeros(hu.shape, dtype=bool)
    lesion[12:24, 26:38, 14:26] = True  # inside the patient's right lung, 12 slices deep
    lesion &= truth
    hu[lesion] = -500  # ground glass: in the prior's HU range, still lung-dark enough to be aerated lung
    with_lesion = ct.with_array(hu)
    lungs = find_lungs(with_lesion)
    assert first_cycle_hits(with_lesion, lesion, lungs, grid_k=16, count=6) == 6  # one region per slice
    assert first_cycle_hits(with_lesion, np.zeros_like(lesion), lungs, grid_k=16, count=6) == 0
