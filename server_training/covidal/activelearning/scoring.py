"""Monte-Carlo dropout region scores on the network grid: slices -> T dropout samples -> pixel scores -> regions.

A slice's native pixel ``(j, i)`` takes the pixel score of the network pixel holding its centre
(:meth:`GridMapping.native_to_train_indices`), and a region's score reduces the scores of its native pixels.
Both reductions are taken on the network grid, band by band (:func:`reduce_to_regions`), without mapping
every score to every native pixel first: the same numbers, much faster for a 512 x 512 CT.

The trunk runs once per slice (:func:`mc_probabilities_cached`). Inside an initialised ``torch.distributed``
group of N processes (e.g. under torchrun, one GPU each) every process scores its shard of the slices, with
the dropout masks of those slices, and all of them return the gathered scores of every slice.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import torch
from torch import Tensor

from covidal.activelearning.sharding import distributed_world, gather_shards, shard_for_rank
from covidal.data.resizing import GridMapping
from covidal.models.slices.network import SegmentationNet
from covidal.regions.grid import RegionGrid
from covidal.uncertainty.mc_dropout import MCSamples, mc_probabilities_cached

PixelMeasure = Callable[[Tensor], Tensor]
"""MC softmax samples ``[T, B, C, S, S]`` -> pixel scores ``[B, S, S]`` (higher = more uncertain)."""

Sampler = Callable[[SegmentationNet, Tensor, Tensor], MCSamples]
"""``(model, images [B, 1, S, S], masks [T, B, F]) -> MCSamples``: how the T dropout samples are computed."""

RegionMaps = Callable[[MCSamples, Tensor], Tensor]
"""``(MC samples, images [B, 1, S, S]) -> [B, F, S, S]``: pixel maps a strategy wants averaged per region as well
(e.g. the trunk features, as region descriptors)."""


class Reduction(StrEnum):
    """How a region's pixel scores become its score.

    ``top-mean`` (the default) is the mean of the region's :data:`TOP_FRACTION` highest pixel scores: it grows
    with how much uncertain area a region holds, where ``max`` gives the same score to every region with one
    pixel on the predicted boundary (entropy's maximum, ln 2, for all of them).
    """

    MAX = "max"
    MEAN = "mean"
    TOP_MEAN = "top-mean"


DEFAULT_REDUCTION = Reduction.TOP_MEAN
TOP_FRACTION = 0.1
"""Share of a region's native pixels whose scores ``top-mean`` averages (at least one pixel). Not tuned: a 64 x 64
region then averages its 410 most uncertain pixels, a band a few pixels wide along a lesion's boundary."""


def band_starts(grid: RegionGrid, shape: tuple[int, int]) -> tuple[list[int], list[int]]:
    """Where each row band and each column band of ``grid`` on an ``(H, W)`` slice starts: ``side`` each,
    the indices ``np.ufunc.reduceat`` takes to reduce a slice's rows or columns band by band.

    Raises:
        ValueError: ``H`` or ``W`` below the grid's side.
    """
    boxes = grid.boxes(shape)
    return [boxes[band * grid.side].row0 for band in range(grid.side)], [box.col0 for box in boxes[: grid.side]]


def reduce_to_regions(
    network_scores: np.ndarray, native_shape: tuple[int, int], grid: RegionGrid, reduction: Reduction
) -> np.ndarray:
    """float64 ``[B, R]``: each region of ``native_shape`` slices whose native pixels take network-grid scores.

    Native pixel ``(j, i)`` takes ``network_scores[b, rows[j], cols[i]]`` (``rows, cols`` from
    :meth:`GridMapping.native_to_train_indices`). A region's maximum over its native pixels is the maximum
    over its native column bands, then row bands, of the network columns and rows they map to; its mean is
    the same sums divided by its native pixel count; its top mean sorts the network pixels it maps to, each
    counted as often as native pixels map to it.

    Args:
        network_scores: ``[B, S, S]`` pixel scores on the network grid.
        native_shape: ``(H, W)`` of the slices the regions cut.

    Raises:
        ValueError: ``H`` or ``W`` below the grid's side.
    """
    scores = np.asarray(network_scores, dtype=np.float64)
    if Reduction(reduction) is Reduction.TOP_MEAN:
        return _top_means(scores, native_shape, grid)
    rows, cols = GridMapping(native_shape, network_scores.shape[-1]).native_to_train_indices()
    row_starts, col_starts = band_starts(grid, native_shape)
    ufunc = np.maximum if Reduction(reduction) is Reduction.MAX else np.add
    by_column_band = ufunc.reduceat(scores[:, :, cols], col_starts, axis=2)  # [B, S, side]
    by_region = ufunc.reduceat(by_column_band[:, rows, :], row_starts, axis=1).reshape(len(scores), grid.regions)
    if ufunc is np.maximum:
        return by_region
    sizes = np.array([(box.row1 - box.row0) * (box.col1 - box.col0) for box in grid.boxes(native_shape)])
    return by_region / sizes


def _top_means(network: np.ndarray, native_shape: tuple[int, int], grid: RegionGrid) -> np.ndarray:
    """float64 ``[B, R]``: the mean of the :data:`TOP_FRACTION` highest native pixel scores of each region (at
    least one pixel), from the network grid ``[B, S, S]``.

    A region's native pixels take the scores of a block of network pixels, each repeated as many times as native
    pixels map to it (its row's count times its column's). So the top ``k`` native scores are the block's scores
    in decreasing order, each taken up to its count until ``k`` are taken: no native-size array is made.
    """
    rows, cols = GridMapping(native_shape, network.shape[-1]).native_to_train_indices()
    out = np.empty((len(network), grid.regions))
    for index, box in enumerate(grid.boxes(native_shape)):
        block_rows, row_counts = np.unique(rows[box.row0 : box.row1], return_counts=True)
        block_cols, col_counts = np.unique(cols[box.col0 : box.col1], return_counts=True)
        values = network[:, block_rows[:, None], block_cols[None, :]].reshape(len(network), -1)
        counts = np.outer(row_counts, col_counts).ravel().astype(np.float64)
        top = max(1, math.ceil(TOP_FRACTION * counts.sum()))
        order = np.argsort(-values, axis=1, kind="stable")
        taken_counts = counts[order]
        before = np.cumsum(taken_counts, axis=1) - taken_counts
        taken = np.clip(top - before, 0.0, taken_counts)
        out[:, index] = (np.take_along_axis(values, order, axis=1) * taken).sum(axis=1) / top
    return out


def pixel_scores_of(samples: MCSamples, measure: PixelMeasure) -> Tensor:
    """float64 ``[B, S, S]`` pixel scores on the CPU of MC-dropout ``samples``.

    The measure runs in float64: in float32 the entropy of every probability within about 1e-4 of 0.5 rounds
    to ln 2 exactly, so uncertain pixels near the boundary all tie.

    Raises:
        ValueError: as the measure.
    """
    return measure(samples.probs.double()).to("cpu", torch.float64)


def mc_pixel_scores(
    model: SegmentationNet,
    images: Tensor,
    masks: Tensor,
    measure: PixelMeasure,
    sampler: Sampler = mc_probabilities_cached,
) -> Tensor:
    """float64 ``[B, S, S]`` pixel scores (:func:`pixel_scores_of`) of the MC-dropout samples of ``images``
    ``[B, 1, S, S]`` with head-dropout ``masks`` ``[T, B, F]`` (moved to the model's device).

    Raises:
        ValueError: as the sampler and the measure.
    """
    return pixel_scores_of(sampler(model, images, masks), measure)


def region_means(maps: Tensor, grid: RegionGrid) -> np.ndarray:
    """float64 ``[B, R, F]``: the mean of each of ``maps`` ``[B, F, S, S]`` over each region, taken on the network
    grid (adaptive average pooling to ``side x side`` cells: the region's box up to the resizing of a non-square
    slice or a side that does not divide S). For descriptors and features, not for ranking by a measure."""
    pooled = torch.nn.functional.adaptive_avg_pool2d(maps.double().cpu(), grid.side)  # [B, F, side, side]
    return pooled.flatten(2).transpose(1, 2).numpy()


@dataclass(frozen=True)
class RegionScores:
    """What one MC-dropout pass over a stack gives.

    Attributes:
        scores: float64 ``[N, R]`` region scores, ``-inf`` for slices not scored.
        means: float64 ``[N, R, F]`` region means of the pass's :data:`RegionMaps`, NaN for slices not scored;
            None when no maps were asked for.
    """

    scores: np.ndarray
    means: np.ndarray | None


@torch.no_grad()
def mc_region_pass(
    model: SegmentationNet,
    images: Tensor,
    masks: Tensor,
    shapes: Sequence[tuple[int, int]],
    grid: RegionGrid,
    measure: PixelMeasure,
    reduction: Reduction = DEFAULT_REDUCTION,
    batch_size: int = 8,
    positions: Sequence[int] | None = None,
    maps: RegionMaps | None = None,
    sampler: Sampler = mc_probabilities_cached,
) -> RegionScores:
    """Region scores of slices by their MC-dropout pixel scores, and the region means of ``maps`` of the same
    pass (no second forward pass).

    Args:
        model: the current model, on its device.
        images: ``[N, 1, S, S]`` network inputs of the N slices (any device).
        masks: ``[T, N, F]`` head-dropout masks, one set per slice, drawn for all N so that a slice's masks
            depend neither on the batch size nor on which slices are scored.
        shapes: native ``(H, W)`` of each slice.
        grid: how each slice is cut into R regions.
        measure: MC samples -> pixel scores.
        reduction: how a region's native pixel scores become its score (:class:`Reduction`).
        batch_size: slices per forward pass.
        positions: which slices to score (default all); the others' rows are ``-inf`` (NaN in the means).
        maps: ``(samples, images) -> [B, F, S, S]`` whose region means (:func:`region_means`) the caller wants.
        sampler: how the samples are computed (default: the cached-trunk MC dropout).

    Raises:
        ValueError: a slice smaller than the grid, or as :func:`mc_pixel_scores`.
    """
    positions = list(range(len(images)) if positions is None else positions)
    scores = np.full((len(images), grid.regions), -np.inf)
    if not positions:
        return RegionScores(scores, None)
    rank, world_size = distributed_world()
    local = shard_for_rank(positions, rank, world_size) if world_size > 1 else positions
    device = model.classifier.weight.device
    rows: list[tuple[np.ndarray, np.ndarray | None]] = []
    for start in range(0, len(local), batch_size):
        batch = local[start : start + batch_size]
        batch_images = images[batch].to(device)
        samples = sampler(model, batch_images, masks[:, batch])
        pixel = pixel_scores_of(samples, measure).numpy()
        batch_scores = np.empty((len(batch), grid.regions))
        for shape in dict.fromkeys(shapes[p] for p in batch):  # one reduction per native shape in the batch
            same = [i for i, p in enumerate(batch) if shapes[p] == shape]
            batch_scores[same] = reduce_to_regions(pixel[same], shape, grid, reduction)
        batch_means = None if maps is None else region_means(maps(samples, batch_images), grid)
        rows += [(batch_scores[i], None if batch_means is None else batch_means[i]) for i in range(len(batch))]
    if world_size > 1:
        rows = gather_shards(rows, world_size)
    scores[positions] = np.stack([row for row, _ in rows])
    if maps is None:
        return RegionScores(scores, None)
    means = np.full((len(images), grid.regions, rows[0][1].shape[-1]), np.nan)
    means[positions] = np.stack([mean for _, mean in rows])
    return RegionScores(scores, means)
