"""What every training loss receives and returns.

A model is any ``nn.Module`` mapping images ``[B, 1, H, W]`` to logits
``[B, 2, H, W]`` (channel 1 = infection). A loss calls the model itself, because
the consistency loss needs the model's output on transformed images too.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

IGNORE_INDEX = -1
BACKGROUND = 0
INFECTION = 1
NUM_CLASSES = 2


@dataclass
class Batch:
    """One training batch.

    Attributes:
        images: ``[B, 1, H, W]`` float.
        point_labels: ``[B, H, W]`` int64; ``IGNORE_INDEX`` (-1) = unlabelled,
            0 = background, 1 = infection.
        masks: ``[B, H, W]`` float in {0, 1}; only the fully supervised loss needs it.
        derived_labels: ``[B, H, W]`` int64 like ``point_labels``: labels derived from the clicks and the
            image (pseudo-masks, certain background), weighed below the clicks; None when not derived.

    Raises:
        ValueError: if the shapes or the label dtype do not match the above.
    """

    images: Tensor
    point_labels: Tensor
    masks: Tensor | None = None
    derived_labels: Tensor | None = None

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.shape[1] != 1:
            raise ValueError(f"images must be [B, 1, H, W], got {tuple(self.images.shape)}")
        expected = (self.images.shape[0], *self.images.shape[2:])
        check_point_labels(self.point_labels, expected)
        if self.masks is not None and tuple(self.masks.shape) != expected:
            raise ValueError(f"masks must be [B, H, W] = {expected}, got {tuple(self.masks.shape)}")
        if self.derived_labels is not None:
            check_point_labels(self.derived_labels, expected)


@dataclass
class LossResult:
    """A loss value and its named terms.

    Attributes:
        total: scalar, differentiable; what the optimiser minimises.
        parts: each term as a plain float (detached), for logging.
    """

    total: Tensor
    parts: dict[str, float]


class SegmentationLoss(ABC):
    """A training objective that runs the model on a batch."""

    requires_masks: bool = False

    @abstractmethod
    def __call__(self, model: nn.Module, batch: Batch) -> LossResult:
        """Run ``model`` on ``batch.images`` and score its output."""


class LogitsLoss(SegmentationLoss):
    """A loss that only needs the model's logits on the batch's own images.

    Such a loss can be reused on logits computed elsewhere (the consistency loss
    runs the model once on the images and their transforms together).
    """

    def __call__(self, model: nn.Module, batch: Batch) -> LossResult:
        return self.from_logits(model(batch.images), batch)

    @abstractmethod
    def from_logits(self, logits: Tensor, batch: Batch) -> LossResult:
        """Score ``logits`` ``[B, 2, H, W]`` against ``batch``."""


def check_point_labels(point_labels: Tensor, expected_shape: tuple[int, ...]) -> None:
    """Check that point labels are int64 ``[B, H, W]`` of ``expected_shape``.

    Raises:
        ValueError: on a wrong shape or dtype.
    """
    if tuple(point_labels.shape) != tuple(expected_shape):
        raise ValueError(f"point_labels must be [B, H, W] = {tuple(expected_shape)}, got {tuple(point_labels.shape)}")
    if point_labels.dtype != torch.int64:
        raise ValueError(f"point_labels must be int64, got {point_labels.dtype}")


def check_logits(logits: Tensor, point_labels: Tensor) -> None:
    """Check that ``logits`` are ``[B, 2, H, W]`` and match ``point_labels`` ``[B, H, W]``.

    Raises:
        ValueError: on a shape mismatch, a wrong label dtype, or labels outside {-1, 0, 1}.
    """
    if logits.ndim != 4 or logits.shape[1] != NUM_CLASSES:
        raise ValueError(f"logits must be [B, {NUM_CLASSES}, H, W], got {tuple(logits.shape)}")
    check_point_labels(point_labels, (logits.shape[0], *logits.shape[2:]))
    if point_labels.numel() and (point_labels.min() < IGNORE_INDEX or point_labels.max() > INFECTION):
        raise ValueError("point_labels must hold only -1 (ignore), 0 (background) or 1 (infection)")
