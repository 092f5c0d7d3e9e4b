"""Per-sample Dice + cross-entropy ("combo") loss of 3D two-class segmentation, and its (weighted) batch form.

The mean of :func:`per_sample_combo_loss` over a batch equals MONAI
``DiceCELoss(to_onehot_y=True, softmax=True)`` (``batch=False``): MONAI averages the Dice loss over samples
and channels and the cross-entropy over all voxels, and every sample has the same number of voxels.
"""

from __future__ import annotations

import torch
from torch import Tensor

NUM_CLASSES = 2
# MONAI DiceLoss's default smoothing terms.
SMOOTH_NR = 1e-5
SMOOTH_DR = 1e-5


def check_combo_inputs(logits: Tensor, labels: Tensor) -> None:
    """Check shapes and types only (no value check, so this also runs under ``torch.func.vmap``).

    Raises:
        ValueError: unless logits are floating ``[B, 2, D, H, W]`` and labels integer or bool ``[B, D, H, W]``.
    """
    if logits.ndim != 5 or logits.shape[1] != NUM_CLASSES:
        raise ValueError(f"logits must be [B, {NUM_CLASSES}, D, H, W], got shape {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise ValueError(f"logits must be floating point, got {logits.dtype}")
    if labels.ndim != 4 or labels.shape[0] != logits.shape[0] or labels.shape[1:] != logits.shape[2:]:
        raise ValueError(
            f"labels must be [B, D, H, W] = {[logits.shape[0], *logits.shape[2:]]} to match logits "
            f"{tuple(logits.shape)}, got shape {tuple(labels.shape)}"
        )
    if labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"labels must be integer (0/1) or bool, got {labels.dtype}")


def check_binary_labels(labels: Tensor) -> None:
    """Check that every label is 0 or 1 (reads the values: call it outside ``vmap``).

    Raises:
        ValueError: naming the offending values.
    """
    bad = labels[(labels != 0) & (labels != 1)]
    if bad.numel():
        raise ValueError(f"labels must be 0 or 1, got values {sorted(set(bad.unique().tolist()))}")


def per_sample_combo_loss(logits: Tensor, labels: Tensor) -> Tensor:
    """Soft Dice loss (both channels, averaged) + mean voxel cross-entropy of each sample.

    Computed in at least float32 (under autocast the logits may be half precision). Labels must be 0/1:
    only their shapes are checked here, see :func:`check_binary_labels`.

    Args:
        logits: ``[B, 2, D, H, W]``.
        labels: ``[B, D, H, W]`` integer or bool, values in {0, 1}.

    Returns:
        ``[B]`` losses.

    Raises:
        ValueError: as :func:`check_combo_inputs`.
    """
    check_combo_inputs(logits, labels)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    # One-hot by comparison rather than F.one_hot, which vmap cannot batch.
    classes = torch.arange(NUM_CLASSES, device=labels.device).view(1, NUM_CLASSES, 1, 1, 1)
    target = (labels.unsqueeze(1) == classes).to(logits.dtype)  # [B, 2, D, H, W]
    probabilities = logits.softmax(dim=1)
    spatial = (2, 3, 4)
    intersection = (probabilities * target).sum(spatial)  # [B, 2]
    denominator = probabilities.sum(spatial) + target.sum(spatial)
    dice = 1.0 - (2.0 * intersection + SMOOTH_NR) / (denominator + SMOOTH_DR)
    cross_entropy = -(target * logits.log_softmax(dim=1)).sum(dim=1).mean(dim=(1, 2, 3))  # [B]
    return dice.mean(dim=1) + cross_entropy


class ComboLoss:
    """Batch combo loss: the mean of the per-sample losses, or their weighted sum."""

    def __call__(self, logits: Tensor, labels: Tensor, weights: Tensor | None = None) -> Tensor:
        """Scalar loss.

        Args:
            logits: ``[B, 2, D, H, W]``.
            labels: ``[B, D, H, W]`` integer or bool, values in {0, 1}.
            weights: ``[B]`` sample weights (moved to the logits' device), or None for the plain mean.

        Returns:
            ``mean_i L_i`` without weights, else ``sum_i weights_i * L_i`` (weights are not renormalised;
            uniform weights ``1/B`` give the mean).

        Raises:
            ValueError: on bad shapes or types, labels other than 0/1, or weights not of shape ``[B]``.
        """
        check_binary_labels(labels)
        per_sample = per_sample_combo_loss(logits, labels)
        if weights is None:
            return per_sample.mean()
        if weights.shape != per_sample.shape:
            raise ValueError(f"weights must be [B] = [{per_sample.shape[0]}], got shape {tuple(weights.shape)}")
        return (weights.to(per_sample.device, per_sample.dtype) * per_sample).sum()
