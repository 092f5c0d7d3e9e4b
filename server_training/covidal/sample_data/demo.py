"""A demo case that needs no private data: real chest CT anatomy with SYNTHETIC COVID-19 lesions.

Provenance
    The CT is ``tests/reference_files/aorta_report/example_ct.nii.gz`` from the
    TotalSegmentator 2.18.0 source distribution on PyPI (Apache-2.0): a real
    contrast-enhanced chest CT, 233 x 167 x 191 voxels at 1.5 mm, in Hounsfield
    units. :func:`fetch_reference_ct` obtains it with ``pip download`` (the
    environment's configured package index, PyPI or its mirror; nothing else is
    contacted), extracts that one file, checks its SHA-256 and caches it.

The lesions are SYNTHETIC: the anatomy is real, the infection is not. Recipe:

1. :func:`covidal.volumes.lungs.segment_lungs` -- air (HU < -320) inside the body's outline in its axial
   slice (not connected to the slice's border, within the largest blob of tissue); minus the airway: the trachea is tracked down from
   the most superior slice while it is a separate blob, then the airway lumen
   (HU < -950) is grown from it in 3D and widened by 3 mm; components under 20%
   of the largest (bowel gas) are dropped; lungs that still touch are split by
   erosion into left and right (kept apart by a one-voxel gap); holes (vessels)
   are filled per slice and the outline smoothed by a 3 mm closing.
2. :func:`insert_lesions` -- lesion centres are drawn inside the lungs with a
   bias toward the costal pleura (shallow depth, far from the hilar axis) and
   toward posterior and lower zones, like real COVID-19 ground-glass opacities,
   at least 30 mm apart. Each lesion is a randomly rotated ellipsoid (radii
   5-25 mm) whose surface is perturbed by a smoothed random field, intersected
   with the lungs (largest connected part kept). Inside it, HU is blended toward
   a textured target, ``new = hu + alpha * (target - hu)``: ground glass (-650 to
   -350 HU) or, for about one lesion in five, consolidation (-100 to +50 HU);
   alpha varies smoothly inside (patchy haze) and falls to 0 over 2 mm at the
   edge; vessels (HU > -300) keep their values and HU is never lowered. The
   lesion label is the lung voxels raised by at least 100 HU
   (``VISIBLE_CHANGE_HU``), so the label matches what is visible; visible specks
   under 0.2 mL (``MIN_REGION_ML``) get their original HU back.
3. :func:`make_demo_case` writes the CT (int16 HU), the lesion label and the
   lung mask (uint8) as NRRD with the source geometry, cached per seed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from covidal.data.io import read_volume, write_volume
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.utils.atomic import atomic_write_bytes
from covidal.volumes.lungs import segment_lungs

TOTALSEGMENTATOR_VERSION = "2.18.0"
REFERENCE_CT_NAME = "example_ct.nii.gz"
REFERENCE_CT_SHA256 = "372d98723e3283a8d4a0ae2f0ef1e581c0ad17b673b30b2e8d3e215180cc2a12"


LESION_RADIUS_RANGE_MM = (5.0, 25.0)
MIN_SEPARATION_MM = 30.0
MIN_CENTRE_DEPTH_MM = 2.0
PERIPHERAL_DEPTH_SCALE_MM = 10.0
SHAPE_IRREGULARITY = 0.45  # amplitude of the random field added to the normalised ellipsoid radius
SHAPE_CORRELATION_FRACTION = 0.35  # smoothing of that field, as a fraction of the mean radius
EDGE_WIDTH_MM = 2.0
TEXTURE_SIGMA_MM = 1.5
TEXTURE_HU = 60.0
PATCH_SIGMA_MM = 3.0
PATCH_AMPLITUDE = 0.3
GROUND_GLASS_TARGET_HU = (-650.0, -350.0)
CONSOLIDATION_TARGET_HU = (-100.0, 50.0)
CONSOLIDATION_PROBABILITY = 0.2
VESSEL_MIN_HU = -300.0
VISIBLE_CHANGE_HU = 100.0
MIN_REGION_ML = 0.2
CROP_MARGIN = 8  # voxels kept around the lungs' bounding box


def default_cache_dir() -> Path:
    """``$COVIDAL_CACHE`` when set, else ``~/.cache/covidal``."""
    configured = os.environ.get("COVIDAL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "covidal"


def fetch_reference_ct(cache_dir: Path | None = None) -> Path:
    """Path of the cached real chest CT, downloading it from the package index if needed.

    Args:
        cache_dir: where ``example_ct.nii.gz`` is kept; default :func:`default_cache_dir`.

    Raises:
        CovidalError: pip fails (no network, no such version), the file is missing
            from the source distribution, or its SHA-256 differs from the expected one.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = cache_dir / REFERENCE_CT_NAME
    if target.is_file() and _sha256(target.read_bytes()) == REFERENCE_CT_SHA256:
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # The temporary folder holds the ~38 MB sdist and is deleted with it.
    with tempfile.TemporaryDirectory(prefix="covidal-sdist-", dir=cache_dir) as download_dir:
        sdist = _pip_download_sdist(Path(download_dir))
        content = _read_reference_member(sdist)
    if _sha256(content) != REFERENCE_CT_SHA256:
        raise CovidalError(
            f"the chest CT in totalsegmentator {TOTALSEGMENTATOR_VERSION} has SHA-256 {_sha256(content)}, "
            f"expected {REFERENCE_CT_SHA256}; the package index served a different file, check its configuration"
        )
    atomic_write_bytes(target, content)
    return target


def _pip_download_sdist(download_dir: Path) -> Path:
    """Run ``pip download`` for the TotalSegmentator sdist into ``download_dir`` and return the archive."""
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--no-binary",
        ":all:",
        f"totalsegmentator=={TOTALSEGMENTATOR_VERSION}",
        "-d",
        str(download_dir),
    ]
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise CovidalError(
            f"could not download totalsegmentator=={TOTALSEGMENTATOR_VERSION} (the source of the demo CT) "
            f"with pip (exit {completed.returncode}: {_pip_error_line(completed.stderr)}); "
            "check access to PyPI or set PIP_INDEX_URL to a mirror"
        )
    archives = sorted(download_dir.glob("*.tar.gz"))
    if not archives:
        raise CovidalError(f"pip downloaded no .tar.gz for totalsegmentator=={TOTALSEGMENTATOR_VERSION}")
    return archives[0]


def _pip_error_line(stderr: str) -> str:
    """The last ``ERROR:`` line of pip's stderr, else its last non-empty line.

    Not simply the last line: pip ends some errors with a line of carets under the bad text.
    """
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR")]
    if errors:
        return errors[-1]
    return lines[-1] if lines else "no message"


def _read_reference_member(sdist: Path) -> bytes:
    """Bytes of the chest CT inside the sdist; only that one member is read, nothing is extracted to disk."""
    member_name = f"totalsegmentator-{TOTALSEGMENTATOR_VERSION}/tests/reference_files/aorta_report/{REFERENCE_CT_NAME}"
    try:
        with tarfile.open(sdist, "r:gz") as archive:
            member = archive.getmember(member_name)
            stream = archive.extractfile(member) if member.isfile() else None
            if stream is None:
                raise CovidalError(f"{member_name} in {sdist.name} is not a regular file")
            return stream.read()
    except KeyError:
        raise CovidalError(f"{sdist.name} has no {member_name}; is the totalsegmentator version right?") from None
    except (tarfile.TarError, OSError) as error:
        raise CovidalError(f"cannot read {sdist.name} as a .tar.gz archive: {error}") from None


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def insert_lesions(
    ct: Volume, lungs: np.ndarray, rng: np.random.Generator, n_lesions: int = 12
) -> tuple[Volume, np.ndarray]:
    """Paint synthetic ground-glass and consolidation lesions into the lungs (recipe in the module docstring).

    Args:
        ct: CT in HU, array ``[K, J, I]``.
        lungs: bool ``[K, J, I]`` lung mask (from :func:`segment_lungs`).
        rng: the only source of randomness, so a seeded generator gives a reproducible case.
        n_lesions: number of lesions to place (0 leaves the CT unchanged).

    Returns:
        ``(new_ct, lesions)``: the CT as int16 with the same geometry, and the uint8
        ``{0, 1}`` ``[K, J, I]`` label of the voxels raised by at least ``VISIBLE_CHANGE_HU``
        (always inside ``lungs``; every 26-connected region is at least ``MIN_REGION_ML``).

    Raises:
        CovidalError: shapes differ, ``n_lesions`` is negative, or lesions are asked for in an empty lung mask.
    """
    lungs = np.asarray(lungs, dtype=bool)
    if lungs.shape != ct.array.shape:
        raise CovidalError(f"lung mask shape {lungs.shape} differs from the CT's {ct.array.shape}")
    if n_lesions < 0:
        raise CovidalError(f"n_lesions must be 0 or more, got {n_lesions}")
    if n_lesions > 0 and not lungs.any():
        raise CovidalError("the lung mask is empty, so there is nowhere to place lesions")
    original = ct.array.astype(np.float32)
    painted = original.copy()
    spacing_kji = np.array(ct.spacing[::-1])
    for centre in _lesion_centres(ct, lungs, rng, n_lesions):
        _paint_lesion(original, painted, lungs, centre, spacing_kji, rng)
    new_hu = _to_int16(painted)
    lesions = (new_hu.astype(np.float32) - original >= VISIBLE_CHANGE_HU) & lungs
    # Specks at ragged edges would each count as a region to click: put their HU back instead.
    specks = _regions_smaller_than(lesions, MIN_REGION_ML * 1000.0 / float(np.prod(ct.spacing)))
    new_hu[specks] = _to_int16(original[specks])
    return ct.with_array(new_hu), (lesions & ~specks).astype(np.uint8)


def _to_int16(hu: np.ndarray) -> np.ndarray:
    """``hu`` rounded and clipped to int16."""
    return np.clip(np.rint(hu), np.iinfo(np.int16).min, np.iinfo(np.int16).max).astype(np.int16)


def _regions_smaller_than(mask: np.ndarray, min_voxels: float) -> np.ndarray:
    """The 26-connected regions of boolean ``mask`` ``[K, J, I]`` with fewer than ``min_voxels`` voxels."""
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    sizes = np.bincount(labels.ravel())
    small = sizes < min_voxels
    small[0] = False
    return small[labels]


def _lesion_centres(ct: Volume, lungs: np.ndarray, rng: np.random.Generator, n_lesions: int) -> np.ndarray:
    """``[n_lesions, 3]`` voxel indices ``(k, j, i)`` inside ``lungs``, drawn with the COVID-19 distribution bias.

    Weight = exp(-depth / 10 mm) (subpleural) x squared distance from the hilar axis x posterior
    position x inferior position (positions rescaled to [0, 1] over the lungs); candidates
    closer than ``MIN_SEPARATION_MM`` to an accepted centre are skipped while enough others remain.
    """
    if n_lesions == 0:
        return np.zeros((0, 3), dtype=int)
    spacing_kji = np.array(ct.spacing[::-1])
    depth = ndimage.distance_transform_edt(lungs, sampling=spacing_kji)
    candidates = np.argwhere(lungs & (depth >= MIN_CENTRE_DEPTH_MM))
    if len(candidates) == 0:
        candidates = np.argwhere(lungs)
    lps = candidates[:, ::-1] * np.array(ct.spacing) @ ct.direction.T + np.array(ct.origin)
    # Distance from the lungs' central (hilar) axis in the axial plane: high along the costal
    # pleura, low along the mediastinum, where COVID-19 lesions are rare.
    radial = _unit_range(np.hypot(*(lps[:, :2] - np.median(lps[:, :2], axis=0)).T))
    posterior = _unit_range(lps[:, 1])
    inferior = _unit_range(-lps[:, 2])
    weights = np.exp(-depth[tuple(candidates.T)] / PERIPHERAL_DEPTH_SCALE_MM)
    weights *= (0.02 + radial**2) * (0.3 + posterior) * (0.5 + inferior)
    drawn = candidates[rng.choice(len(candidates), size=40 * n_lesions, p=weights / weights.sum())]
    return _spread_out(drawn, spacing_kji, n_lesions)


def _unit_range(values: np.ndarray) -> np.ndarray:
    """``values`` rescaled to ``[0, 1]`` (all zeros when constant)."""
    span = values.max() - values.min()
    return (values - values.min()) / span if span > 0 else np.zeros_like(values)


def _spread_out(drawn: np.ndarray, spacing_kji: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` points of ``drawn`` ``[N, 3]`` that are ``MIN_SEPARATION_MM`` apart.

    If too few are that far apart, the rest are taken in order regardless.
    """
    accepted: list[int] = []
    for index, point in enumerate(drawn):
        distances = [np.linalg.norm((point - drawn[other]) * spacing_kji) for other in accepted]
        if all(distance >= MIN_SEPARATION_MM for distance in distances):
            accepted.append(index)
        if len(accepted) == count:
            return drawn[accepted]
    rest = [index for index in range(len(drawn)) if index not in accepted]
    return drawn[accepted + rest[: count - len(accepted)]]


def _paint_lesion(
    original: np.ndarray,
    painted: np.ndarray,
    lungs: np.ndarray,
    centre: np.ndarray,
    spacing_kji: np.ndarray,
    rng: np.random.Generator,
) -> None:
    """Raise HU in one irregular lesion around ``centre`` (k, j, i), writing the maximum into ``painted`` in place.

    Each lesion is computed from ``original`` so overlapping lesions do not compound and
    the result does not depend on the order of the lesions.
    """
    radii = rng.uniform(*LESION_RADIUS_RANGE_MM, size=3)
    rotation = _random_rotation(rng)
    consolidation = rng.random() < CONSOLIDATION_PROBABILITY
    target = rng.uniform(*(CONSOLIDATION_TARGET_HU if consolidation else GROUND_GLASS_TARGET_HU))
    peak_alpha = rng.uniform(0.8, 1.0)

    reach = np.ceil(radii.max() * (1 + 2 * SHAPE_IRREGULARITY) / spacing_kji).astype(int) + 1
    box = tuple(slice(max(c - r, 0), min(c + r + 1, size)) for c, r, size in zip(centre, reach, original.shape))
    offsets_mm = np.stack(
        np.meshgrid(*[(np.arange(s.start, s.stop) - c) * d for s, c, d in zip(box, centre, spacing_kji)], indexing="ij")
    )
    local_axes = np.tensordot(rotation, offsets_mm, axes=1)
    radius_normalised = np.sqrt(sum((axis / r) ** 2 for axis, r in zip(local_axes, radii)))
    shape_field = _smooth_noise(rng, radius_normalised.shape, SHAPE_CORRELATION_FRACTION * radii.mean(), spacing_kji)
    surface = radius_normalised + SHAPE_IRREGULARITY * shape_field
    edge = EDGE_WIDTH_MM / radii.mean()
    patchiness = _smooth_noise(rng, surface.shape, PATCH_SIGMA_MM, spacing_kji)
    density = np.clip(1.0 + PATCH_AMPLITUDE * patchiness, 0.3, 1.0)  # uneven haze, as in real GGO
    alpha = peak_alpha * density * np.clip((1.0 - surface) / edge, 0.0, 1.0) * lungs[box]
    alpha *= _largest_component(alpha > 0)  # one lesion is one region, without stray specks

    hu = original[box]
    texture = TEXTURE_HU * _smooth_noise(rng, hu.shape, TEXTURE_SIGMA_MM, spacing_kji)
    blended = hu + alpha * (target + texture - hu)
    blended = np.where(hu > VESSEL_MIN_HU, hu, blended)
    np.maximum(painted[box], blended, out=painted[box])


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean 3D ``mask`` (all False if empty)."""
    labels, count = ndimage.label(mask, structure=np.ones((3, 3, 3)))
    if count == 0:
        return mask
    return labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random ``[3, 3]`` rotation matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q *= np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, ...], sigma_mm: float, spacing_kji: np.ndarray
) -> np.ndarray:
    """Gaussian-smoothed white noise of the given shape, rescaled to unit standard deviation."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=sigma_mm / spacing_kji)
    std = field.std()
    return field / std if std > 0 else field


# Bump when the lung or lesion recipe changes, so cached cases of an older recipe are not reused.
DEMO_RECIPE_VERSION = 1


@dataclass(frozen=True)
class DemoCase:
    """The files of one demo case (NRRD, all with the source CT's geometry)."""

    ct: Path
    lesions: Path
    lungs: Path
    seed: int


def make_demo_case(cache_dir: Path | None = None, seed: int = 0) -> DemoCase:
    """Build (or reuse) the demo case for ``seed`` under ``cache_dir / f"demo-v{DEMO_RECIPE_VERSION}-seed{seed}"``.

    Deterministic: the same seed always gives the same arrays. Files: ``demo_ct.nrrd``
    (int16 HU), ``demo_lesions.nrrd`` (uint8 {0,1}), ``demo_lungs.nrrd`` (uint8 {0,1}).

    Args:
        cache_dir: holds the reference CT and the cases; default :func:`default_cache_dir`.
        seed: seed of the lesion generator.

    Raises:
        CovidalError: the reference CT cannot be fetched (see :func:`fetch_reference_ct`).
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    case_dir = cache_dir / f"demo-v{DEMO_RECIPE_VERSION}-seed{seed}"
    case = DemoCase(case_dir / "demo_ct.nrrd", case_dir / "demo_lesions.nrrd", case_dir / "demo_lungs.nrrd", seed)
    if all(path.is_file() for path in (case.ct, case.lesions, case.lungs)):
        return case
    ct = Volume.from_sitk(sitk.ReadImage(str(fetch_reference_ct(cache_dir)), sitk.sitkInt16))
    lungs = segment_lungs(ct)
    lesion_ct, lesions = insert_lesions(ct, lungs, np.random.default_rng(seed))
    case_dir.mkdir(parents=True, exist_ok=True)
    write_volume(lesion_ct, case.ct)
    write_volume(ct.with_array(lesions), case.lesions)
    write_volume(ct.with_array(lungs.astype(np.uint8)), case.lungs)
    return case


def chest_box(case: DemoCase) -> tuple[slice, slice, slice]:
    """``(i, j, k)`` slices of the lungs' bounding box, ``CROP_MARGIN`` wider on every side within the CT: what
    ``covidal demo`` crops its cases to.

    The crop keeps only the chest, so the training grid keeps native resolution and the service scores
    fewer regions; the margin keeps chest wall around the lungs, so lungs never touch a slice's border.

    Raises:
        CovidalError: fewer than 10 slices with lung.
    """
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(case.lungs))).astype(bool)  # [K, J, I]
    if lungs.any(axis=(1, 2)).sum() < 10:
        raise CovidalError("the demo CT has fewer than 10 slices with lung")
    k, j, i = (_extent(lungs.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    return i, j, k


def cropped_demo_case(seed: int, cache_dir: Path | None = None) -> tuple[Volume, np.ndarray]:
    """The demo case of ``seed`` cropped to the chest as ``covidal demo`` crops it (the box of seed 0's case, the
    same for every seed): the CT and bool lesions ``[K, J, I]``."""
    case = make_demo_case(cache_dir, seed=seed)
    i, j, k = chest_box(make_demo_case(cache_dir, seed=0))
    ct = read_volume(case.ct)
    lesions = read_volume(case.lesions).array.astype(bool)[k, j, i]
    # The crop's first voxel moves the origin along the CT's axes.
    origin = np.asarray(ct.origin) + ct.direction @ (np.array([i.start, j.start, k.start]) * np.asarray(ct.spacing))
    return Volume(np.ascontiguousarray(ct.array[k, j, i]), ct.spacing, tuple(origin), ct.direction), lesions


def _extent(occupied: np.ndarray) -> slice:
    """``[start, stop)`` of the occupied indices of a 1D mask, widened by ``CROP_MARGIN`` within bounds."""
    index = np.flatnonzero(occupied)
    return slice(max(0, int(index[0]) - CROP_MARGIN), min(len(occupied), int(index[-1]) + 1 + CROP_MARGIN))


def describe(case: DemoCase) -> str:
    """A few lines for the demo to print: size, spacing, lesion regions and volumes."""
    ct = Volume.from_sitk(sitk.ReadImage(str(case.ct)))
    lesions = sitk.GetArrayFromImage(sitk.ReadImage(str(case.lesions))) > 0
    lungs = sitk.GetArrayFromImage(sitk.ReadImage(str(case.lungs))) > 0
    voxel_ml = float(np.prod(ct.spacing)) / 1000.0
    _, regions = ndimage.label(lesions, structure=np.ones((3, 3, 3)))
    spacing = " x ".join(f"{s:g}" for s in ct.spacing)
    size = " x ".join(str(n) for n in ct.shape_ijk)
    return "\n".join(
        [
            f"demo case (seed {case.seed}): real chest CT with SYNTHETIC COVID-19 lesions",
            f"  CT:      {case.ct} ({size} voxels, {spacing} mm)",
            f"  lesions: {regions} connected regions, {lesions.sum() * voxel_ml:.1f} mL ({case.lesions.name})",
            f"  lungs:   {lungs.sum() * voxel_ml:.0f} mL ({case.lungs.name})",
        ]
    )
