"""The point loss: cross-entropy on the labelled pixels only (Laradji et al. 2020, Eq. 1)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from covidal.losses.base import (
    BACKGROUND,
    IGNORE_INDEX,
    INFECTION,
    Batch,
    LogitsLoss,
    LossResult,
    check_logits,
)
from covidal.validation import check_real


def point_loss(logits: Tensor, point_labels: Tensor, background_weight: float = 1.0) -> Tensor:
    """Class-balanced cross-entropy over the labelled pixels.

    The loss is ``mean CE over infection-labelled pixels + background_weight * mean CE over
    background-labelled pixels``; a term is left out when its class has no
    labelled pixel. Each mean is pooled over the whole batch (all images'
    pixels of that class together), not averaged per image.

    Balanced because a background-tagged region labels hundreds of pixels while
    an infected region gives a single click: a pixel-averaged CE is dominated by
    background and was seen to collapse to predicting no infection at all.

    Args:
        logits: ``[B, 2, H, W]``.
        point_labels: ``[B, H, W]`` int64 in {-1 (ignore), 0, 1}.
        background_weight: weight of the background term (above 1: fewer false positives, as a model trained on
            a few clicks over-segments).

    Returns:
        A scalar. With no labelled pixel it is a zero still connected to
        ``logits`` (so ``backward`` works and gives zero gradients).

    Raises:
        ValueError: if the shapes, dtype or label values are wrong.
    """
    check_logits(logits, point_labels)
    pixel_ce = F.cross_entropy(logits, point_labels, ignore_index=IGNORE_INDEX, reduction="none")
    total = logits.sum() * 0.0
    for label, weight in ((INFECTION, 1.0), (BACKGROUND, background_weight)):
        labelled = point_labels == label
        if labelled.any():
            total = total + weight * pixel_ce[labelled].mean()
    return total


class PointLoss(LogitsLoss):
    """The point loss on the clicks, plus ``derived_weight`` times the point loss on the batch's derived labels
    (pseudo-masks, certain background) when it has them.

    Args:
        derived_weight: weight of the derived labels' term, finite and >= 0 (0 leaves them out).
        background_weight: weight of the background term of each (:func:`point_loss`), finite and > 0.

    Raises:
        ValueError: a negative or non-finite weight, a background weight of 0.
    """

    def __init__(self, derived_weight: float = 0.0, background_weight: float = 1.0) -> None:
        self.derived_weight = check_real("derived_weight", derived_weight, minimum=0.0, error=ValueError)
        self.background_weight = check_real("background_weight", background_weight, above=0.0, error=ValueError)

    def from_logits(self, logits: Tensor, batch: Batch) -> LossResult:
        loss = point_loss(logits, batch.point_labels, self.background_weight)
        parts = {"point": loss.item()}
        if self.derived_weight > 0 and batch.derived_labels is not None:
            derived = point_loss(logits, batch.derived_labels, self.background_weight)
            loss = loss + self.derived_weight * derived
            parts["derived"] = derived.item()
        return LossResult(total=loss, parts=parts)
