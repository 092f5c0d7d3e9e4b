"""Random augmentation of training batches: intensity (image only) and scale (image and every label map).

Torch operations on the whole batch, drawn from the augmentation's own generator, so a run is reproducible
from its seed and a resumed run continues the same draws (the generator's state is saved with the trainer's).

Intensity, per slice: each standardised image is rescaled to [0, 1], raised to a gamma in
[e^-0.3, e^0.3] = [0.74, 1.35], standardised again, then multiplied by a contrast in [0.85, 1.15] and shifted
by a brightness in [-0.1, 0.1] standard deviations.

Scale, per slice: a zoom about the centre by a factor in [0.8, 1.25] (log-uniform; above 1 zooms in). The image
is resampled bilinearly (the border repeated outside it); masks and derived label maps by nearest neighbour
(outside the image: background for masks, unlabelled for derived labels). Click maps are not resampled, since
nearest resampling would drop a one-pixel click when zooming out and copy it into up to four pixels when
zooming in (weighing that click four times). Instead **each labelled pixel moves to the pixel nearest its
zoomed position, exactly once**. The rule:
- every infection click stays on the grid: a slice's zoom-in is capped so that its outermost infection pixel
  stays in view (so an infection click is never lost);
- background pixels that a zoom-in pushes off the grid are dropped (their image is no longer in view either);
- pixels that a zoom-out brings onto one pixel merge, infection winning (as :func:`point_label_map` does), so
  two infection clicks are counted once only if they end up on the same pixel;
- a labelled region (e.g. a background region answer) stays labelled, sparser when zoomed in.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
import torch.nn.functional as F

from covidal.activelearning.seeds import derived_seed
from covidal.losses.base import BACKGROUND, IGNORE_INDEX, INFECTION, Batch
from covidal.training.augment_kind import Augment

GAMMA_LOG_RANGE = 0.3
CONTRAST_RANGE = (0.85, 1.15)
BRIGHTNESS_RANGE = (-0.1, 0.1)
ZOOM_LOG_RANGE = math.log(1.25)


class BatchAugmentation:
    """Applies ``kind`` to each training batch with draws from its own generator, seeded from the run's seed under
    the purpose ``"augment"`` (so its draws are not those of the run's other generators seeded ``seed``).

    Args:
        kind: which augmentation (:class:`Augment`); ``none`` returns batches unchanged.
        seed: the run's seed.
        stream: tells apart the generators of one run's processes (the data-parallel rank).
    """

    def __init__(self, kind: Augment, seed: int, stream: int = 0) -> None:
        self.kind = Augment(kind)
        self.generator = torch.Generator().manual_seed(derived_seed(seed, "augment", stream))

    def __call__(self, batch: Batch) -> Batch:
        """The augmented batch (a new one; ``batch`` is not changed)."""
        if self.kind is Augment.NONE:
            return batch
        batch = replace(batch, images=random_intensity(batch.images, self.generator))
        if self.kind is Augment.INTENSITY_SCALE:
            batch = random_zoom(batch, self.generator)
        return batch


def _uniform(count: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)


def random_intensity(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random gamma, contrast and brightness per slice (module docstring).

    Args:
        images: float ``[B, 1, H, W]``, standardised per slice.

    Returns:
        float ``[B, 1, H, W]`` of the same dtype and device.
    """
    count = images.shape[0]
    gamma = torch.exp(_uniform(count, -GAMMA_LOG_RANGE, GAMMA_LOG_RANGE, generator))
    contrast = _uniform(count, *CONTRAST_RANGE, generator)
    brightness = _uniform(count, *BRIGHTNESS_RANGE, generator)

    def per_slice(values: torch.Tensor) -> torch.Tensor:
        return values.to(images.device, images.dtype).view(count, 1, 1, 1)

    flat = images.flatten(1)
    low, high = flat.min(1).values.view(count, 1, 1, 1), flat.max(1).values.view(count, 1, 1, 1)
    unit = ((images - low) / (high - low).clamp_min(1e-6)) ** per_slice(gamma)
    flat = unit.flatten(1)
    mean, std = flat.mean(1).view(count, 1, 1, 1), flat.std(1).view(count, 1, 1, 1)
    return (unit - mean) / std.clamp_min(1e-6) * per_slice(contrast) + per_slice(brightness)


def random_zoom(batch: Batch, generator: torch.Generator) -> Batch:
    """A random zoom per slice of the images and every label map (module docstring for the click rule)."""
    count = batch.images.shape[0]
    drawn = torch.exp(_uniform(count, -ZOOM_LOG_RANGE, ZOOM_LOG_RANGE, generator))
    return zoom_batch(batch, torch.minimum(drawn, zoom_in_limit(batch.point_labels)))


def zoom_batch(batch: Batch, zoom: torch.Tensor) -> Batch:
    """``batch`` zoomed about the centre by ``zoom`` ``[B]`` (float64, > 0; above 1 zooms in), no cap applied."""
    count, _, height, width = batch.images.shape
    theta = torch.zeros(count, 2, 3, dtype=batch.images.dtype)
    theta[:, 0, 0] = theta[:, 1, 1] = (1.0 / zoom).to(theta.dtype)
    grid = F.affine_grid(theta, [count, 1, height, width], align_corners=False).to(batch.images.device)
    images = F.grid_sample(batch.images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    masks = None if batch.masks is None else _nearest(batch.masks, grid)
    derived = None if batch.derived_labels is None else _resampled_labels(batch.derived_labels, grid)
    return Batch(images, moved_points(batch.point_labels, zoom), masks, derived)


def zoom_in_limit(point_labels: torch.Tensor) -> torch.Tensor:
    """float64 ``[B]``: the largest zoom of each slice that keeps all its infection pixels on the grid (inf for a
    slice without any)."""
    count, height, width = point_labels.shape
    limit = torch.full((count,), math.inf, dtype=torch.float64)
    slice_of, rows, cols = (point_labels == INFECTION).nonzero(as_tuple=True)
    for index, size in ((rows, height), (cols, width)):
        # A pixel centre at normalised u lands at zoom * u, which must stay within the outermost centre 1 - 1/size.
        reach = _normalised(index.cpu(), size).abs().clamp_min(1e-9)
        limit.scatter_reduce_(0, slice_of.cpu(), (1.0 - 1.0 / size) / reach, reduce="amin")
    return limit


def moved_points(point_labels: torch.Tensor, zoom: torch.Tensor) -> torch.Tensor:
    """int64 ``[B, H, W]``: each labelled pixel of ``point_labels`` moved once to its zoomed position (``zoom``
    ``[B]``), off-grid ones dropped, merged ones infection-first (module docstring)."""
    _, height, width = point_labels.shape
    moved = torch.full_like(point_labels, IGNORE_INDEX)
    for label in (BACKGROUND, INFECTION):  # infection written last wins a shared pixel
        slice_of, rows, cols = (point_labels == label).nonzero(as_tuple=True)
        factor = zoom.to(point_labels.device)[slice_of]
        rows, cols = _zoomed_index(rows, height, factor), _zoomed_index(cols, width, factor)
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        moved[slice_of[inside], rows[inside], cols[inside]] = label
    return moved


def _normalised(index: torch.Tensor, size: int) -> torch.Tensor:
    """Pixel centres in grid_sample's normalised coordinates (align_corners=False), float64."""
    return (2 * index.to(torch.float64) + 1) / size - 1


def _zoomed_index(index: torch.Tensor, size: int, zoom: torch.Tensor) -> torch.Tensor:
    zoomed = _normalised(index, size) * zoom
    return torch.round(((zoomed + 1) * size - 1) / 2).to(torch.int64)


def _nearest(maps: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """float ``[B, H, W]`` maps resampled by nearest neighbour on ``grid``, 0 outside."""
    return F.grid_sample(maps[:, None], grid.to(maps.dtype), mode="nearest", align_corners=False)[:, 0]


def _resampled_labels(labels: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """int64 label maps (-1 unlabelled) resampled by nearest neighbour, unlabelled outside."""
    shifted = _nearest((labels + 1).to(grid.dtype), grid)  # 0 = unlabelled, so the zero padding is unlabelled
    return shifted.round().to(torch.int64) - 1
