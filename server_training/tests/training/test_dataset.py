"""Training tensors: standardisation, shapes, point maps on the training grid, epoch batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from covidal.data.points import PointLabel
from covidal.data.slices import SliceRecord
from covidal.training.dataset import TrainingSlices, network_input, standardise

SIZE = 32


def record(slice_id: str, shape=(40, 48), seed=0, with_mask=True) -> SliceRecord:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, dtype=np.uint8)
    mask[5:12, 6:20] = 1
    return SliceRecord(slice_id, rng.random(shape, dtype=np.float32), mask if with_mask else None, slice_id, None)


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ([[0.0, 2.0], [4.0, 6.0]], np.array([[-3, -1], [1, 3]]) / math.sqrt(5)),  # mean 3, std sqrt(5)
        ([[10.0, 10.0], [10.0, 12.0]], np.array([[-1, -1], [-1, 3]]) / math.sqrt(3)),  # mean 10.5, std sqrt(0.75)
        ([[0.7, 0.7], [0.7, 0.7]], np.zeros((2, 2))),  # constant: std 0 -> only centred, not divided by 0
    ],
)
def test_standardise_table(image, expected):
    result = standardise(np.array(image, dtype=np.float32))
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, atol=1e-6)


def test_standardise_gives_zero_mean_unit_std():
    image = np.random.default_rng(3).uniform(0.2, 0.9, (40, 48)).astype(np.float32)
    result = standardise(image)
    assert abs(float(result.mean())) < 1e-5
    assert float(result.std()) == pytest.approx(1.0, abs=1e-5)


def test_network_input_shape_and_per_slice_standardisation():
    records = [record("a", (40, 48), 0), record("b", (64, 30), 1)]
    tensor = network_input([r.image for r in records], SIZE)
    assert tensor.shape == (2, 1, SIZE, SIZE) and tensor.dtype == torch.float32
    for one in tensor:
        assert abs(float(one.mean())) < 1e-4 and float(one.std(unbiased=False)) == pytest.approx(1.0, abs=1e-4)


def test_build_shapes_with_and_without_masks():
    records = [record(str(n), seed=n) for n in range(3)]
    with_masks = TrainingSlices.build(records, {}, SIZE, with_masks=True)
    assert len(with_masks) == 3
    assert with_masks.images.shape == (3, 1, SIZE, SIZE)
    assert with_masks.point_labels.shape == (3, SIZE, SIZE) and with_masks.point_labels.dtype == torch.int64
    assert with_masks.masks.shape == (3, SIZE, SIZE)
    assert set(torch.unique(with_masks.masks).tolist()) == {0.0, 1.0}
    assert TrainingSlices.build(records, {}, SIZE, with_masks=False).masks is None


def test_point_maps_land_on_the_training_grid():
    """40x48 -> 32x32: native (r, c) -> (floor((r + .5) * 32 / 40), floor((c + .5) * 32 / 48))."""
    records = [record("a"), record("b")]
    points = {
        "a": [PointLabel("a", 20, 24, 1), PointLabel("a", 0, 47, 0), PointLabel("a", 39, 0, 0)],
        # "b" has no points: its map is all "ignore"
    }
    labels = TrainingSlices.build(records, points, SIZE, with_masks=False).point_labels
    expected = torch.full((SIZE, SIZE), -1, dtype=torch.int64)
    expected[16, 16] = 1  # (41 * 32 // 80, 49 * 32 // 96)
    expected[0, 31] = 0  # (32 // 80, 95 * 32 // 96)
    expected[31, 0] = 0  # (79 * 32 // 80, 32 // 96)
    assert torch.equal(labels[0], expected)
    assert torch.equal(labels[1], torch.full((SIZE, SIZE), -1, dtype=torch.int64))


def tagged_slices(count: int) -> TrainingSlices:
    """Slice i has every image pixel, point label and mask pixel tied to i, to follow it through batches."""
    index = torch.arange(count)
    return TrainingSlices(
        images=index.float().view(count, 1, 1, 1).expand(count, 1, 8, 8).clone(),
        point_labels=(index % 2).view(count, 1, 1).expand(count, 8, 8).clone(),
        masks=(index % 2).float().view(count, 1, 1).expand(count, 8, 8).clone(),
    )


@pytest.mark.parametrize(
    ("count", "batch_size", "sizes"), [(7, 3, [3, 3, 1]), (6, 3, [3, 3]), (2, 8, [2]), (1, 1, [1])]
)
def test_batches_cover_every_slice_once_per_epoch(count, batch_size, sizes):
    data = tagged_slices(count)
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):  # two epochs: each one a full, duplicate-free pass
        batches = list(data.batches(batch_size, generator, torch.device("cpu")))
        assert [len(b.images) for b in batches] == sizes
        seen = torch.cat([b.images[:, 0, 0, 0] for b in batches]).long()
        assert sorted(seen.tolist()) == list(range(count))
        for batch in batches:  # labels and masks travel with their image
            tags = batch.images[:, 0, 0, 0].long()
            assert torch.equal(batch.point_labels[:, 0, 0], tags % 2)
            assert torch.equal(batch.masks[:, 0, 0], (tags % 2).float())


def test_batch_order_is_shuffled_and_seeded():
    data = tagged_slices(20)

    def orders(seed):
        generator = torch.Generator().manual_seed(seed)
        return [
            torch.cat([b.images[:, 0, 0, 0] for b in data.batches(4, generator, torch.device("cpu"))]).tolist()
            for _ in range(2)
        ]

    first, second = orders(0)
    assert orders(0) == [first, second]
    assert first != second  # a new order every epoch
    assert first != sorted(first)
