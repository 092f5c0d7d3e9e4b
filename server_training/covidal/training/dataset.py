"""Slices on the square training grid, with their point labels (and masks for the full loss)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from covidal.data.points import PointLabel
from covidal.data.resizing import (
    GridMapping,
    point_label_map_on_grid,
    resize_image,
    resize_mask,
)
from covidal.data.slices import SliceRecord
from covidal.data.window import LUNG_WINDOW, HUWindow
from covidal.losses.base import Batch
from covidal.training.background_prior import BackgroundPrior
from covidal.training.derived_labels import derived_label_maps_of_records
from covidal.training.distributed import SINGLE_PROCESS, Shard, shard_order


def standardise(image: np.ndarray) -> np.ndarray:
    """Zero mean, unit variance per slice, so 8-bit JPGs and windowed HU look alike to the network."""
    std = float(image.std())
    return ((image - image.mean()) / (std if std > 1e-6 else 1.0)).astype(np.float32)


def network_input(images: Iterable[np.ndarray], size: int) -> torch.Tensor:
    """float32 ``[N, 1, S, S]``: each ``[H, W]`` image in [0, 1] resized and standardised, one at a time (so a
    generator that windows a CT slice by slice never holds a float copy of the whole CT)."""
    return torch.from_numpy(np.stack([standardise(resize_image(image, size)) for image in images]))[:, None]


@dataclass
class TrainingSlices:
    """All training slices held as tensors on the training grid.

    Attributes:
        images: ``[N, 1, S, S]`` standardised images.
        point_labels: ``[N, S, S]`` int64, -1 unlabelled, 0 background, 1 infection.
        masks: ``[N, S, S]`` float reference masks, or None when the loss does not need them.
        derived_labels: ``[N, S, S]`` int64 labels derived from the clicks and the image
            (:mod:`covidal.training.derived_labels`), or None.
    """

    images: torch.Tensor
    point_labels: torch.Tensor
    masks: torch.Tensor | None
    derived_labels: torch.Tensor | None = None

    @classmethod
    def build(
        cls,
        records: Sequence[SliceRecord],
        points_by_slice: Mapping[str, Sequence[PointLabel]],
        size: int,
        with_masks: bool,
        pseudo_masks: bool = False,
        background_prior: BackgroundPrior = BackgroundPrior.NONE,
        window: HUWindow = LUNG_WINDOW,
    ) -> TrainingSlices:
        """The slices on the ``size`` grid; ``pseudo_masks`` and ``background_prior`` choose the derived labels
        (certain background at the thresholds of the records' kind, HU ones in ``window``, the one they were
        windowed with)."""
        labels = [
            point_label_map_on_grid(points_by_slice.get(r.slice_id, []), GridMapping(r.image.shape, size))
            for r in records
        ]
        masks = None
        if with_masks:
            masks = torch.from_numpy(np.stack([resize_mask(r.mask, size) for r in records]).astype(np.float32))
        on_grid = [resize_image(r.image, size) for r in records]
        derived = derived_label_maps_of_records(records, on_grid, labels, pseudo_masks, background_prior, window)
        return cls(
            torch.from_numpy(np.stack([standardise(image) for image in on_grid]))[:, None],
            torch.from_numpy(np.stack(labels)),
            masks,
            None if derived is None else torch.from_numpy(derived),
        )

    def __len__(self) -> int:
        return len(self.images)

    def batch(self, index: torch.Tensor, device: torch.device) -> Batch:
        """The slices at ``index`` ``[B]`` as a batch on ``device``."""
        return Batch(
            images=self.images[index].to(device),
            point_labels=self.point_labels[index].to(device),
            masks=None if self.masks is None else self.masks[index].to(device),
            derived_labels=None if self.derived_labels is None else self.derived_labels[index].to(device),
        )

    def batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device, shard: Shard = SINGLE_PROCESS
    ) -> Iterator[Batch]:
        """Shuffled mini-batches for one epoch (the last one may be smaller): :func:`batch_indices`."""
        for index in batch_indices(len(self), batch_size, generator, shard):
            yield self.batch(index, device)


def batch_indices(
    count: int, batch_size: int, generator: torch.Generator, shard: Shard = SINGLE_PROCESS
) -> Iterator[torch.Tensor]:
    """One epoch's shuffled batches of positions in ``[0, count)`` (the last one may be smaller).

    Under data-parallel training every rank draws the same order from its identically seeded ``generator``
    and batches only its own shard of it (:func:`shard_order`), so the ranks' batches partition the epoch.
    """
    order = shard_order(torch.randperm(count, generator=generator), shard)
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
