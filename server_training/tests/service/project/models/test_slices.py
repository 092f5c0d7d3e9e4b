"""A volume's network input, prepared a slice at a time, is the very tensor of the whole-volume way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from covidal.data.slices import load_volume_slices
from covidal.data.volume import Volume
from covidal.data.window import HUWindow
from covidal.errors import CovidalError
from covidal.service.project.models import slices as modeling
from covidal.training.dataset import network_input

IMAGE_SIZE = 32


def ct(shape: tuple[int, int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-1100, 200, shape).astype(np.int16)


@pytest.mark.parametrize("dtype", [np.int16, np.float32, np.float64, np.uint8])
def test_network_input_a_slice_at_a_time_equals_the_whole_volume_way(dtype):
    array = ct((4, 37, 50), seed=3)
    array = (array % 256).astype(dtype) if dtype == np.uint8 else array.astype(dtype)
    window = HUWindow(-500.0, 1200.0)
    expected = network_input(
        [record.image for record in load_volume_slices(Volume(array), None, "ct", window)], IMAGE_SIZE
    )
    computed = modeling.network_input_of(array, window, IMAGE_SIZE)
    assert computed.dtype == torch.float32 and computed.shape == (4, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(computed, expected)
    assert modeling.tensor_nbytes(computed) == 4 * IMAGE_SIZE * IMAGE_SIZE * 4


def test_network_input_of_a_volume_with_nan_is_a_clear_error():
    array = np.zeros((2, 8, 8), dtype=np.float32)
    array[1, 3, 3] = np.nan
    with pytest.raises(CovidalError, match="NaN or infinite"):
        modeling.network_input_of(array, HUWindow(), IMAGE_SIZE)
