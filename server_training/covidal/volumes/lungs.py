"""Both lungs of a chest CT in HU, by thresholding and morphology (no learning).

Air (HU < -320) inside the body's outline in its axial slice (not connected to the slice's border, and within the
slice's largest blob of tissue, holes filled: not the air of the CT table); minus the airway: the trachea
is tracked down from the most superior slice while it is a separate blob, then the airway lumen (HU < -950)
is grown from it in 3D and widened by 3 mm; components under 20% of the largest (bowel gas) are dropped;
lungs that still touch are split by erosion into left and right (kept apart by a one-voxel gap); holes
(vessels) are filled per slice and the outline smoothed by a 3 mm closing.

:func:`find_lungs` (what predictions, involvement and the service's first cycle use) works on an in-plane
subsample of a fine CT (every ``step``-th row and column, so that its pixels are at most :data:`LUNG_GRID_MM`
across: step 2 from 0.74 to 1.1 mm) and gives each voxel of the CT the value of the coarse voxel it falls in: on a
512 x 512 CT at 0.8 mm that is a quarter of the voxels and a fifth of the time, for masks within Dice 0.98 of the
full-resolution ones and a first cycle that finds as much infection (server_training/BENCHMARKS.md, "Lungs on a
subsample").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from skimage.morphology import convex_hull_image

from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.validation import check_int

LUNG_MAX_HU = -320.0
MAX_AIRWAY_AREA_MM2 = 600.0  # an adult trachea is ~2-3 cm^2 in cross-section; a lung slice is far larger
AIRWAY_LUMEN_MAX_HU = -950.0  # airway lumen is air (~-1000 HU); inflated lung parenchyma is ~-850 HU
MAX_AIRWAY_ML = 150.0  # trachea and bronchi hold ~30-50 mL; more means the growth leaked into the lungs
AIRWAY_WALL_MM = 3.0
MIN_LUNG_FRACTION = 0.2  # a component smaller than this share of the largest is gas in the bowel, not lung
LUNG_CLOSING_RADIUS_MM = 3.0
MAX_SPLIT_EROSIONS = 4
RIGHT, LEFT = 1, 2  # labels of :class:`Lungs`
OUTSIDE_LUNGS_HU = -1024.0  # what :func:`lungs_only` puts outside the lungs: air, below any tissue's range
# The lungs are found on pixels at most this wide (a subsample of finer slices): the pleura, airway and vessels
# the morphology works with are several mm across, and the masks only bound predictions and count mL. Measured:
# even 3 mm pixels (step 2 on the demo's 1.5 mm CT) keep Dice 0.97-0.98 against full resolution (BENCHMARKS.md).
LUNG_GRID_MM = 2.2


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
    """``air`` ``[K, J, I]`` inside the body's outline: without the parts that touch the border of their axial
    slice, and without those outside the slice's largest blob of tissue with its holes filled (the air a CT
    table's cushion encloses under the patient touches no border, but lies outside the body).

    Per slice rather than in 3D, because in 3D the airway reaches outside air through the
    mouth and nose when the scan includes the face.
    """
    inside = np.zeros_like(air)
    for k, air_slice in enumerate(air):
        labels, _ = ndimage.label(air_slice)
        border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
        inside[k] = air_slice & ~np.isin(labels, np.unique(border)) & _body_outline(~air_slice)
    return inside


def _body_outline(tissue: np.ndarray) -> np.ndarray:
    """bool ``[J, I]``: the largest blob of ``tissue`` (one axial slice) with its holes filled; all False if none."""
    labels, count = ndimage.label(tissue)
    if count == 0:
        return np.zeros_like(tissue)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return ndimage.binary_fill_holes(labels == sizes.argmax())


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
    large cores appear, then give each voxel to the nearer core. Works in the component's bounding box (the
    distance transform of the whole CT took seconds).
    """
    box = tuple(slice(int(indices.min()), int(indices.max()) + 1) for indices in np.nonzero(component))
    local = component[box]
    for iterations in range(1, MAX_SPLIT_EROSIONS + 1):
        cores = _large_components(ndimage.binary_erosion(local, iterations=iterations))
        if len(cores) == 2:
            core_labels = cores[0].astype(np.uint8) + 2 * cores[1].astype(np.uint8)
            nearest = ndimage.distance_transform_edt(core_labels == 0, return_distances=False, return_indices=True)
            nearest_label = core_labels[tuple(nearest)]
            halves = [np.zeros_like(component), np.zeros_like(component)]
            for half, label in zip(halves, (1, 2)):
                half[box] = local & (nearest_label == label)
            return halves
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


@dataclass(frozen=True)
class Lungs:
    """The lungs of a CT: the aerated lung, and each lung filled to its convex hull slice by slice.

    The aerated mask (:func:`segment_lungs`) leaves out dense lesions on the pleura (consolidation is soft-tissue
    dense, not air): on the demo CT it holds 0.815 of the lesion voxels. Each lung's axial outline filled to its
    convex hull puts them back (0.992) but also takes in the domes of the diaphragm (5,749 mL against 4,059 mL).
    So a prediction is restricted to the filled lungs (it keeps pleural lesions and drops air outside the body
    and the soft tissue around the chest), while what is measured as lung is the aerated lung plus the
    infection found in the filled lungs.

    Attributes:
        aerated: bool ``[K, J, I]``, :func:`segment_lungs`.
        filled: uint8 ``[K, J, I]``: 0 outside, :data:`RIGHT` (1) and :data:`LEFT` (2) for the patient's right and
            left lung, each filled to its per-slice convex hull; a single unsplit component is :data:`RIGHT`.
        voxel_ml: the volume of one voxel in mL.
    """

    aerated: np.ndarray
    filled: np.ndarray
    voxel_ml: float

    @property
    def nbytes(self) -> int:
        return self.aerated.nbytes + self.filled.nbytes


def find_lungs(ct: Volume, step: int | None = None) -> Lungs:
    """The aerated lungs (:func:`segment_lungs`) and the filled lungs, labelled right and left, found on every
    ``step``-th row and column of each axial slice and given back on the CT's own grid.

    Right and left come from the CT's geometry: the lung whose centre lies further toward the patient's left
    (LPS +x) is the left lung. Where the two hulls would overlap, the voxel goes to the right lung.

    Args:
        ct: a CT volume in HU, array ``[K, J, I]``.
        step: the in-plane subsampling (1: every voxel); default :func:`lung_grid_step` of the CT's spacing.

    Raises:
        CovidalError: as :func:`segment_lungs`, or a step below 1.
    """
    step = lung_grid_step(ct.spacing) if step is None else check_int("lung grid step", step, minimum=1)
    coarse = Volume(
        np.asarray(ct.array)[:, ::step, ::step],
        (ct.spacing[0] * step, ct.spacing[1] * step, ct.spacing[2]),
        ct.origin,
        ct.direction,
    )
    aerated = segment_lungs(coarse)
    components, _ = ndimage.label(aerated)
    filled = np.zeros(components.shape, dtype=np.uint8)
    for label, component in zip((RIGHT, LEFT), _right_then_left(components, coarse)):
        filled[_slice_hulls(components == component) & (filled == 0)] = label
    shape = np.shape(ct.array)
    return Lungs(_upsampled(aerated, step, shape), _upsampled(filled, step, shape), float(np.prod(ct.spacing)) / 1000.0)


def lung_grid_step(spacing: tuple[float, float, float]) -> int:
    """The largest in-plane subsampling (>= 1) that keeps both in-plane pixel sides at most :data:`LUNG_GRID_MM`
    (``spacing`` is ``(i, j, k)`` in mm)."""
    return max(1, int(LUNG_GRID_MM / max(spacing[0], spacing[1]) + 1e-9))  # 1e-9: 2.2 / 1.1 is 1.999...


def _upsampled(coarse: np.ndarray, step: int, shape: tuple[int, int, int]) -> np.ndarray:
    """``coarse`` ``[K, J', I']`` (every ``step``-th row and column of a ``shape`` grid) back on ``shape``: each
    voxel takes the value of the coarse voxel whose block holds it."""
    if step == 1:
        return coarse
    return np.repeat(np.repeat(coarse, step, axis=1), step, axis=2)[:, : shape[1], : shape[2]]


def _right_then_left(components: np.ndarray, ct: Volume) -> list[int]:
    """Component numbers of ``components`` (at most 2, largest kept), the patient's right lung first."""
    sizes = np.bincount(components.ravel())[1:]
    kept = [int(n) + 1 for n in np.argsort(sizes)[::-1][:2]]
    centres_kji = ndimage.center_of_mass(components > 0, components, kept)
    lps_x = [(np.asarray(centre[::-1]) * np.array(ct.spacing) @ ct.direction.T)[0] for centre in centres_kji]
    return [kept[n] for n in np.argsort(lps_x)]


def _slice_hulls(lung: np.ndarray) -> np.ndarray:
    """bool ``[K, J, I]``: each axial slice of ``lung`` filled to its convex hull (computed in its bounding box)."""
    filled = np.zeros_like(lung)
    for k in np.flatnonzero(lung.any(axis=(1, 2))):
        rows, columns = np.nonzero(lung[k])
        box = slice(rows.min(), rows.max() + 1), slice(columns.min(), columns.max() + 1)
        filled[k][box] = convex_hull_image(lung[k][box])
    return filled


def lungs_only(ct: Volume, lungs: np.ndarray) -> np.ndarray:
    """float32 ``[K, J, I]``: the CT's HU inside ``lungs`` (bool ``[K, J, I]``), :data:`OUTSIDE_LUNGS_HU` elsewhere."""
    return np.where(lungs, np.asarray(ct.array, dtype=np.float32), np.float32(OUTSIDE_LUNGS_HU))


@dataclass(frozen=True)
class Involvement:
    """How much of each lung a label volume marks as infected, as radiologists grade severity.

    Lung volume = aerated lung plus the infection found in the filled lung (dense infection is lung too).

    Attributes:
        infected_ml: infected volume in both lungs.
        lung_ml: volume of both lungs.
        right_percent, left_percent: infected share of the right and the left lung in percent (0 for a lung
            of no volume).
    """

    infected_ml: float
    lung_ml: float
    right_percent: float
    left_percent: float

    @property
    def percent(self) -> float:
        """Infected share of both lungs in percent."""
        return 100.0 * self.infected_ml / self.lung_ml if self.lung_ml else 0.0


def restrict_to_lungs(labels: np.ndarray, lungs: Lungs) -> np.ndarray:
    """``labels`` ``[K, J, I]`` with every voxel outside the filled lungs set to 0 (same dtype)."""
    return np.where(lungs.filled > 0, labels, np.zeros((), dtype=labels.dtype))


def involvement(infected: np.ndarray, lungs: Lungs) -> Involvement:
    """The :class:`Involvement` of bool ``infected`` ``[K, J, I]`` (voxels outside the filled lungs ignored)."""
    infected_ml, lung_ml = [], []
    for label in (RIGHT, LEFT):
        lung = lungs.filled == label
        inside = infected & lung
        infected_ml.append(float(np.count_nonzero(inside)) * lungs.voxel_ml)
        lung_ml.append(float(np.count_nonzero(inside | (lungs.aerated & lung))) * lungs.voxel_ml)
    right, left = (100.0 * i / v if v else 0.0 for i, v in zip(infected_ml, lung_ml))
    return Involvement(sum(infected_ml), sum(lung_ml), right, left)
