"""Random training patches from volumes on the training grid, half of them centred on infection.

Lesions fill a few percent of a CT, so uniformly placed patches would mostly
show healthy lung; centring a share of the patches on a foreground voxel (as
nnU-Net and MONAI's ``RandCropByPosNegLabel`` do) keeps infection in the batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from covidal.validation import check_ints

IMAGE_PAD_VALUE = 0.0  # windowed intensity of air
LABEL_PAD_VALUE = 0  # background


@dataclass(frozen=True)
class PatchConfig:
    """Training patch size and the share of foreground-centred patches.

    Attributes:
        size: patch size ``[D, H, W]`` = ``[K, J, I]`` in voxels.
        foreground_probability: chance that a patch is centred on a random
            foreground voxel (when the label has any); otherwise it is placed uniformly.

    Raises:
        ValueError: a size is not an integer >= 1, or the probability is outside [0, 1].
    """

    size: tuple[int, int, int] = (96, 96, 96)
    foreground_probability: float = 0.5

    def __post_init__(self) -> None:
        object.__setattr__(self, "size", checked_size(self.size, "patch size"))
        if not 0.0 <= self.foreground_probability <= 1.0:
            raise ValueError(f"foreground probability must be in [0, 1], got {self.foreground_probability}")


def checked_size(size: object, what: str) -> tuple[int, int, int]:
    """``size`` (three whole numbers >= 1, e.g. a JSON list) as a tuple of ints.

    Raises:
        ValueError: naming ``what``, when ``size`` is anything else.
    """
    return check_ints(f"{what} (D, H, W)", size, count=3)  # type: ignore[return-value]


def pad_to_at_least(array: np.ndarray, size: tuple[int, int, int], value: float) -> np.ndarray:
    """Pad ``array`` ``[D, H, W]`` with ``value`` so each axis is at least ``size``; unchanged when large enough.

    Padding is split between both ends (the extra voxel of an odd amount goes at the end).

    Returns:
        ``array`` itself when no axis is short, else a padded copy ``[max(D, d), max(H, h), max(W, w)]``.
    """
    if array.ndim != len(size):
        raise ValueError(f"array has {array.ndim} axes but size {size} has {len(size)}")
    missing = [max(0, s - n) for n, s in zip(array.shape, size)]
    if not any(missing):
        return array
    return np.pad(array, [(m // 2, m - m // 2) for m in missing], constant_values=value)


class PatchSampler:
    """Draws patches of exactly ``config.size``; all randomness comes from one generator seeded here.

    Args:
        config: patch size and foreground share.
        seed: seed of the numpy generator (same seed and calls, same patches).
    """

    def __init__(self, config: PatchConfig, seed: int) -> None:
        self.config = config
        self._rng = np.random.default_rng(seed)

    def sample(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One random patch.

        Args:
            image: float ``[K, J, I]`` in [0, 1] on the training grid.
            label: ``[K, J, I]`` in {0, 1}, same shape.

        Returns:
            ``(image patch float32 [D, H, W], label patch uint8 [D, H, W])``; volumes
            smaller than the patch are padded with air (0.0) and background (0).

        Raises:
            ValueError: ``image`` is not 3D or ``label``'s shape differs.
        """
        if image.ndim != 3 or label.shape != image.shape:
            raise ValueError(f"expected a 3D image and a label of the same shape, got {image.shape} and {label.shape}")
        size = self.config.size
        image = pad_to_at_least(image, size, IMAGE_PAD_VALUE)
        label = pad_to_at_least(label, size, LABEL_PAD_VALUE)
        start = self._start(label)
        window = tuple(slice(s, s + n) for s, n in zip(start, size))
        return image[window].astype(np.float32), label[window].astype(np.uint8)

    def sample_batch(self, cases: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """One patch from each ``(image, label)`` pair, in order.

        Returns:
            ``(images float32 [B, 1, D, H, W], labels int64 [B, D, H, W])`` with ``B = len(cases)``.

        Raises:
            ValueError: ``cases`` is empty, or as :meth:`sample`.
        """
        if not cases:
            raise ValueError("a batch needs at least one (image, label) pair")
        return stacked_patches(self.sample, cases)

    def _start(self, label: np.ndarray) -> tuple[int, ...]:
        """Corner of the next patch in ``label`` (already at least the patch size)."""
        size = self.config.size
        # A label without foreground falls back to uniform placement.
        centred = self._rng.random() < self.config.foreground_probability
        foreground = np.flatnonzero(label) if centred else None
        if foreground is None or foreground.size == 0:
            return tuple(int(self._rng.integers(0, n - s + 1)) for n, s in zip(label.shape, size))
        centre = np.unravel_index(foreground[self._rng.integers(foreground.size)], label.shape)
        return centred_start(centre, label.shape, size)


def centred_start(centre, shape: tuple[int, ...], size: tuple[int, int, int]) -> tuple[int, ...]:
    """Corner of the ``size`` patch centred on voxel ``centre`` of a volume of ``shape`` (at least ``size``).

    Clipping keeps the patch inside the volume; the centre voxel stays inside the patch.
    """
    return tuple(int(np.clip(c - s // 2, 0, n - s)) for c, n, s in zip(centre, shape, size))


def stacked_patches(sample, cases: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """``sample(image, label)`` of each pair, stacked: ``(float32 [B, 1, D, H, W], int64 [B, D, H, W])``.

    Raises:
        ValueError: ``cases`` is empty, or as ``sample``.
    """
    if not cases:
        raise ValueError("a batch needs at least one (image, label) pair")
    images, labels = zip(*(sample(image, label) for image, label in cases))
    return np.stack(images)[:, None], np.stack(labels).astype(np.int64)


class AnsweredPatchSampler:
    """Draws patches of exactly ``size`` centred on a clinician's answers, for the point loss of a clean gradient.

    A label here is an answer label (:mod:`covidal.volumes.answer_labels`: 1 at clicks, 0 in background answers,
    -1 elsewhere), so a uniformly placed patch would mostly hold no answer at all. Each patch is centred on a
    random click with probability ``click_probability`` (when the volume has one), else on any answered voxel.
    Padding is image air (0.0) and label -1 (unanswered).

    Args:
        size: patch size ``[D, H, W]``.
        seed: seed of the numpy generator (same seed and calls, same patches).
        click_probability: share of patches centred on a click, in [0, 1].
    """

    def __init__(self, size: tuple[int, int, int], seed: int, click_probability: float = 0.5) -> None:
        self.size = checked_size(size, "patch size")
        if not 0.0 <= click_probability <= 1.0:
            raise ValueError(f"click probability must be in [0, 1], got {click_probability}")
        self.click_probability = click_probability
        self._rng = np.random.default_rng(seed)

    def sample(self, image: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One patch: ``(image float32 [D, H, W], label int8 [D, H, W])``.

        Raises:
            ValueError: ``image`` is not 3D, ``label``'s shape differs, or ``label`` holds no answer.
        """
        if image.ndim != 3 or label.shape != image.shape:
            raise ValueError(f"expected a 3D image and a label of the same shape, got {image.shape} and {label.shape}")
        image = pad_to_at_least(image, self.size, IMAGE_PAD_VALUE)
        label = pad_to_at_least(label, self.size, -1)
        clicks = np.flatnonzero(label == 1) if self._rng.random() < self.click_probability else np.empty(0)
        candidates = clicks if clicks.size else np.flatnonzero(label >= 0)
        if candidates.size == 0:
            raise ValueError("an answer label without any answered voxel gives no patch to learn from")
        centre = np.unravel_index(candidates[self._rng.integers(candidates.size)], label.shape)
        start = centred_start(centre, label.shape, self.size)
        window = tuple(slice(s, s + n) for s, n in zip(start, self.size))
        return image[window].astype(np.float32), label[window].astype(np.int8)

    def sample_batch(self, cases: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
        """One patch from each ``(image, answer label)`` pair: ``(float32 [B, 1, D, H, W], int64 [B, D, H, W])``."""
        return stacked_patches(self.sample, cases)
