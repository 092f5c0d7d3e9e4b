"""The LCFCN loss (Laradji et al. 2018, "Where are the blobs"), for infection points.

Four terms, each averaged over the images of the batch (with ``S`` the softmax
probabilities ``[B, 2, H, W]``):

* image level: the image must contain background, and contain infection iff it
  has an infection point: ``-log max S_c`` for present classes,
  ``-log(1 - max S_c)`` for absent ones.
* point level: the class-balanced point loss (:func:`point_loss`, pooled over
  the batch).
* false positive: predicted infection blobs with no infection point are
  supervised as background.
* split level: a predicted blob holding ``n >= 2`` points is split by a
  watershed seeded at its points, and the boundary between the basins is
  supervised as background with weight ``n - 1`` (the paper's weight); the
  global split does the same on the whole image with all points as seeds.

"Points" are the connected components of the infection-labelled pixels (one per
click, whatever the click's footprint); predicted blobs are connected
components of ``argmax == infection``. Both use 8-connectivity, as LCFCN's
``skimage.morphology.label`` does. Blobs and watersheds are computed in numpy on
detached probabilities; only the cross-entropies carry gradients.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import find_boundaries, watershed
from torch import Tensor

from covidal.losses.base import (
    BACKGROUND,
    INFECTION,
    Batch,
    LogitsLoss,
    LossResult,
    check_logits,
)
from covidal.losses.point import point_loss

EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


@dataclass
class ImageRegions:
    """The connected components of one image, in numpy.

    Attributes:
        infection_prob: ``[H, W]`` detached infection probability.
        blobs: ``[H, W]`` int; 0 outside predicted infection, else the blob id 1..n.
        points: ``[H, W]`` int; 0 off the infection points, else the point id 1..m.
        point_count: m.
    """

    infection_prob: np.ndarray
    blobs: np.ndarray
    points: np.ndarray
    point_count: int

    @classmethod
    def of(cls, logits: Tensor, point_labels: Tensor) -> ImageRegions:
        """Regions of one image from its logits ``[2, H, W]`` and labels ``[H, W]``."""
        infection_prob = logits.detach().softmax(dim=0)[INFECTION].cpu().numpy()
        predicted = (logits[INFECTION] > logits[BACKGROUND]).detach().cpu().numpy()
        blobs, _ = ndimage.label(predicted, structure=EIGHT_CONNECTED)
        points, point_count = ndimage.label((point_labels == INFECTION).cpu().numpy(), structure=EIGHT_CONNECTED)
        return cls(infection_prob, blobs, points, point_count)

    def points_in(self, blob: np.ndarray) -> np.ndarray:
        """Ids of the points that touch the boolean ``blob`` mask ``[H, W]``."""
        return np.unique(self.points[blob & (self.points > 0)])

    def blobs_with_points(self) -> np.ndarray:
        """Ids of the blobs that contain at least one infection point."""
        return np.unique(self.blobs[(self.points > 0) & (self.blobs > 0)])


def image_level_loss(logits: Tensor, point_labels: Tensor) -> Tensor:
    """Image-level term: does each class appear anywhere in the image?

    Background always counts as present; infection is present iff the image has
    an infection point. Per image: ``-log max_p S_0`` plus ``-log max_p S_1`` if
    infection is present, else ``-log(1 - max_p S_1)``; then the mean over images.
    With two classes ``1 - max_p S_1 = min_p S_0``, which keeps the log stable.

    Args:
        logits: ``[B, 2, H, W]``.
        point_labels: ``[B, H, W]`` int64 in {-1, 0, 1}.
    """
    check_logits(logits, point_labels)
    log_probs = logits.log_softmax(dim=1).flatten(2)  # [B, 2, H*W]
    background_present = -log_probs[:, BACKGROUND].amax(dim=1)
    infection_present = -log_probs[:, INFECTION].amax(dim=1)
    infection_absent = -log_probs[:, BACKGROUND].amin(dim=1)
    has_infection = (point_labels == INFECTION).flatten(1).any(dim=1)
    return (background_present + torch.where(has_infection, infection_present, infection_absent)).mean()


def false_positive_loss(logits: Tensor, point_labels: Tensor) -> Tensor:
    """False-positive term: background CE, averaged over the pixels of all
    point-free predicted blobs of an image (0 if none); then the mean over images.

    Args:
        logits: ``[B, 2, H, W]``.
        point_labels: ``[B, H, W]`` int64 in {-1, 0, 1}.
    """

    def term(regions: ImageRegions, log_background: Tensor) -> Tensor:
        false_positive = (regions.blobs > 0) & ~np.isin(regions.blobs, regions.blobs_with_points())
        return _background_ce(log_background, false_positive)

    return _mean_over_images(logits, point_labels, term)


def split_loss(logits: Tensor, point_labels: Tensor) -> Tensor:
    """Blob split term: for each predicted blob holding ``n >= 2`` points,
    ``(n - 1) *`` background CE averaged over the watershed boundaries inside
    the blob; summed over blobs, then the mean over images.

    The watershed runs on ``-P(infection)`` over the whole image, seeded with
    the blob's points only, and is then cut to the blob (as the LCFCN code does).

    Args:
        logits: ``[B, 2, H, W]``.
        point_labels: ``[B, H, W]`` int64 in {-1, 0, 1}.
    """

    def term(regions: ImageRegions, log_background: Tensor) -> Tensor:
        total = log_background.new_zeros(())
        for blob_id in regions.blobs_with_points():
            blob = regions.blobs == blob_id
            point_count = len(regions.points_in(blob))
            if point_count >= 2:
                boundaries = _watershed_boundaries(regions.infection_prob, np.where(blob, regions.points, 0)) & blob
                total = total + (point_count - 1) * _background_ce(log_background, boundaries)
        return total

    return _mean_over_images(logits, point_labels, term)


def global_split_loss(logits: Tensor, point_labels: Tensor) -> Tensor:
    """Global split term: background CE averaged over the boundaries of the
    watershed of ``-P(infection)`` seeded with all of the image's infection
    points (0 with fewer than 2 points); then the mean over images.

    Args:
        logits: ``[B, 2, H, W]``.
        point_labels: ``[B, H, W]`` int64 in {-1, 0, 1}.
    """

    def term(regions: ImageRegions, log_background: Tensor) -> Tensor:
        if regions.point_count < 2:
            return log_background.new_zeros(())
        return _background_ce(log_background, _watershed_boundaries(regions.infection_prob, regions.points))

    return _mean_over_images(logits, point_labels, term)


def _mean_over_images(logits: Tensor, point_labels: Tensor, term: Callable[[ImageRegions, Tensor], Tensor]) -> Tensor:
    """The mean over images of ``term(regions, log_background)``, ``log_background`` ``[H, W]`` of that image."""
    check_logits(logits, point_labels)
    log_background = logits.log_softmax(dim=1)[:, BACKGROUND]
    per_image = [
        term(ImageRegions.of(logits[index], point_labels[index]), log_background[index])
        for index in range(logits.shape[0])
    ]
    return torch.stack(per_image).mean()


def lcfcn_loss(logits: Tensor, point_labels: Tensor) -> LossResult:
    """The sum of the image, point, false-positive, split and global split terms.

    Args:
        logits: ``[B, 2, H, W]``.
        point_labels: ``[B, H, W]`` int64 in {-1, 0, 1}.

    Returns:
        ``total`` (differentiable) and ``parts`` named ``image``, ``point``,
        ``false_positive``, ``split``, ``global_split``.

    Raises:
        ValueError: if the shapes, dtype or label values are wrong.
    """
    terms = {
        "image": image_level_loss(logits, point_labels),
        "point": point_loss(logits, point_labels),
        "false_positive": false_positive_loss(logits, point_labels),
        "split": split_loss(logits, point_labels),
        "global_split": global_split_loss(logits, point_labels),
    }
    total = torch.stack(list(terms.values())).sum()
    return LossResult(total=total, parts={name: term.item() for name, term in terms.items()})


class LCFCNLoss(LogitsLoss):
    """The LCFCN loss on point labels; see :func:`lcfcn_loss`."""

    def from_logits(self, logits: Tensor, batch: Batch) -> LossResult:
        return lcfcn_loss(logits, batch.point_labels)


def _watershed_boundaries(infection_prob: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Boolean ``[H, W]``: the 2-pixel-thick boundaries between the catchment
    basins of ``-infection_prob`` grown from the labelled ``seeds`` ``[H, W]``."""
    basins = watershed(-infection_prob, markers=seeds)
    return find_boundaries(basins, mode="thick")


def _background_ce(log_background: Tensor, pixels: np.ndarray) -> Tensor:
    """Mean of ``-log S_0`` over the boolean ``pixels`` ``[H, W]`` (0 if empty)."""
    if not pixels.any():
        return log_background.new_zeros(())
    return -log_background[torch.from_numpy(pixels).to(log_background.device)].mean()
