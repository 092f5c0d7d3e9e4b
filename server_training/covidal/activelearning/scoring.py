"""Score pool slices with Monte-Carlo dropout, on the native grid where regions are defined."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from covidal.activelearning.pool import Pool
from covidal.activelearning.sharding import (
    distributed_world,
    gather_shards,
    shard_for_rank,
)
from covidal.data.grid import GridMapping
from covidal.models.base import SegmentationNet
from covidal.strategies.base import SliceScores, Strategy
from covidal.uncertainty.mc_dropout import mc_probabilities_cached, sample_dropout_masks


@torch.no_grad()
def score_pool(
    model: SegmentationNet,
    pool: Pool,
    indices: Sequence[int],
    strategy: Strategy,
    samples: int,
    seed: int,
    batch_size: int = 8,
) -> list[SliceScores]:
    """Pixel uncertainty of the pool slices at ``indices``, mapped to each slice's native grid.

    Dropout masks for all slices are drawn up front from ``seed`` (``[T, N, F]``),
    so a slice's masks do not depend on the batch size. The trunk runs once per
    slice (:func:`mc_probabilities_cached`). A strategy that needs no uncertainty
    (random) gets zero maps and the network is not run.

    Inside an initialised ``torch.distributed`` group of N processes (e.g. under
    torchrun, one GPU each) every process scores its shard of the slices
    (:func:`shard_for_rank`, with the dropout masks of those slices) and all of
    them return the gathered scores of all slices, as one process would.

    Args:
        model: the current model, on its device.
        pool: the pool.
        indices: which pool slices to score.
        strategy: turns ``[T, B, C, S, S]`` samples into ``[B, S, S]`` pixel scores.
        samples: T, dropout samples per slice.
        seed: seed of the dropout masks (saved with the cycle).
        batch_size: slices per forward pass.

    Returns:
        One :class:`SliceScores` per index, in order, with ``[H, W]`` native pixel scores.
    """
    records = [pool.records[i] for i in indices]
    if not strategy.needs_uncertainty or not records:
        return [SliceScores(r.case_id, r.slice_id, np.zeros(r.image.shape)) for r in records]
    masks = sample_dropout_masks(model, samples, len(records), seed)
    rank, world_size = distributed_world()
    if world_size == 1:
        return _score(model, pool, list(indices), masks, strategy, batch_size)
    positions = shard_for_rank(range(len(records)), rank, world_size)
    local = _score(model, pool, [indices[p] for p in positions], masks[:, positions], strategy, batch_size)
    return gather_shards(local, world_size)


def _score(model: SegmentationNet, pool: Pool, indices: list[int], masks: torch.Tensor, strategy: Strategy,
           batch_size: int) -> list[SliceScores]:
    """Scores of the pool slices at ``indices`` with their dropout masks ``[T, len(indices), F]``."""
    size = pool.images.shape[-1]
    device = model.classifier.weight.device
    scores = []
    for start in range(0, len(indices), batch_size):
        stop = min(start + batch_size, len(indices))
        images = pool.images[indices[start:stop]].to(device)
        probs = mc_probabilities_cached(model, images, masks[:, start:stop]).probs
        pixel = strategy.pixel_scores(probs).float().cpu().numpy()
        for index, train_grid_scores in zip(indices[start:stop], pixel):
            record = pool.records[index]
            rows, cols = GridMapping(record.image.shape, size).native_to_train_indices()
            native = train_grid_scores[rows[:, None], cols[None, :]]
            scores.append(SliceScores(record.case_id, record.slice_id, native))
    return scores
