"""CEAL (cost-effective active learning): ask about the most uncertain regions, and let the model label the
pixels it is sure of for the next training."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from covidal.activelearning.seeds import derived_seed
from covidal.activelearning.strategies.heuristics import MeasureStrategy
from covidal.activelearning.strategies.pseudo_labels import PseudoLabels
from covidal.data.points import IGNORE_INDEX
from covidal.models.slices.network import SegmentationNet
from covidal.uncertainty.measures import predictive_entropy

PSEUDO_BATCH = 8  # slices per forward pass of the pseudo-labelling


class Ceal(MeasureStrategy):
    """Entropy queries plus pseudo-labels: after query ``t`` (1, 2, ...), every pixel whose predicted class
    probability exceeds ``delta_t = max(delta - delta_decay * (t - 1), 0.5)`` is labelled with that class, and a
    seeded ``pseudo_weight`` share of them joins the next training (so they weigh that much against answered
    pixels). They never count as effort, and are dropped and made again every cycle. ``covidal simulate`` and a
    ``covidal serve`` project's training jobs add them the same way
    (:mod:`covidal.activelearning.strategies.pseudo_labels`).

    Args:
        delta: the first threshold, in (0.5, 1).
        delta_decay: the fall per cycle, >= 0.
        pseudo_weight: the share of confident pixels kept, in (0, 1].
    """

    adds_pseudo_labels = True

    def __init__(self, delta: float, delta_decay: float, pseudo_weight: float) -> None:
        super().__init__(predictive_entropy)
        self.delta, self.delta_decay, self.pseudo_weight = delta, delta_decay, pseudo_weight

    def threshold(self, cycle: int) -> float:
        """``delta_t`` of query ``cycle`` (>= 1)."""
        return max(self.delta - self.delta_decay * (cycle - 1), 0.5)

    @torch.no_grad()
    def pseudo_labels(self, model: SegmentationNet, images: Tensor, cycle: int, seed: int) -> PseudoLabels:
        """The kept confident pixels' classes, -1 elsewhere (eval-mode model, no dropout), at ``delta_t``.

        Args:
            images: ``[N, 1, S, S]`` network inputs of the pool.
            seed: seeds which confident pixels are kept.
        """
        model.eval()
        device = model.classifier.weight.device
        labels = np.full((len(images), *images.shape[-2:]), IGNORE_INDEX, dtype=np.int64)
        threshold = self.threshold(cycle)
        for start in range(0, len(images), PSEUDO_BATCH):
            probs = model(images[start : start + PSEUDO_BATCH].to(device)).float().softmax(dim=1).cpu()
            confidence, classes = probs.max(dim=1)
            confident = (confidence > threshold).numpy()
            labels[start : start + PSEUDO_BATCH][confident] = classes.numpy()[confident]
        draw_seed = derived_seed(seed, "ceal-pseudo-labels", cycle)
        labels[np.random.default_rng(draw_seed).random(labels.shape) >= self.pseudo_weight] = IGNORE_INDEX
        return PseudoLabels(labels, cycle, threshold, draw_seed)
