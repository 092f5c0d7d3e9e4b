"""Endless batches of random patches that cycle through every volume of a set."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from covidal.volumes.patches import AnsweredPatchSampler, PatchSampler
from covidal.volumes.preprocess import PreparedCase


@dataclass(frozen=True)
class PatchBatch:
    """One batch of training patches.

    Attributes:
        images: float32 ``[B, 1, D, H, W]``.
        labels: int64 ``[B, D, H, W]`` in {0, 1}, or {-1, 0, 1} for answered patches (-1: no answer).
        names: the case each patch was cropped from, ``B`` names.
    """

    images: torch.Tensor
    labels: torch.Tensor
    names: tuple[str, ...]

    def to(self, device: torch.device) -> PatchBatch:
        return PatchBatch(
            self.images.to(device, non_blocking=True), self.labels.to(device, non_blocking=True), self.names
        )


class BatchStream:
    """Batches drawn from ``cases`` in shuffled rounds, so every volume is used before any repeats.

    Each batch takes the next ``batch_size`` cases of a random permutation (a new one when
    it runs out) and crops one random patch from each. Expert batches used as the
    validation batch of the re-weighting therefore cycle through all expert volumes,
    rather than reusing the first batch (a bug of the authors' code).

    Raises:
        ValueError: no cases, a case without a label, or ``batch_size`` < 1.
    """

    def __init__(
        self, cases: Sequence[PreparedCase], batch_size: int, sampler: PatchSampler | AnsweredPatchSampler, seed: int
    ) -> None:
        if not cases:
            raise ValueError("a batch stream needs at least one case")
        unlabelled = [case.name for case in cases if case.label is None]
        if unlabelled:
            raise ValueError(f"training cases need labels; these have none: {', '.join(unlabelled)}")
        if batch_size < 1:
            raise ValueError(f"batch size must be at least 1, got {batch_size}")
        self._cases = list(cases)
        self._batch_size = batch_size
        self._sampler = sampler
        self._rng = np.random.default_rng(seed)
        self._queue: list[int] = []

    def next(self) -> PatchBatch:
        chosen = [self._cases[self._next_index()] for _ in range(self._batch_size)]
        images, labels = self._sampler.sample_batch([(case.image, case.label) for case in chosen])
        return PatchBatch(torch.from_numpy(images), torch.from_numpy(labels), tuple(case.name for case in chosen))

    def _next_index(self) -> int:
        if not self._queue:
            self._queue = self._rng.permutation(len(self._cases)).tolist()
        return self._queue.pop()
