"""Both lungs of a chest CT in HU, by thresholding and morphology (no learning).

Air (HU < -320) not connected to the border of its axial slice (outside air); minus the airway: the trachea
is tracked down from the most superior slice while it is a separate blob, then the airway lumen (HU < -950)
is grown from it in 3D and widened by 3 mm; components under 20% of the largest (bowel gas) are dropped;
lungs that still touch are split by erosion into left and right (kept apart by a one-voxel gap); holes
(vessels) are filled per slice and the outline smoothed by a 3 mm closing.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from covidal.data.volume import Volume
from covidal.errors import CovidalError

LUNG_MAX_HU = -320.0
MAX_AIRWAY_AREA_MM2 = 600.0  # an adult trachea is ~2-3 cm^2 in cross-section; a lung slice is far larger
AIRWAY_LUMEN_MAX_HU = -950.0  # airway lumen is air (~-1000 HU); inflated lung parenchyma is ~-850 HU
MAX_AIRWAY_ML = 150.0  # trachea and bronchi hold ~30-50 mL; more means the growth leaked into the lungs
AIRWAY_WALL_MM = 3.0
MIN_LUNG_FRACTION = 0.2  # a component smaller than this share of the largest is gas in the bowel, not lung
LUNG_CLOSING_RADIUS_MM = 3.0
MAX_SPLIT_EROSIONS = 4


def segment_lungs(ct: Volume) -> np.ndarray:
    """Both lungs of a chest CT in HU, by thresholding and morphology (no learning).

    Axial slices are assumed (``array[k]`` is an axial slice). Air outside the body is
    what touches the slice border; the trachea and main bronchi are removed by
    :func:`_airway_mask`; components smaller than ``MIN_LUNG_FRACTION`` of the largest
    (bowel gas) are dropped. Lungs that touch (anterior junction, bronchi) are split by
    :func:`_split_in_two`, so the result is normally two components, left and right; if
    they cannot be split they stay one component.

    Args:
        ct: a CT volume in HU, array ``[K, J, I]``.

    Returns:
        bool ``[K, J, I]`` lung mask.

    Raises:
        CovidalError: the volume is not 3D, or no lung-like air is found.
    """
    hu = np.asarray(ct.array)
    if hu.ndim != 3:
        raise CovidalError(f"segment_lungs needs a 3D CT, got an array of shape {hu.shape}")
    spacing_kji = np.array(ct.spacing[::-1])
    candidate = _air_inside_body(hu < LUNG_MAX_HU)
    candidate &= ~_airway_mask(candidate, hu, ct)
    components = _large_components(candidate)
    if len(components) == 1:
        components = _split_in_two(components[0])
    lungs = np.zeros_like(candidate)
    for component in components:
        # A one-voxel gap (the pleura between them) keeps the two lungs separate components.
        lungs |= _fill_and_smooth(component, spacing_kji) & ~ndimage.binary_dilation(lungs)
    if not lungs.any():
        raise CovidalError("no lungs found in the CT: is it a chest CT in Hounsfield units?")
    return lungs


def _air_inside_body(air: np.ndarray) -> np.ndarray:
    """``air`` ``[K, J, I]`` without the parts that touch the border of their axial slice.

    Per slice rather than in 3D, because in 3D the airway reaches outside air through the
    mouth and nose when the scan includes the face.
    """
    inside = np.zeros_like(air)
    for k, air_slice in enumerate(air):
        labels, _ = ndimage.label(air_slice)
        border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        inside[k] = air_slice & ~np.isin(labels, np.unique(border))
    return inside


def _airway_mask(candidate: np.ndarray, hu: np.ndarray, ct: Volume) -> np.ndarray:
    """Trachea and main bronchi in ``candidate`` ``[K, J, I]``.

    The top of the trachea is tracked in 2D (:func:`_track_trachea`); from there the airway
    lumen (HU < ``AIRWAY_LUMEN_MAX_HU``, darker than lung parenchyma) is grown in 3D. If that
    growth exceeds ``MAX_AIRWAY_ML`` it has leaked into the lungs and only the tracked part is
    used. The result is widened by ``AIRWAY_WALL_MM`` so the partial-volume rim of the lumen
    goes too (otherwise filling holes per slice would put the lumen back).
    """
    tracked = _track_trachea(candidate, ct)
    labels, _ = ndimage.label(candidate & (hu < AIRWAY_LUMEN_MAX_HU))
    lumen = np.isin(labels, np.unique(labels[tracked & (labels > 0)]))
    voxel_ml = float(np.prod(ct.spacing)) / 1000.0
    airway = tracked | lumen if lumen.sum() * voxel_ml <= MAX_AIRWAY_ML else tracked
    radius = np.maximum(np.round(AIRWAY_WALL_MM / np.array(ct.spacing[::-1])).astype(int), 1)
    return ndimage.binary_dilation(airway, structure=_ellipsoid(radius)) & candidate


def _track_trachea(candidate: np.ndarray, ct: Volume) -> np.ndarray:
    """The trachea in ``candidate`` ``[K, J, I]`` while it is a separate blob in its axial slice.

    The seed is the blob nearest the left-right middle in the most superior slice that has
    any; the track follows blobs that overlap the previous slice's airway and stay under
    ``MAX_AIRWAY_AREA_MM2``, and stops where the trachea touches a lung in the slice.
    """
    airway = np.zeros_like(candidate)
    slice_order = range(len(candidate))
    if ct.direction[2, 2] > 0:  # k increases toward superior: start from the last slice
        slice_order = reversed(slice_order)
    max_area_voxels = MAX_AIRWAY_AREA_MM2 / (ct.spacing[0] * ct.spacing[1])
    previous: np.ndarray | None = None
    for k in slice_order:
        labels, count = ndimage.label(candidate[k])
        if count == 0:
            if previous is not None:
                break
            continue
        sizes = np.bincount(labels.ravel(), minlength=count + 1)
        if previous is None:
            keep = [_most_central_label(labels, count)]
        else:
            keep = [label for label in np.unique(labels[previous]) if label != 0]
        keep = [label for label in keep if sizes[label] <= max_area_voxels]
        if not keep:
            break
        airway[k] = np.isin(labels, keep)
        previous = airway[k]
    return airway


def _most_central_label(labels: np.ndarray, count: int) -> int:
    """Label ``1..count`` of the 2D blob whose centroid is nearest the middle column."""
    centroids = ndimage.center_of_mass(labels > 0, labels, range(1, count + 1))
    middle = (labels.shape[1] - 1) / 2
    return 1 + int(np.argmin([abs(column - middle) for _, column in centroids]))


def _large_components(mask: np.ndarray) -> list[np.ndarray]:
    """The 3D components of ``mask`` of at least ``MIN_LUNG_FRACTION`` of the largest, largest first (at most 2)."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return []
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(sizes)[::-1][:2]
    return [labels == label + 1 for label in order if sizes[label] >= MIN_LUNG_FRACTION * sizes[order[0]]]


def _split_in_two(component: np.ndarray) -> list[np.ndarray]:
    """Split lungs that touch (``[K, J, I]``) into left and right, or return ``[component]`` if they will not split.

    The two lungs meet only through thin bridges (junction lines, bronchi): erode until two
    large cores appear, then give each voxel to the nearer core.
    """
    for iterations in range(1, MAX_SPLIT_EROSIONS + 1):
        cores = _large_components(ndimage.binary_erosion(component, iterations=iterations))
        if len(cores) == 2:
            core_labels = cores[0].astype(np.uint8) + 2 * cores[1].astype(np.uint8)
            nearest = ndimage.distance_transform_edt(core_labels == 0, return_distances=False, return_indices=True)
            nearest_label = core_labels[tuple(nearest)]
            return [component & (nearest_label == 1), component & (nearest_label == 2)]
    return [component]


def _fill_and_smooth(component: np.ndarray, spacing_kji: np.ndarray) -> np.ndarray:
    """Fill vessel holes per axial slice and close the outline of one lung ``[K, J, I]``.

    Works in a padded bounding box, so the closing has room and costs little.
    """
    radius = np.maximum(np.round(LUNG_CLOSING_RADIUS_MM / spacing_kji).astype(int), 1)
    box = tuple(
        slice(max(int(indices.min()) - r - 1, 0), min(int(indices.max()) + r + 2, size))
        for indices, r, size in zip(np.nonzero(component), radius, component.shape)
    )
    local = np.pad(component[box], [(r + 1, r + 1) for r in radius])
    closed = ndimage.binary_closing(local, structure=_ellipsoid(radius))
    unpadded = closed[tuple(slice(r + 1, -(r + 1)) for r in radius)]
    filled = np.stack([ndimage.binary_fill_holes(s) for s in unpadded])
    result = np.zeros_like(component)
    result[box] = filled
    return result


def _ellipsoid(radius_kji: np.ndarray) -> np.ndarray:
    """Boolean ellipsoid structuring element with the given radii in voxels ``(k, j, i)``."""
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radius_kji)]
    return sum((g / r) ** 2 for g, r in zip(grids, radius_kji)) <= 1.0
