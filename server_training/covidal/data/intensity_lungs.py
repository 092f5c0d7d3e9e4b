"""Lungs and certain background of an 8-bit lung-window slice, from intensity alone (no Hounsfield units).

CT volumes have HU and their own lung mask (:mod:`covidal.volumes.lungs`); the JPG slices of the COVID-19
segmentation set do not. On them the lungs are the large dark regions: Otsu's threshold of the smoothed slice, its
two largest dark components, closed and filled (the slices are cropped to the chest, so the lungs often touch
the image border and there is little air outside the body). Dense consolidation
looks like soft tissue and falls outside that mask (about a fifth of the infection pixels of
``covid_semiseg/train``), so the mask is widened to the convex hull of each lung and dilated: it is used to
zero predictions far outside the lungs, not to cut lesions at the pleura.

Certain background is a second, independent prior: after a light blur, aerated lung (darkest) and bone
(brightest) are almost never infection, whatever the lungs' outline.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from skimage.filters import gaussian, threshold_otsu
from skimage.morphology import convex_hull_image, disk

from covidal.validation import check_real

SMOOTHING_SIGMA = 1.5
# Fraction of the image side used as the closing radius and the final dilation.
CLOSING_FRACTION = 0.02
DILATION_FRACTION = 0.02
# Components smaller than this share of the image are vessels or bowel gas, not a lung.
MIN_LUNG_FRACTION = 0.005
LUNG_COMPONENTS = 2


def _checked(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 8:
        raise ValueError(f"expected a 2D slice of at least 8x8 pixels, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.number) or not np.isfinite(image).all():
        raise ValueError("the slice must hold finite numbers")
    return image.astype(np.float32)


def intensity_lung_mask(image: np.ndarray, hull: bool = True) -> np.ndarray:
    """Boolean ``[H, W]`` lung mask of a slice in [0, 1] (lung window, air dark).

    Args:
        image: ``[H, W]`` intensities in [0, 1].
        hull: replace each of the two largest lungs by its convex hull and dilate (keeps dense lesions at the
            pleura inside); False gives the tight dark-region mask.

    Returns:
        All False when no dark region inside the body is large enough (e.g. a blank slice).

    Raises:
        ValueError: not a finite 2D slice of at least 8x8 pixels.
    """
    image = _checked(image)
    smooth = gaussian(image, sigma=SMOOTHING_SIGMA, preserve_range=True)
    if float(smooth.max() - smooth.min()) < 1e-6:
        return np.zeros(image.shape, dtype=bool)
    dark = smooth < threshold_otsu(smooth)
    components, count = ndimage.label(dark)
    sizes = ndimage.sum_labels(np.ones_like(components), components, index=np.arange(count + 1))
    sizes[0] = 0
    keep = [
        label for label in np.argsort(sizes)[::-1][:LUNG_COMPONENTS] if sizes[label] >= MIN_LUNG_FRACTION * dark.size
    ]
    side = min(image.shape)
    lungs = np.zeros(image.shape, dtype=bool)
    for label in keep:
        lung = ndimage.binary_closing(components == label, structure=disk(max(1, round(CLOSING_FRACTION * side))))
        lung = ndimage.binary_fill_holes(lung)
        lungs |= convex_hull_image(lung) if hull else lung
    if hull and lungs.any():
        lungs = ndimage.binary_dilation(lungs, structure=disk(max(1, round(DILATION_FRACTION * side))))
    return lungs


def certain_background(image: np.ndarray, dark: float, bright: float) -> np.ndarray:
    """Boolean ``[H, W]``: pixels whose blurred intensity is below ``dark`` or above ``bright``.

    Raises:
        ValueError: a bad slice, or thresholds outside [0, 1] or not ``dark < bright``.
    """
    image = _checked(image)
    check_real("dark threshold", dark, minimum=0.0, maximum=1.0)
    check_real("bright threshold", bright, minimum=0.0, maximum=1.0)
    if dark >= bright:
        raise ValueError(f"the dark threshold {dark} must be below the bright one {bright}")
    smooth = gaussian(image, sigma=SMOOTHING_SIGMA, preserve_range=True)
    return (smooth < dark) | (smooth > bright)
