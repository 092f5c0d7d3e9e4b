"""The fully supervised upper bound: Inf-Net's structure loss (Fan et al. 2020).

Weighted BCE plus weighted IoU on the infection logit, with pixels near the
mask's edges weighted up to 6 times. Inf-Net works on one sigmoid channel; a
2-class softmax equals the sigmoid of the logit difference, so the infection
logit is ``z = logits[:, 1] - logits[:, 0]``.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from covidal.losses.base import (
    BACKGROUND,
    INFECTION,
    NUM_CLASSES,
    Batch,
    LogitsLoss,
    LossResult,
)

EDGE_WINDOW = 31  # Inf-Net's window for "near an edge"
EDGE_GAIN = 5.0


def edge_weights(masks: Tensor) -> Tensor:
    """Inf-Net's weights ``1 + 5 * |avg_pool(mask, 31, stride 1, pad 15) - mask|``.

    The average counts the zero padding (``count_include_pad=True``, PyTorch's
    default, as in Inf-Net), so near the image border it is divided by 31*31.

    Args:
        masks: ``[B, H, W]`` float in {0, 1}.

    Returns:
        ``[B, H, W]`` weights in [1, 6].
    """
    local_mean = F.avg_pool2d(masks[:, None], EDGE_WINDOW, stride=1, padding=EDGE_WINDOW // 2)[:, 0]
    return 1.0 + EDGE_GAIN * (local_mean - masks).abs()


def structure_loss(logits: Tensor, masks: Tensor) -> Tensor:
    """Mean over images of weighted BCE + weighted IoU.

    Per image, with ``w = edge_weights(mask)`` and ``p = sigmoid(z)``:
    ``wbce = sum(w * bce(z, m)) / sum(w)`` and
    ``wiou = 1 - (sum(p m w) + 1) / (sum((p + m) w) - sum(p m w) + 1)``.

    Args:
        logits: ``[B, 2, H, W]``.
        masks: ``[B, H, W]`` float in {0, 1}.

    Raises:
        ValueError: on mismatched shapes.
    """
    if logits.ndim != 4 or logits.shape[1] != NUM_CLASSES:
        raise ValueError(f"logits must be [B, {NUM_CLASSES}, H, W], got {tuple(logits.shape)}")
    if tuple(masks.shape) != (logits.shape[0], *logits.shape[2:]):
        raise ValueError(f"masks must be [B, H, W] matching logits {tuple(logits.shape)}, got {tuple(masks.shape)}")
    masks = masks.to(logits.dtype)
    infection_logit = logits[:, INFECTION] - logits[:, BACKGROUND]
    weights = edge_weights(masks)

    bce = F.binary_cross_entropy_with_logits(infection_logit, masks, reduction="none")
    weighted_bce = (weights * bce).sum(dim=(1, 2)) / weights.sum(dim=(1, 2))

    probs = infection_logit.sigmoid()
    intersection = (probs * masks * weights).sum(dim=(1, 2))
    union = ((probs + masks) * weights).sum(dim=(1, 2)) - intersection
    weighted_iou = 1.0 - (intersection + 1.0) / (union + 1.0)
    return (weighted_bce + weighted_iou).mean()


class FullSupervisionLoss(LogitsLoss):
    """The structure loss on full infection masks (the fully supervised upper bound)."""

    requires_masks = True

    def from_logits(self, logits: Tensor, batch: Batch) -> LossResult:
        """Raises ValueError if ``batch.masks`` is None."""
        if batch.masks is None:
            raise ValueError("the fully supervised loss needs full masks, but batch.masks is None")
        loss = structure_loss(logits, batch.masks)
        return LossResult(total=loss, parts={"structure": loss.item()})
