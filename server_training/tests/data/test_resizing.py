"""Tests for covidal.data.resizing: native <-> training grid mapping and resampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from covidal.data.points import PointLabel
from covidal.data.resizing import (
    DEFAULT_TRAIN_SIZE,
    GridMapping,
    point_label_map_on_grid,
    probabilities_to_native,
    resize_image,
    resize_mask,
)

# (native_shape, S, native (row, col), expected training (row, col)); r_t = floor((r + 0.5) * S / H).
NATIVE_TO_TRAIN_CASES = [
    ((100, 200), 352, (0, 0), (1, 0)),  # 0.5 * 3.52 = 1.76; 0.5 * 1.76 = 0.88
    ((100, 200), 352, (50, 100), (177, 176)),  # 50.5 * 3.52 = 177.76; 100.5 * 1.76 = 176.88
    ((100, 200), 352, (99, 199), (350, 351)),  # 99.5 * 3.52 = 350.24; 199.5 * 1.76 = 351.12
    ((352, 352), 352, (7, 351), (7, 351)),  # same size: identity
    ((704, 704), 352, (0, 1), (0, 0)),  # 0.25 and 0.75
    ((704, 704), 352, (2, 703), (1, 351)),  # 1.25 and 351.75
    ((1, 3), 8, (0, 2), (4, 6)),  # 0.5 * 8 = 4; 2.5 * 8 / 3 = 6.67
]

# (native_shape, S, training (row, col), expected native (row, col)); r = floor((r_t + 0.5) * H / S).
TRAIN_TO_NATIVE_CASES = [
    ((100, 200), 352, (0, 0), (0, 0)),  # 0.14 and 0.28
    ((100, 200), 352, (176, 176), (50, 100)),  # 176.5 * 100 / 352 = 50.14; 176.5 * 200 / 352 = 100.28
    ((100, 200), 352, (351, 351), (99, 199)),  # 99.86 and 199.72
    ((704, 704), 352, (0, 351), (1, 703)),  # 0.5 * 2 = 1; 351.5 * 2 = 703
    ((1, 3), 8, (7, 7), (0, 2)),  # 7.5 / 8 = 0.94; 7.5 * 3 / 8 = 2.81
]


@pytest.mark.parametrize(("shape", "size", "native", "train"), NATIVE_TO_TRAIN_CASES)
def test_native_to_train_table(shape, size, native, train):
    assert GridMapping(shape, size).native_to_train(*native) == train


@pytest.mark.parametrize(("shape", "size", "train", "native"), TRAIN_TO_NATIVE_CASES)
def test_train_to_native_table(shape, size, train, native):
    assert GridMapping(shape, size).train_to_native(*train) == native


def test_default_train_size_is_352():
    assert GridMapping((10, 10)).train_size == DEFAULT_TRAIN_SIZE == 352


@pytest.mark.parametrize("shape", [(100, 200), (351, 352), (177, 3), (1, 1), (352, 352)])
def test_upscaling_round_trip_native_train_native_is_exact(shape):
    mapping = GridMapping(shape, 352)
    for row in range(shape[0]):
        for col in range(0, shape[1], 7):
            assert mapping.train_to_native(*mapping.native_to_train(row, col)) == (row, col)


@pytest.mark.parametrize("shape", [(510, 400), (704, 353)])
def test_downscaling_round_trip_train_native_train_is_exact(shape):
    mapping = GridMapping(shape, 352)
    for index in range(352):
        assert mapping.native_to_train(*mapping.train_to_native(index, index)) == (index, index)


def test_downscaling_native_round_trip_stays_within_one_training_pixel_footprint():
    height = 510
    mapping = GridMapping((height, height), 352)
    for row in range(height):
        back, _ = mapping.train_to_native(*mapping.native_to_train(row, 0))
        assert abs(back - row) <= height / 352


def test_train_to_native_indices_match_train_to_native():
    mapping = GridMapping((37, 90), 16)
    rows, cols = mapping.train_to_native_indices()
    assert rows.tolist() == [mapping.train_to_native(r, 0)[0] for r in range(16)]
    assert cols.tolist() == [mapping.train_to_native(0, c)[1] for c in range(16)]


@pytest.mark.parametrize(("shape", "size"), [((37, 90), 16), ((512, 512), 352), ((7, 9), 32)])
def test_native_to_train_indices_match_native_to_train(shape, size):
    mapping = GridMapping(shape, size)
    rows, cols = mapping.native_to_train_indices()
    assert rows.tolist() == [mapping.native_to_train(r, 0)[0] for r in range(shape[0])]
    assert cols.tolist() == [mapping.native_to_train(0, c)[1] for c in range(shape[1])]


@pytest.mark.parametrize(
    ("shape", "size", "message"),
    [
        ((0, 5), 352, "native shape"),
        ((5, -1), 352, "native shape"),
        ((5,), 352, "native shape"),
        ((2.5, 3), 352, "native shape"),
        ((5, 5), 7, "training grid size"),
        ((5, 5), 0, "training grid size"),
        ((5, 5), 16.5, "training grid size"),
        ((5, 5), True, "training grid size"),
    ],
)
def test_grid_mapping_rejects_bad_options(shape, size, message):
    with pytest.raises(ValueError, match=message):
        GridMapping(shape, size)


def test_mapping_rejects_positions_outside_the_grid():
    mapping = GridMapping((10, 20), 16)
    with pytest.raises(ValueError, match="row 10 is outside a grid of 10"):
        mapping.native_to_train(10, 0)
    with pytest.raises(ValueError, match="col -1 is outside"):
        mapping.native_to_train(0, -1)
    with pytest.raises(ValueError, match="col 16 is outside a grid of 16"):
        mapping.train_to_native(0, 16)


@pytest.mark.parametrize(("shape", "size"), [((50, 70), 32), ((20, 13), 64), ((32, 32), 32)])
def test_resize_image_shape_dtype_and_range(shape, size):
    image = np.random.default_rng(0).integers(-1000, 400, size=shape).astype(np.int16)
    resized = resize_image(image, size)
    assert resized.shape == (size, size)
    assert resized.dtype == np.float32
    assert image.min() - 1e-3 <= resized.min() and resized.max() <= image.max() + 1e-3


def test_resize_image_keeps_constants_and_identity():
    np.testing.assert_allclose(resize_image(np.full((40, 25), 3.5), 16), 3.5, rtol=1e-6)
    image = np.random.default_rng(1).random((16, 16)).astype(np.float32)
    np.testing.assert_allclose(resize_image(image, 16), image, atol=1e-6)


def test_resize_image_antialiasing_keeps_a_thin_line_when_shrinking():
    image = np.zeros((64, 64), dtype=np.float32)
    image[0] = 1.0
    # Plain bilinear samples rows 3 and 4 for output row 0 and loses the line.
    plain = F.interpolate(torch.from_numpy(image)[None, None], size=(8, 8), mode="bilinear", align_corners=False)
    assert float(plain.max()) == 0.0
    resized = resize_image(image, 8)
    assert np.all(resized[0] > 0.05)
    assert np.all(resized[4:] == 0.0)


@pytest.mark.parametrize(("function", "bad"), [(resize_image, np.zeros((3, 4, 4))), (resize_mask, np.zeros(9))])
def test_resize_rejects_non_2d(function, bad):
    with pytest.raises(ValueError, match="2D"):
        function(bad, 16)


@pytest.mark.parametrize("function", [resize_image, resize_mask])
def test_resize_rejects_small_size(function):
    with pytest.raises(ValueError, match=">= 8"):
        function(np.zeros((10, 10)), 4)


@pytest.mark.parametrize(("shape", "size"), [((50, 70), 32), ((20, 13), 64), ((37, 37), 37), ((96, 33), 40)])
def test_resize_mask_follows_train_to_native_and_torch_nearest_exact(shape, size):
    mask = np.random.default_rng(2).integers(0, 3, size=shape).astype(np.uint8)
    resized = resize_mask(mask, size)
    assert resized.shape == (size, size)
    assert resized.dtype == np.uint8
    mapping = GridMapping(shape, size)
    for row in range(0, size, 5):
        for col in range(0, size, 3):
            assert resized[row, col] == mask[mapping.train_to_native(row, col)]
    torch_nearest = F.interpolate(torch.from_numpy(mask)[None, None].float(), size=(size, size), mode="nearest-exact")
    np.testing.assert_array_equal(resized, torch_nearest[0, 0].numpy().astype(np.uint8))


def test_point_label_map_on_grid_maps_points_and_infection_wins():
    mapping = GridMapping((704, 100), 352)
    points = [
        PointLabel("s", 0, 0, 0),  # -> (0, 1)
        PointLabel("s", 1, 0, 1),  # -> (0, 1) as well: infection wins
        PointLabel("s", 703, 99, 0),  # -> (351, 350)
        PointLabel("s", 3, 50, 1),  # 3.5 / 2 = 1.75 -> 1; 50.5 * 3.52 = 177.76 -> 177
    ]
    label_map = point_label_map_on_grid(points, mapping)
    assert label_map.shape == (352, 352)
    assert label_map.dtype == np.int64
    expected = np.full((352, 352), -1)
    expected[0, 1] = 1
    expected[351, 350] = 0
    expected[1, 177] = 1
    np.testing.assert_array_equal(label_map, expected)


def test_point_label_map_on_grid_rejects_points_outside_the_native_slice():
    with pytest.raises(ValueError, match="outside"):
        point_label_map_on_grid([PointLabel("s", 10, 0, 1)], GridMapping((10, 10), 16))


@pytest.mark.parametrize("native_shape", [(50, 70), (20, 13), (32, 32)])
def test_probabilities_to_native_shape_constant_and_sums(native_shape):
    logits = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    probs = torch.softmax(logits, dim=1)
    native = probabilities_to_native(probs, native_shape)
    assert native.shape == (2, 3, *native_shape)
    assert native.dtype == probs.dtype
    assert float(native.min()) >= 0.0 and float(native.max()) <= 1.0 + 1e-6
    torch.testing.assert_close(native.sum(dim=1), torch.ones(2, *native_shape))
    constant = probabilities_to_native(torch.full((1, 2, 32, 32), 0.25), native_shape)
    torch.testing.assert_close(constant, torch.full((1, 2, *native_shape), 0.25))


def test_probabilities_to_native_upscaling_is_plain_bilinear():
    probs = torch.rand(1, 2, 16, 16, generator=torch.Generator().manual_seed(3))
    plain = F.interpolate(probs, size=(40, 24), mode="bilinear", align_corners=False)
    torch.testing.assert_close(probabilities_to_native(probs, (40, 24)), plain)


@pytest.mark.parametrize(
    ("probs", "shape", "message"),
    [
        (torch.zeros(3, 16, 16), (8, 8), "floating tensor"),
        (torch.zeros(1, 2, 16, 16, dtype=torch.int64), (8, 8), "floating tensor"),
        (torch.zeros(1, 2, 16, 16), (0, 8), "native shape"),
    ],
)
def test_probabilities_to_native_rejects_bad_input(probs, shape, message):
    with pytest.raises(ValueError, match=message):
        probabilities_to_native(probs, shape)
