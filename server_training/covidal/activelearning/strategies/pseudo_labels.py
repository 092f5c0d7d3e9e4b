"""A strategy's pseudo-labels and how they join a cycle's training (CEAL), one core for ``covidal simulate`` and the
training jobs of ``covidal serve``.

After the answers of query ``t`` are in, the model that made the query labels the pool's pixels it is sure of
(:meth:`~covidal.activelearning.strategies.strategy.Strategy.pseudo_labels`); :func:`training_label_maps` then
trains every slice with an answer or a pseudo-label, answers winning where both exist. The pseudo-labels never
count as effort or as answers, and are made afresh each cycle: nothing of them is kept for the next one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from covidal.data.points import IGNORE_INDEX


@dataclass(frozen=True)
class PseudoLabels:
    """One cycle's pseudo-labels of the pool and what made them.

    Attributes:
        labels: int64 ``[N, S, S]`` on the network grid: the class of each kept confident pixel, -1 elsewhere.
        cycle: the query ``t`` (1, 2, ...) they follow.
        threshold: ``delta_t``, the class probability a pixel had to exceed.
        seed: the seed of the draw that kept a share of the confident pixels.
    """

    labels: np.ndarray
    cycle: int
    threshold: float
    seed: int

    @property
    def pixels(self) -> int:
        """How many pixels carry a pseudo-label."""
        return int((self.labels != IGNORE_INDEX).sum())

    def record(self) -> dict[str, int | float]:
        """What a cycle records of them (JSON): the cycle, ``threshold``, ``seed``, ``pixels`` and ``slices``
        (the pool slices with at least one)."""
        slices = int((self.labels != IGNORE_INDEX).any(axis=(1, 2)).sum())
        return {
            "cycle": self.cycle,
            "threshold": self.threshold,
            "seed": self.seed,
            "pixels": self.pixels,
            "slices": slices,
        }


def training_label_maps(
    rows: Sequence[int], answer_maps: np.ndarray, pseudo: PseudoLabels | None
) -> tuple[list[int], np.ndarray]:
    """The pool slices a cycle trains on and their label maps: the answered ones alone without pseudo-labels;
    with them, every slice with an answer or a pseudo-label, an answered pixel keeping its answer.

    Args:
        rows: the answered slices' positions in the pool (the rows of ``pseudo.labels``).
        answer_maps: int64 ``[len(rows), S, S]`` their answers as training targets (-1 unknown).
        pseudo: the cycle's pseudo-labels of the whole pool, or None.

    Returns:
        ``(pool rows, int64 [len(pool rows), S, S] label maps)``, rows in pool order when pseudo-labels join.

    Raises:
        ValueError: ``answer_maps`` and ``pseudo`` on different grids, or a row outside the pool.
    """
    if pseudo is None:
        return list(rows), answer_maps
    if answer_maps.shape[1:] != pseudo.labels.shape[1:]:
        raise ValueError(f"answers on a {answer_maps.shape[1:]} grid, pseudo-labels on {pseudo.labels.shape[1:]}")
    merged = pseudo.labels.copy()
    merged[list(rows)] = np.where(answer_maps != IGNORE_INDEX, answer_maps, merged[list(rows)])
    training = np.flatnonzero((merged != IGNORE_INDEX).any(axis=(1, 2))).tolist()
    return training, merged[training]
