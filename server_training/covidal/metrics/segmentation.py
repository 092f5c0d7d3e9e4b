"""Pixel-wise segmentation metrics, micro-averaged over a set of slices.

As in the papers this project reproduces, a set is scored by summing the
confusion counts (TP, FP, FN, TN) over every pixel of every slice, each slice at
its native size, and only then taking the ratios (micro averaging). A large
slice therefore weighs more than a small one, unlike the mean of per-slice
scores (macro averaging).

The functions follow MONAI's pairing of a plain function (``compute_dice``) with
an accumulating class (``SegmentationMetric``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from covidal.validation import check_int


@dataclass(frozen=True)
class ConfusionCounts:
    """Pixel counts of one slice or of a set of slices.

    Attributes:
        tp: foreground in both prediction and reference.
        fp: foreground in the prediction only.
        fn: foreground in the reference only.
        tn: background in both.

    Raises:
        ValueError: if a count is negative or not an integer.
    """

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    def __post_init__(self) -> None:
        for name in ("tp", "fp", "fn", "tn"):
            check_int(f"ConfusionCounts.{name}", getattr(self, name), minimum=0)

    def __add__(self, other: object) -> ConfusionCounts:
        if not isinstance(other, ConfusionCounts):
            return NotImplemented
        return ConfusionCounts(
            tp=self.tp + other.tp,
            fp=self.fp + other.fp,
            fn=self.fn + other.fn,
            tn=self.tn + other.tn,
        )


def as_binary_mask(mask: np.ndarray, name: str) -> np.ndarray:
    """Return ``mask`` as a bool array (any non-zero value is foreground).

    Args:
        mask: bool or integer array, e.g. ``[H, W]`` with values 0/1 or 0/255.
        name: what the array is, for the error message.

    Raises:
        ValueError: if the dtype is not bool or integer (a float array is most
            likely an unthresholded probability map, where "non-zero" would be
            nearly every pixel).
    """
    array = np.asarray(mask)
    if array.dtype != bool and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"{name} must be a bool or integer mask, got dtype {array.dtype}; "
            "threshold probabilities into a binary mask first"
        )
    return array != 0


def binary_pair(prediction: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validate a (prediction, reference) pair and return both as bool arrays.

    Raises:
        ValueError: if the shapes differ or a dtype is not bool/integer.
    """
    predicted = as_binary_mask(prediction, "prediction")
    expected = as_binary_mask(reference, "reference")
    if predicted.shape != expected.shape:
        raise ValueError(f"prediction shape {predicted.shape} does not match reference shape {expected.shape}")
    return predicted, expected


def confusion_counts(prediction: np.ndarray, reference: np.ndarray) -> ConfusionCounts:
    """Count TP, FP, FN, TN between two masks of the same shape.

    Args:
        prediction: predicted mask ``[H, W]`` (bool or integer; non-zero is foreground).
        reference: reference mask, same shape.

    Raises:
        ValueError: if the shapes differ or a dtype is not bool/integer.
    """
    predicted, expected = binary_pair(prediction, reference)
    return ConfusionCounts(
        tp=int(np.count_nonzero(predicted & expected)),
        fp=int(np.count_nonzero(predicted & ~expected)),
        fn=int(np.count_nonzero(~predicted & expected)),
        tn=int(np.count_nonzero(~predicted & ~expected)),
    )


def _ratio(numerator: int, denominator: int) -> float:
    """``numerator / denominator``, NaN when the denominator is 0 (undefined)."""
    return numerator / denominator if denominator else float("nan")


def compute_dice(counts: ConfusionCounts) -> float:
    """Dice = 2TP / (2TP + FP + FN); 1.0 when both masks are empty (perfect agreement)."""
    if counts.tp + counts.fp + counts.fn == 0:
        return 1.0
    return 2 * counts.tp / (2 * counts.tp + counts.fp + counts.fn)


def compute_iou(counts: ConfusionCounts) -> float:
    """IoU (Jaccard) = TP / (TP + FP + FN); 1.0 when both masks are empty."""
    if counts.tp + counts.fp + counts.fn == 0:
        return 1.0
    return counts.tp / (counts.tp + counts.fp + counts.fn)


def compute_ppv(counts: ConfusionCounts) -> float:
    """Positive predictive value (precision) = TP / (TP + FP); NaN when nothing is predicted."""
    return _ratio(counts.tp, counts.tp + counts.fp)


def compute_sensitivity(counts: ConfusionCounts) -> float:
    """Sensitivity (recall) = TP / (TP + FN); NaN when the reference has no foreground."""
    return _ratio(counts.tp, counts.tp + counts.fn)


def compute_specificity(counts: ConfusionCounts) -> float:
    """Specificity = TN / (TN + FP); NaN when the reference has no background."""
    return _ratio(counts.tn, counts.tn + counts.fp)


class SegmentationMetric:
    """Accumulates confusion counts over slices and scores the set (micro average).

    Args:
        per_slice: also keep each slice's own Dice, keyed by slice id, in
            :attr:`per_slice_dice` (for finding the worst slices; it plays no part
            in :meth:`aggregate`).

    Raises:
        ValueError: if ``per_slice`` is not a bool.
    """

    def __init__(self, per_slice: bool = False) -> None:
        if not isinstance(per_slice, bool):
            raise ValueError(f"per_slice must be True or False, got {per_slice!r}")
        self.per_slice = per_slice
        self.reset()

    def reset(self) -> None:
        """Forget every slice seen so far."""
        self._counts = ConfusionCounts()
        self._slice_count = 0
        self._per_slice_dice: dict[str, float] = {}

    def update(self, prediction: np.ndarray, reference: np.ndarray, slice_id: str | None = None) -> None:
        """Add one slice.

        Args:
            prediction: predicted mask ``[H, W]`` (bool or integer; non-zero is foreground).
            reference: reference mask, same shape; slices may differ in size.
            slice_id: key for :attr:`per_slice_dice`; when omitted, the slice's
                position in the update order (``"0"``, ``"1"``, ...) is used.

        Raises:
            ValueError: if the shapes differ, a dtype is not bool/integer, or
                ``slice_id`` was already used (with ``per_slice``).
        """
        slice_counts = confusion_counts(prediction, reference)
        if self.per_slice:
            key = str(self._slice_count) if slice_id is None else slice_id
            if key in self._per_slice_dice:
                raise ValueError(f"slice id {key!r} was already added; give each slice a unique id")
            self._per_slice_dice[key] = compute_dice(slice_counts)
        self._counts = self._counts + slice_counts
        self._slice_count += 1

    @property
    def counts(self) -> ConfusionCounts:
        """Confusion counts summed over all slices so far."""
        return self._counts

    @property
    def per_slice_dice(self) -> dict[str, float]:
        """Dice of each slice by slice id (empty unless ``per_slice`` is set)."""
        return dict(self._per_slice_dice)

    def aggregate(self) -> dict[str, float]:
        """Micro-averaged scores of all slices so far.

        Returns:
            ``{"dice", "iou", "ppv", "sensitivity", "specificity"}`` as floats,
            NaN where undefined (see the ``compute_*`` functions).

        Raises:
            RuntimeError: if no slice has been added.
        """
        if self._slice_count == 0:
            raise RuntimeError("no slices to aggregate; call update() at least once")
        return {
            "dice": compute_dice(self._counts),
            "iou": compute_iou(self._counts),
            "ppv": compute_ppv(self._counts),
            "sensitivity": compute_sensitivity(self._counts),
            "specificity": compute_specificity(self._counts),
        }
