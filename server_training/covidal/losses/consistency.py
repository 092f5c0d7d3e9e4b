"""The consistency-based (CB) loss of Laradji et al. 2020.

The segmentation of a flipped or rotated slice should be the flipped or rotated
segmentation: ``f(t(x)) = t(f(x))``. The CB loss adds that agreement, measured
on unlabelled pixels too, to the base loss on the original and transformed batch.

Transforms are elements of the dihedral group of the square,
``t = rot90^k ∘ hflip^b`` (horizontal flip first, then ``k`` counter-clockwise
quarter turns of the last two dimensions).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor, nn

from covidal.losses.base import IGNORE_INDEX, Batch, LogitsLoss, LossResult, SegmentationLoss
from covidal.losses.point import point_loss
from covidal.validation import check_real


class TransformSet(StrEnum):
    """Which transforms the CB loss draws from.

    FLIP: horizontal or vertical flip. FLIP_ROT: the 7 non-identity elements of
    the dihedral group (flips combined with 0/90/180/270 degree rotations).
    """

    FLIP = "flip"
    FLIP_ROT = "flip-rot"


@dataclass(frozen=True)
class DihedralTransform:
    """``rot90^quarter_turns ∘ hflip^flip`` on the last two dimensions."""

    quarter_turns: int
    flip: bool


_HFLIP = DihedralTransform(quarter_turns=0, flip=True)
_VFLIP = DihedralTransform(quarter_turns=2, flip=True)  # rot180 ∘ hflip flips the rows only

TRANSFORMS: dict[TransformSet, tuple[DihedralTransform, ...]] = {
    TransformSet.FLIP: (_HFLIP, _VFLIP),
    TransformSet.FLIP_ROT: tuple(
        DihedralTransform(k, flip) for k in range(4) for flip in (False, True) if (k, flip) != (0, False)
    ),
}


def apply_transform(x: Tensor, k: int, flip: bool) -> Tensor:
    """Apply ``rot90^k ∘ hflip^flip`` to the last two dimensions of ``x``.

    Args:
        x: ``[..., H, W]``, e.g. ``[B, C, H, W]`` or ``[B, H, W]``.
        k: counter-clockwise quarter turns (any integer; taken modulo 4).
        flip: whether to flip horizontally (reverse columns) before rotating.

    Raises:
        ValueError: if ``k`` is odd and ``H != W`` (the batch would change shape).
    """
    _check_square_if_rotating(x, k)
    if flip:
        x = torch.flip(x, dims=(-1,))
    return torch.rot90(x, k % 4, dims=(-2, -1))


def invert_transform(x: Tensor, k: int, flip: bool) -> Tensor:
    """Undo :func:`apply_transform`: ``hflip^flip ∘ rot90^-k`` on the last two dimensions."""
    _check_square_if_rotating(x, k)
    x = torch.rot90(x, -k % 4, dims=(-2, -1))
    return torch.flip(x, dims=(-1,)) if flip else x


def sample_transforms(
    transforms: TransformSet, count: int, generator: torch.Generator | None = None
) -> list[DihedralTransform]:
    """Draw ``count`` transforms uniformly (with replacement) from ``transforms``."""
    choices = TRANSFORMS[TransformSet(transforms)]
    indices = torch.randint(len(choices), (count,), generator=generator)
    return [choices[i] for i in indices.tolist()]


def apply_per_sample(x: Tensor, transforms: list[DihedralTransform]) -> Tensor:
    """Transform each sample of a batch with its own transform.

    Args:
        x: ``[B, ..., H, W]``.
        transforms: ``B`` transforms, one per sample.

    Raises:
        ValueError: if ``len(transforms) != B``, or as :func:`apply_transform`.
    """
    if len(transforms) != x.shape[0]:
        raise ValueError(f"need one transform per sample: {len(transforms)} transforms for batch of {x.shape[0]}")
    return torch.stack([apply_transform(sample, t.quarter_turns, t.flip) for sample, t in zip(x, transforms)])


def invert_per_sample(x: Tensor, transforms: list[DihedralTransform]) -> Tensor:
    """Undo :func:`apply_per_sample` (same arguments and errors)."""
    if len(transforms) != x.shape[0]:
        raise ValueError(f"need one transform per sample: {len(transforms)} transforms for batch of {x.shape[0]}")
    return torch.stack([invert_transform(sample, t.quarter_turns, t.flip) for sample, t in zip(x, transforms)])


def confident_labels(probabilities: Tensor, point_labels: Tensor, threshold: float) -> Tensor:
    """Pseudo-labels of the unlabelled pixels the model is sure of: int64 ``[B, H, W]``.

    Args:
        probabilities: ``[B, 2, H, W]`` softmax (the teacher's, detached).
        point_labels: ``[B, H, W]``; clicked pixels (not -1) get no pseudo-label (their click is scored).
        threshold: a pixel is labelled with its class when that class's probability is at least this.

    Returns:
        -1 where unsure or clicked, else the confident class.
    """
    confidence, label = probabilities.max(dim=1)
    sure = (confidence >= threshold) & (point_labels == IGNORE_INDEX)
    return torch.where(sure, label, torch.full_like(label, IGNORE_INDEX))


def consistency_term(probs_of_transformed: Tensor, transformed_probs: Tensor) -> Tensor:
    """Mean absolute difference ``mean |t(f(x)) - f(t(x))|`` over all elements.

    Args:
        probs_of_transformed: ``f(t(x))``, softmax probabilities ``[B, 2, H, W]``.
        transformed_probs: ``t(f(x))``, same shape.

    Raises:
        ValueError: if the shapes differ.
    """
    if probs_of_transformed.shape != transformed_probs.shape:
        raise ValueError(f"shapes differ: {tuple(probs_of_transformed.shape)} vs {tuple(transformed_probs.shape)}")
    return (transformed_probs - probs_of_transformed).abs().mean()


class ConsistencyLoss(SegmentationLoss):
    """``base(x, y) + base(t(x), t(y)) + weight * mean |t(f(x)) - f(t(x))|``.

    One transform is drawn per sample. The model runs once, on the original and
    transformed images concatenated (batch ``2B``); the same logits feed both
    base terms and the consistency term.

    With ``self_training_weight > 0`` a self-training term is added: the two views' softmax, aligned back and
    averaged (a detached teacher), labels the unclicked pixels it is at least ``self_training_threshold`` sure
    of (:func:`confident_labels`), and both views are scored against those labels with the class-balanced
    point loss.

    Args:
        base: the loss on labelled pixels (point, LCFCN or fully supervised).
        transforms: which transforms to draw from.
        weight: ``lambda``, the weight of the consistency term; must be >= 0.
        generator: random source for drawing transforms; the global RNG if None.
        self_training_weight: weight of the self-training term, >= 0 (0: none).
        self_training_threshold: teacher confidence needed for a pseudo-label, in [0.5, 1].

    Raises:
        ValueError: on a negative or non-finite weight, a threshold out of range, or an unknown transform set.
        TypeError: if ``base`` cannot score precomputed logits.
    """

    def __init__(
        self,
        base: LogitsLoss,
        transforms: TransformSet,
        weight: float = 1.0,
        generator: torch.Generator | None = None,
        self_training_weight: float = 0.0,
        self_training_threshold: float = 0.9,
    ) -> None:
        if not isinstance(base, LogitsLoss):
            raise TypeError(f"base must be a LogitsLoss (with from_logits), got {type(base).__name__}")
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"consistency weight must be a finite number >= 0, got {weight}")
        self.base = base
        self.transforms = TransformSet(transforms)
        self.weight = float(weight)
        self.generator = generator
        self.requires_masks = base.requires_masks
        self.self_training_weight = check_real(
            "self_training_weight", self_training_weight, minimum=0.0, error=ValueError
        )
        self.self_training_threshold = check_real(
            "self_training_threshold", self_training_threshold, minimum=0.5, maximum=1.0, error=ValueError
        )

    def __call__(self, model: nn.Module, batch: Batch) -> LossResult:
        height, width = batch.images.shape[-2:]
        if self.transforms is TransformSet.FLIP_ROT and height != width:
            raise ValueError(f"rotations need square images, got {height}x{width}; crop or pad, or use flips only")
        transforms = sample_transforms(self.transforms, batch.images.shape[0], self.generator)
        transformed_batch = _transform_batch(batch, transforms)

        logits = model(torch.cat([batch.images, transformed_batch.images]))
        logits_original, logits_transformed = logits.chunk(2)

        original = self.base.from_logits(logits_original, batch)
        transformed = self.base.from_logits(logits_transformed, transformed_batch)
        consistency = consistency_term(
            probs_of_transformed=logits_transformed.softmax(dim=1),
            transformed_probs=apply_per_sample(logits_original.softmax(dim=1), transforms),
        )
        total = original.total + transformed.total + self.weight * consistency
        parts = {
            **{f"original/{name}": value for name, value in original.parts.items()},
            **{f"transformed/{name}": value for name, value in transformed.parts.items()},
            "consistency": consistency.item(),
        }
        if self.self_training_weight > 0:
            self_training = self._self_training(logits_original, logits_transformed, batch, transforms)
            total = total + self.self_training_weight * self_training
            parts["self_training"] = self_training.item()
        return LossResult(total=total, parts=parts)

    def _self_training(
        self, logits_original: Tensor, logits_transformed: Tensor, batch: Batch, transforms: list[DihedralTransform]
    ) -> Tensor:
        """Class-balanced CE of both views against the detached two-view teacher's confident pixels."""
        with torch.no_grad():
            teacher = 0.5 * (
                logits_original.float().softmax(dim=1)
                + invert_per_sample(logits_transformed.float().softmax(dim=1), transforms)
            )
            pseudo = confident_labels(teacher, batch.point_labels, self.self_training_threshold)
        return point_loss(logits_original, pseudo) + point_loss(
            logits_transformed, apply_per_sample(pseudo, transforms)
        )


def _transform_batch(batch: Batch, transforms: list[DihedralTransform]) -> Batch:
    """The batch with images, point labels and masks moved by the same per-sample transforms."""
    return Batch(
        images=apply_per_sample(batch.images, transforms),
        point_labels=apply_per_sample(batch.point_labels, transforms),
        masks=None if batch.masks is None else apply_per_sample(batch.masks, transforms),
        derived_labels=None if batch.derived_labels is None else apply_per_sample(batch.derived_labels, transforms),
    )


def _check_square_if_rotating(x: Tensor, k: int) -> None:
    if k % 2 == 1 and x.shape[-2] != x.shape[-1]:
        raise ValueError(f"a quarter turn needs a square image, got {x.shape[-2]}x{x.shape[-1]}")
