"""VAAL: region crops, and a discriminator that scores open regions unlike the answered ones first."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from strategy_testing import GRID_K, SIZE, part, query

from covidal.activelearning.strategies import StrategyParams, build_strategy
from covidal.activelearning.strategies.vaal import region_crops
from covidal.regions.grid import RegionGrid


def test_region_crops_are_the_regions_resized_in_row_major_order():
    images = torch.arange(4.0).reshape(1, 1, 2, 2).repeat_interleave(16, dim=2).repeat_interleave(16, dim=3)
    crops = region_crops(images, RegionGrid(4), 8)
    assert crops.shape == (1, 4, 1, 8, 8)
    assert [float(crops[0, r].mean()) for r in range(4)] == [0.0, 1.0, 2.0, 3.0]


def test_open_regions_unlike_the_answered_ones_score_higher(single_thread_torch):
    """Answered regions are smooth bright squares; of the open ones, half look the same, half are noise."""
    rng = np.random.default_rng(0)
    images = np.ones((4, 1, SIZE, SIZE), np.float32)
    images[2:, :, :, : SIZE // 2] = rng.standard_normal((2, 1, SIZE, SIZE // 2)).astype(np.float32) * 2
    answered = np.zeros((4, GRID_K), bool)
    answered[:2] = True
    strategy = build_strategy("vaal", StrategyParams(vae_steps=150, crop=8))
    chosen = query(strategy, [part(torch.from_numpy(images), answered)], None, count=4, cap=None)
    noisy = {(2, 0), (2, 2), (3, 0), (3, 2)}  # the left half of slices 2 and 3
    assert {(q.slice, q.region) for q in chosen} == noisy


def test_no_answered_region_is_a_clear_error():
    with pytest.raises(ValueError, match="none is answered"):
        query(build_strategy("vaal"), [part(torch.zeros(4, 1, SIZE, SIZE), np.zeros((4, GRID_K), bool))], None)


def test_the_crop_must_be_a_multiple_of_four():
    with pytest.raises(ValueError, match="multiple of 4"):
        build_strategy("vaal", StrategyParams(crop=12)).__class__(5, 10)
