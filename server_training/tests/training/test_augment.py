"""Batch augmentation: every infection click survives a zoom as exactly one pixel, at its zoomed position and on
the zoomed image's lesion; regions and masks follow the image; intensity leaves labels alone; the same seed draws
the same batches."""

import math

import pytest
import torch

from covidal.losses.base import Batch
from covidal.training.augment import (
    Augment,
    BatchAugmentation,
    moved_points,
    random_intensity,
    zoom_batch,
    zoom_in_limit,
)

SIZE = 64


def lesion_batch(centres: list[list[tuple[int, int]]]) -> Batch:
    """One slice per list of lesion centres: a bright disc of radius 4 at each, one infection click at its centre,
    a dense background region (rows 0-7) and a reference mask of the discs."""
    rows, cols = torch.meshgrid(torch.arange(SIZE), torch.arange(SIZE), indexing="ij")
    images = torch.zeros(len(centres), 1, SIZE, SIZE)
    labels = torch.full((len(centres), SIZE, SIZE), -1, dtype=torch.int64)
    labels[:, :8] = 0
    for index, slice_centres in enumerate(centres):
        for row, col in slice_centres:
            images[index, 0][(rows - row) ** 2 + (cols - col) ** 2 <= 16] = 1.0
            labels[index, row, col] = 1
    masks = (images[:, 0] > 0.5).float()
    return Batch(images, labels, masks, derived_labels=labels.clone())


CENTRES = [[(20, 20), (40, 45)], [(32, 32)], [(12, 50), (50, 12), (30, 40)]]


def expected_position(row: int, col: int, zoom: float) -> tuple[int, int]:
    def moved(index: int) -> int:
        normalised = (2 * index + 1) / SIZE - 1
        return round(((normalised * zoom + 1) * SIZE - 1) / 2)

    return moved(row), moved(col)


@pytest.mark.parametrize("zoom", [0.8, 0.9, 1.0, 1.1, 1.25])
def test_every_infection_click_is_one_pixel_at_its_zoomed_position_on_the_lesion(zoom):
    batch = lesion_batch(CENTRES)
    zoomed = zoom_batch(batch, torch.full((len(CENTRES),), zoom, dtype=torch.float64))
    for index, centres in enumerate(CENTRES):
        clicks = {tuple(p) for p in (zoomed.point_labels[index] == 1).nonzero().tolist()}
        assert clicks == {expected_position(row, col, zoom) for row, col in centres}  # none lost, none copied
        for row, col in clicks:
            assert zoomed.images[index, 0, row, col] > 0.9 and zoomed.masks[index, row, col] == 1


def test_nearest_resampling_would_lose_or_copy_clicks():
    """The control: clicks every 3 pixels in the middle, resampled like the derived labels (nearest), are lost
    zooming out and copied zooming in; moved, each stays one pixel (3 pixels apart stay apart at 0.8)."""
    labels = torch.full((1, SIZE, SIZE), -1, dtype=torch.int64)
    labels[0, 17:47:3, 17:47:3] = 1
    clicks = int((labels == 1).sum())
    batch = Batch(torch.zeros(1, 1, SIZE, SIZE), labels, derived_labels=labels.clone())
    for zoom, wrong in ((0.8, lambda count: count < clicks), (1.25, lambda count: count > clicks)):
        zoomed = zoom_batch(batch, torch.tensor([zoom], dtype=torch.float64))
        assert wrong(int((zoomed.derived_labels == 1).sum()))
        assert int((zoomed.point_labels == 1).sum()) == clicks


def test_zoom_in_is_capped_to_keep_a_border_click():
    batch = lesion_batch([[(SIZE - 1, 30)], [(32, 32)]])
    limit = zoom_in_limit(batch.point_labels)
    assert limit[0] == pytest.approx(1.0) and math.isfinite(limit[1]) and limit[1] > 1.25
    clean = lesion_batch([[(32, 32)]])
    clean.point_labels[0] = -1
    assert math.isinf(zoom_in_limit(clean.point_labels)[0])  # no infection click: no cap
    augmentation = BatchAugmentation(Augment.INTENSITY_SCALE, seed=0)
    for _ in range(20):
        out = augmentation(batch)
        assert int((out.point_labels[0] == 1).sum()) == 1 and int((out.point_labels[1] == 1).sum()) == 1


def test_clicks_merged_by_a_zoom_out_keep_infection():
    labels = torch.full((1, SIZE, SIZE), -1, dtype=torch.int64)
    labels[0, 10, 10], labels[0, 10, 11] = 1, 0  # neighbours that a zoom to 0.5 puts on one pixel
    moved = moved_points(labels, torch.tensor([0.5], dtype=torch.float64))
    assert int((moved == 1).sum()) == 1 and int((moved == 0).sum()) == 0


def test_zoom_out_leaves_the_border_unlabelled_and_unmasked():
    batch = lesion_batch(CENTRES)
    zoomed = zoom_batch(batch, torch.full((3,), 0.8, dtype=torch.float64))
    assert (zoomed.derived_labels[:, :3] == -1).all() and (zoomed.masks[:, :3] == 0).all()
    assert zoomed.derived_labels.dtype == torch.int64 and set(zoomed.derived_labels.unique().tolist()) <= {-1, 0, 1}


def test_zoom_one_changes_nothing():
    batch = lesion_batch(CENTRES)
    same = zoom_batch(batch, torch.ones(3, dtype=torch.float64))
    torch.testing.assert_close(same.images, batch.images, atol=1e-5, rtol=0)
    assert torch.equal(same.point_labels, batch.point_labels) and torch.equal(same.masks, batch.masks)
    assert torch.equal(same.derived_labels, batch.derived_labels)


def test_intensity_changes_the_image_only_and_keeps_its_order():
    batch = lesion_batch(CENTRES)
    images = batch.images + 0.1 * torch.randn(batch.images.shape, generator=torch.Generator().manual_seed(1))
    out = BatchAugmentation(Augment.INTENSITY, seed=3)(Batch(images, batch.point_labels, batch.masks))
    assert torch.equal(out.point_labels, batch.point_labels) and torch.equal(out.masks, batch.masks)
    assert not torch.allclose(out.images, images)
    # Gamma, contrast and brightness are monotone: the brightest pixel of each slice stays the brightest.
    assert torch.equal(out.images.flatten(1).argmax(1), images.flatten(1).argmax(1))


def test_intensity_of_a_flat_image_is_finite():
    flat = torch.full((2, 1, 8, 8), 3.0)
    assert torch.isfinite(random_intensity(flat, torch.Generator().manual_seed(0))).all()


@pytest.mark.parametrize("kind", [Augment.INTENSITY, Augment.INTENSITY_SCALE])
def test_the_same_seed_draws_the_same_batches(kind):
    batch = lesion_batch(CENTRES)
    first, second, other = (BatchAugmentation(kind, seed) for seed in (5, 5, 6))
    for _ in range(3):
        a, b, c = first(batch), second(batch), other(batch)
        assert torch.equal(a.images, b.images) and torch.equal(a.point_labels, b.point_labels)
        assert not torch.equal(a.images, c.images)


def test_none_returns_the_batch_itself():
    batch = lesion_batch(CENTRES)
    assert BatchAugmentation(Augment.NONE, seed=0)(batch) is batch
