"""Sample weights of a pseudo-labelled mini-batch: RGS (trustworthiness), RGM (informativeness), their
combination, and rectification.

All weights are ``[B]`` tensors, non-negative and summing to 1, except that a batch whose scores are all
zero keeps all-zero weights (the trainer skips such a batch rather than dividing by zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from covidal.noisyteacher.gradients import (
    GradientDict,
    per_sample_dot,
    per_sample_norm,
)
from covidal.validation import check_real

# Absolute slack when comparing a weight with the threshold 1/C_p, so weights exactly at it are kept.
RECTIFY_TOLERANCE = 1e-12
# Rounding slack, in units of the weights' machine epsilon relative to the threshold: normalising equal
# scores in float32 can land a few ulps below 1/C_p.
RECTIFY_ULPS = 4


def normalise_or_zero(scores: Tensor) -> Tensor:
    """``scores / scores.sum()`` for non-negative ``[B]`` scores; all-zero scores stay zero (no host sync)."""
    total = scores.sum()
    return scores / torch.where(total > 0, total, torch.ones_like(total))


def _check_batch_weights(weights: Tensor, name: str) -> None:
    if weights.ndim != 1 or weights.numel() == 0:
        raise ValueError(f"{name} must be a non-empty [B] tensor, got shape {tuple(weights.shape)}")


def rgs_weights(per_sample: GradientDict, validation_gradient: GradientDict) -> Tensor:
    """Learning-to-reweight (Ren et al. 2018) weights from gradients at the current parameters.

    One virtual SGD step on ``sum_i eps_i L_i`` followed by the validation loss has meta-gradient
    ``dL_val/deps_i = -step * <g_val, g_i>`` at ``eps = 0``; the step size cancels in the normalisation, so
    ``w_i = max(0, <g_val, g_i>) / sum_j max(0, <g_val, g_j>)``: samples whose gradient points away from the
    validation gradient get zero weight.

    Args:
        per_sample: ``{name: [B, *shape]}`` per-sample gradients of the pseudo-labelled batch.
        validation_gradient: ``{name: [*shape]}`` gradient of the mean validation (expert) loss.

    Returns:
        ``[B]`` weights summing to 1, or all zeros if no sample's gradient agrees with the validation gradient.

    Raises:
        ValueError: if the two cover different parameters or shapes.
    """
    return normalise_or_zero(per_sample_dot(per_sample, validation_gradient).clamp(min=0))


def rgm_weights(per_sample: GradientDict, final_layer_names: Sequence[str]) -> Tensor:
    """Gradient-magnitude weights: each sample's own gradient norm over the final layer, normalised.

    ``w_i = ||g_i|_final|| / sum_j ||g_j|_final||`` where ``g_i|_final`` is sample ``i``'s gradient restricted
    to the parameters ``final_layer_names`` (all of them together as one vector).

    Returns:
        ``[B]`` weights summing to 1 (all zeros if every norm is zero).

    Raises:
        ValueError: if ``final_layer_names`` is empty or names a parameter missing from ``per_sample``.
    """
    return normalise_or_zero(per_sample_norm(per_sample, final_layer_names))


def check_lambda(lam: float) -> float:
    """``lam`` as a float if it is a number in ``[0, 1]``.

    Raises:
        ValueError: otherwise.
    """
    return check_real("lambda (the RGS share of the combined weight)", lam, minimum=0.0, maximum=1.0)


def combine_weights(rgs: Tensor, rgm: Tensor, lam: float) -> Tensor:
    """``lam * rgs + (1 - lam) * rgm`` (``[B]`` each).

    Not renormalised: if one part is all zero (e.g. no trustworthy sample for RGS), the result sums to the
    other part's share, so that batch moves the student less.

    Raises:
        ValueError: if ``lam`` is not in ``[0, 1]`` or the shapes differ or are not ``[B]``.
    """
    lam = check_lambda(lam)
    _check_batch_weights(rgs, "rgs")
    if rgm.shape != rgs.shape:
        raise ValueError(f"rgs and rgm weights must have the same shape, got {tuple(rgs.shape)} and {tuple(rgm.shape)}")
    return lam * rgs + (1.0 - lam) * rgm


def rectify(weights: Tensor) -> Tensor:
    """Keep the samples with weight ``>= 1/C_p`` (``C_p = len(weights)``) and renormalise them to sum 1.

    Weights within ``max(RECTIFY_TOLERANCE, RECTIFY_ULPS * eps(dtype) / C_p)`` below the threshold count as
    on it (ties at exactly ``1/C_p`` are kept, even after float32 rounding). Renormalising the kept weights
    keeps each batch's step size comparable with the unrectified modes. All-zero weights stay zero.

    Args:
        weights: ``[B]`` non-negative weights.

    Returns:
        ``[B]`` weights: zero for dropped samples, the kept ones summing to 1.

    Raises:
        ValueError: if ``weights`` is not a non-empty 1-D tensor.
    """
    _check_batch_weights(weights, "weights")
    threshold = 1.0 / weights.numel()
    slack = max(RECTIFY_TOLERANCE, RECTIFY_ULPS * torch.finfo(weights.dtype).eps * threshold)
    keep = weights.double() >= threshold - slack
    return normalise_or_zero(torch.where(keep, weights, torch.zeros_like(weights)))
