"""Pixel-wise uncertainty of Monte-Carlo dropout softmax samples.

Every measure takes ``probs`` ``[T, B, C, H, W]`` (T dropout samples of the
softmax over C classes) and returns ``[B, H, W]``, where higher means more
uncertain. Logarithms are natural; probabilities are clamped to ``EPS`` before
taking a log so that exact zeros (confident samples) give 0, not NaN.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-12
# Softmax outputs sum to 1 up to rounding (and bf16 autocast upstream); anything
# further off is not a probability map.
SUM_TOLERANCE = 1e-3


def predictive_entropy(probs: Tensor) -> Tensor:
    """Entropy of the mean prediction, ``-sum_c pbar_c log pbar_c`` with ``pbar = mean_T probs``.

    Args:
        probs: MC softmax samples ``[T, B, C, H, W]``.

    Returns:
        ``[B, H, W]`` in ``[0, log C]``.

    Raises:
        ValueError: as :func:`check_probabilities`.
    """
    probs = check_probabilities(probs)
    return _entropy(probs.mean(dim=0), class_dim=1)


def bald(probs: Tensor) -> Tensor:
    """BALD mutual information: predictive entropy minus the mean per-sample entropy.

    High where the samples are individually confident but disagree (model
    uncertainty), low where they agree, even if they agree on being unsure.

    Args:
        probs: MC softmax samples ``[T, B, C, H, W]``.

    Returns:
        ``[B, H, W]``, non-negative (small negative rounding is clipped to 0).

    Raises:
        ValueError: as :func:`check_probabilities`.
    """
    probs = check_probabilities(probs)
    expected_entropy = _entropy(probs, class_dim=2).mean(dim=0)
    mutual_information = _entropy(probs.mean(dim=0), class_dim=1) - expected_entropy
    return mutual_information.clamp_min(0.0)


def least_confidence(probs: Tensor) -> Tensor:
    """``1 - max_c pbar_c`` with ``pbar = mean_T probs``.

    Args:
        probs: MC softmax samples ``[T, B, C, H, W]``.

    Returns:
        ``[B, H, W]`` in ``[0, 1 - 1/C]``.

    Raises:
        ValueError: as :func:`check_probabilities`.
    """
    probs = check_probabilities(probs)
    return 1.0 - probs.mean(dim=0).amax(dim=1)


def margin(probs: Tensor) -> Tensor:
    """``1 - (top1 - top2)`` of the mean prediction, so a narrow margin scores high.

    Args:
        probs: MC softmax samples ``[T, B, C, H, W]``.

    Returns:
        ``[B, H, W]`` in ``[0, 1]``.

    Raises:
        ValueError: as :func:`check_probabilities`.
    """
    probs = check_probabilities(probs)
    top_two = probs.mean(dim=0).topk(2, dim=1).values  # [B, 2, H, W]
    return 1.0 - (top_two[:, 0] - top_two[:, 1])


def vote_entropy(probs: Tensor) -> Tensor:
    """Vote entropy of the committee of T samples: each member votes for its argmax class, and the score is the
    entropy of the vote shares, ``-sum_c (v_c / T) log(v_c / T)``.

    Args:
        probs: MC softmax samples ``[T, B, C, H, W]`` (one committee member per sample).

    Returns:
        ``[B, H, W]`` in ``[0, log min(T, C)]``; 0 where every member votes for the same class.

    Raises:
        ValueError: as :func:`check_probabilities`.
    """
    probs = check_probabilities(probs)
    votes = torch.nn.functional.one_hot(probs.argmax(dim=2), probs.shape[2])  # [T, B, H, W, C]
    shares = votes.to(probs.dtype).mean(dim=0)  # [B, H, W, C]
    return _entropy(shares, class_dim=-1)


def check_probabilities(probs: Tensor) -> Tensor:
    """Check that ``probs`` is ``[T, B, C, H, W]`` with C >= 2 and sums to 1 over C.

    Returns:
        ``probs`` as a floating tensor of at least float32 precision (bf16 and
        fp16 are upcast so the logs and sums are accurate).

    Raises:
        ValueError: if ``probs`` does not have 5 dimensions, has fewer than 2
            classes, or any pixel's class probabilities are off 1 by more than
            ``SUM_TOLERANCE``.
    """
    if probs.ndim != 5:
        raise ValueError(f"probs must be [T, B, C, H, W] (5 dims), got shape {tuple(probs.shape)}")
    if probs.shape[2] < 2:
        raise ValueError(f"probs needs at least 2 classes along dim 2, got {probs.shape[2]}")
    if not probs.is_floating_point() or probs.dtype in (torch.float16, torch.bfloat16):
        probs = probs.float()
    sums = probs.sum(dim=2)
    if sums.numel() and not torch.all((sums - 1.0).abs() <= SUM_TOLERANCE):
        worst = (sums - 1.0).abs().max().item()
        raise ValueError(
            f"probs must sum to 1 over classes (dim 2) within {SUM_TOLERANCE}, worst deviation {worst:.3g}; "
            "pass softmax probabilities, not logits"
        )
    return probs


def _entropy(probs: Tensor, class_dim: int) -> Tensor:
    """``-sum_c p_c log p_c`` over ``class_dim``, with ``0 log 0 = 0``."""
    return -(probs * probs.clamp_min(EPS).log()).sum(dim=class_dim)
