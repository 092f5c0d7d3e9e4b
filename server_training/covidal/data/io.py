"""Reading and writing CT volumes, label volumes and 2D slice images.

Volumes (NIfTI, NRRD, MetaImage, DICOM series) go through SimpleITK, DICOM
through its GDCM reader. 2D PNG/JPEG files go through pillow, because
SimpleITK silently accepts a truncated JPEG, expands palette PNGs to RGB
(losing the class indices of label masks saved with a colour table) and cannot
read gray-plus-alpha PNGs.

Every problem with a user's file is raised as :class:`CovidalError` naming the file.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from PIL import Image

from covidal.data.volume import Volume
from covidal.errors import CovidalError

VOLUME_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")
METAIMAGE_SUFFIXES = (".mha", ".mhd")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

# Masks whose largest value reaches this are 8-bit black/white images (0/255,
# with JPEG noise around both); smaller values are class labels (0, 1, 2, ...).
EIGHT_BIT_MASK_THRESHOLD = 128

_GZIP_CHUNK_BYTES = 1 << 20


def volume_suffix(path: Path) -> str | None:
    """The volume suffix ``path`` ends with (case-insensitive), or None."""
    name = path.name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def is_dicom_series_dir(path: Path) -> bool:
    """True when ``path`` is a folder directly holding at least one DICOM image series."""
    return Path(path).is_dir() and bool(_dicom_series_ids(Path(path)))


def read_volume(path: Path) -> Volume:
    """Read a 3D scalar volume: a NIfTI/NRRD/MetaImage file, or a folder holding one DICOM series.

    DICOM slices are ordered by position (GDCM); files with minimal headers
    load as long as GDCM finds pixel data and geometry. A 3D image with a
    single slice is accepted. (ITK's NIfTI reader turns NaN/inf voxels into 0
    before they can be seen here; other formats are checked.)

    Returns:
        The volume, ``array`` ``[K, J, I]`` in the file's pixel type.

    Raises:
        CovidalError: the path is missing, has an unsupported suffix, is an
            unreadable or truncated file, a folder without exactly one DICOM
            series, not 3D, has several components per voxel, or holds NaN/inf.
    """
    return Volume.from_sitk(read_image(path))


def read_image(path: Path) -> sitk.Image:
    """What :func:`read_volume` reads, as the SimpleITK image (no numpy copy of its voxels); errors as there."""
    path = Path(path)
    if not path.exists():
        raise CovidalError(f"{path} does not exist")
    if path.is_dir():
        return read_dicom_image(dicom_series_files(path), path)
    return _checked_image(_read_volume_file(path), path)


def read_dicom_image(files: tuple[str, ...], folder: Path) -> sitk.Image:
    """The 3D image of one DICOM series' ``files`` (as :func:`dicom_series_files` lists those of ``folder``).

    Raises:
        CovidalError: as :func:`read_volume` (messages name ``folder``).
    """
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    try:
        image = reader.Execute()
    except RuntimeError as error:
        raise CovidalError(
            f"cannot read the DICOM series in {folder}: a file of it is damaged, or its pixel data is compressed "
            "in a way this installation cannot decode"
        ) from error
    return _checked_image(image, folder)


def _checked_image(image: sitk.Image, path: Path) -> sitk.Image:
    """``image`` if it is 3D, scalar and finite; CovidalError naming ``path`` otherwise."""
    if image.GetDimension() != 3:
        raise CovidalError(f"{path} is {image.GetDimension()}D; expected a 3D volume")
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CovidalError(
            f"{path} has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
            "expected a scalar (single-component) volume"
        )
    voxels = sitk.GetArrayViewFromImage(image)  # valid while ``image`` lives
    if np.issubdtype(voxels.dtype, np.floating) and not np.isfinite(voxels).all():
        raise CovidalError(f"{path} holds NaN or infinite voxels; fix or replace them before use")
    return image


def read_label_volume(path: Path, reference: Volume) -> Volume:
    """Read a label volume that must share ``reference``'s voxel grid.

    Returns:
        The labels, ``array`` ``[K, J, I]`` of an integer dtype (float files
        holding whole numbers become uint8, or int32 when they do not fit).

    Raises:
        CovidalError: anything :func:`read_volume` refuses, non-integer values,
            or a geometry that differs from ``reference`` (the message says which property).
    """
    labels = read_volume(path)
    labels = labels.with_array(_integer_labels(labels.array, path))
    difference = geometry_difference(labels, reference)
    if difference:
        raise CovidalError(f"label volume {path} does not match its image: {difference}")
    return labels


def geometry_difference(volume: Volume, reference: Volume, tolerance: float = 1e-4) -> str | None:
    """Describe the first way ``volume``'s grid differs from ``reference``'s, or None when they match.

    Uses the tolerances of :meth:`Volume.same_geometry`.
    """
    if volume.same_geometry(reference, tolerance):
        return None
    if volume.array.shape != reference.array.shape:
        return f"size (i, j, k) {volume.shape_ijk} vs {reference.shape_ijk}"
    if not np.allclose(volume.spacing, reference.spacing, atol=tolerance):
        return f"spacing {volume.spacing} vs {reference.spacing} mm"
    if not np.allclose(volume.origin, reference.origin, atol=tolerance * 100):
        return f"origin {volume.origin} vs {reference.origin} mm"
    rounded, reference_rounded = (np.round(v.direction, 4).ravel().tolist() for v in (volume, reference))
    return f"direction {rounded} vs {reference_rounded}"


def write_volume(volume: Volume, path: Path) -> None:
    """Write ``volume`` with compression, creating parent folders; an existing file is replaced atomically.

    The file is written into a temporary folder beside ``path`` (same file
    system) under its final name, then moved into place with ``os.replace``, so
    a reader never sees a half-written file. Detached-header formats (.mhd,
    .nhdr) produce a data file too; it is moved before the header.

    Raises:
        CovidalError: unsupported suffix, or SimpleITK cannot write the file.
    """
    path = Path(path)
    if volume_suffix(path) is None:
        raise CovidalError(f"cannot write {path}: use one of the suffixes {', '.join(VOLUME_SUFFIXES)}")
    array = volume.array.astype(np.uint8) if volume.array.dtype == bool else volume.array
    image = volume.with_array(array).to_sitk()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".tmp-") as staging_dir:
        staged = Path(staging_dir) / path.name
        try:
            sitk.WriteImage(image, str(staged), useCompression=True)
        except RuntimeError as error:
            raise CovidalError(f"cannot write {path}: {_last_line(error)}") from error
        for produced in sorted(Path(staging_dir).iterdir(), key=lambda file: file == staged):
            with open(produced, "rb+") as handle:
                os.fsync(handle.fileno())  # durable before it becomes visible under its final name
            os.replace(produced, path.parent / produced.name)


def read_image_2d(path: Path) -> np.ndarray:
    """Read a PNG/JPEG slice as stored.

    Colour images (gray CT rendered as RGB, palette or with alpha) are
    converted to gray with the ITU-R 601 luminance, which returns the gray
    value itself when all channels are equal.

    Returns:
        ``[H, W]`` array: uint8 for 8-bit images, uint16/int32/float32 for 16/32-bit ones.

    Raises:
        CovidalError: missing file, unsupported suffix, unreadable or truncated
            file, or several frames.
    """
    return _gray_values(_load_image_2d(path))


def read_mask_2d(path: Path, mask_class: int | None = None) -> np.ndarray:
    """Read a 2D reference mask as foreground/background.

    Palette PNGs hold class numbers as palette indices: foreground where the
    index equals ``mask_class``, or is non-zero without one. Other images are
    taken as gray values (colour ones as luminance), then:

    * with ``mask_class``: foreground where the value equals ``mask_class``;
    * else if the largest value is at least 128 (an 8-bit black/white mask,
      possibly with JPEG noise): foreground where the value is >= 128;
    * else (class labels 0/1, 0/1/2, ...): foreground where the value is non-zero.

    Returns:
        uint8 ``[H, W]`` with values in {0, 1}.

    Raises:
        CovidalError: anything :func:`read_image_2d` refuses, ``mask_class``
            below 1, or ``mask_class`` given for a colour (non-palette) mask,
            whose colours carry no class numbers.
    """
    check_mask_class(mask_class)
    image = _load_image_2d(path)
    if image.mode == "P":
        return labels_to_binary(np.array(image), mask_class)
    if mask_class is not None and _has_colour(image):
        raise CovidalError(
            f"mask {path} is a colour image, so a mask class cannot be picked from it; "
            "save the mask as a gray or palette PNG holding class numbers"
        )
    values = _gray_values(image)
    if mask_class is None and values.max(initial=0) >= EIGHT_BIT_MASK_THRESHOLD:
        return (values >= EIGHT_BIT_MASK_THRESHOLD).astype(np.uint8)
    return labels_to_binary(values, mask_class)


def check_mask_class(mask_class: int | None) -> None:
    """Raise CovidalError unless ``mask_class`` is None or an integer >= 1 (0 is background)."""
    if mask_class is not None and (not isinstance(mask_class, (int, np.integer)) or mask_class < 1):
        raise CovidalError(f"mask class must be a whole number >= 1 (0 is background), got {mask_class!r}")


def labels_to_binary(labels: np.ndarray, mask_class: int | None) -> np.ndarray:
    """uint8 {0, 1} array, same shape as ``labels``: ``labels == mask_class``, or ``labels != 0`` without a class.

    Raises:
        CovidalError: ``mask_class`` is not None and below 1.
    """
    check_mask_class(mask_class)
    foreground = labels != 0 if mask_class is None else labels == mask_class
    return foreground.astype(np.uint8)


def _load_image_2d(path: Path) -> Image.Image:
    """Open and fully decode a single-frame PNG/JPEG, turning every failure into a CovidalError."""
    path = Path(path)
    if not path.is_file():
        raise CovidalError(f"{path} does not exist or is not a file")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise CovidalError(f"{path} is not a 2D image; expected one of {', '.join(IMAGE_SUFFIXES)}")
    try:
        with Image.open(path) as image:
            frames = getattr(image, "n_frames", 1)
            image.load()  # decodes now, so truncation is reported here; the pixels outlive the file
    except Image.DecompressionBombError as error:
        raise CovidalError(f"cannot read image {path}: it has more pixels than the decoder allows") from error
    except (OSError, SyntaxError, ValueError) as error:
        # Pillow's words ("cannot identify image file ...") name its internals; say what it means instead.
        raise CovidalError(
            f"cannot read image {path}: the file is damaged, truncated or not a PNG/JPG image"
        ) from error
    if frames > 1:
        raise CovidalError(f"{path} has {frames} frames; expected a single 2D image")
    return image


def _gray_values(image: Image.Image) -> np.ndarray:
    """``[H, W]`` values of a decoded image: single-channel modes as stored, others as luminance."""
    if image.mode in ("L", "I", "F") or image.mode.startswith("I;16"):
        return np.array(image)
    return np.array(image.convert("L"))


def _has_colour(image: Image.Image) -> bool:
    """True when some pixel's RGB channels differ."""
    rgb = np.asarray(image.convert("RGB"))
    return bool(np.any(rgb[..., 0] != rgb[..., 1]) or np.any(rgb[..., 0] != rgb[..., 2]))


def _integer_labels(array: np.ndarray, path: Path) -> np.ndarray:
    """``array`` as an integer dtype; float arrays must hold whole numbers."""
    if not np.issubdtype(array.dtype, np.floating):
        return array
    if not np.array_equal(array, np.rint(array)):
        example = array[array != np.rint(array)].flat[0]
        raise CovidalError(
            f"label volume {path} holds non-integer values (e.g. {example}); labels must be whole numbers"
        )
    low, high = (array.min(), array.max()) if array.size else (0, 0)
    for dtype in (np.uint8, np.int32):
        limits = np.iinfo(dtype)
        if limits.min <= low and high <= limits.max:
            return array.astype(dtype)
    raise CovidalError(f"label volume {path} holds values from {low} to {high}, outside the 32-bit integer range")


def _read_volume_file(path: Path) -> sitk.Image:
    suffix = volume_suffix(path)
    if suffix is None:
        hint = " (for DICOM, give the folder holding the series)" if path.suffix.lower() == ".dcm" else ""
        raise CovidalError(f"{path}: unsupported volume file; expected one of {', '.join(VOLUME_SUFFIXES)}{hint}")
    if suffix in (".nii", ".nii.gz"):
        _check_nifti_complete(path)
    try:
        with _stderr_hidden() if suffix in METAIMAGE_SUFFIXES else nullcontext():
            return sitk.ReadImage(str(path))
    except RuntimeError as error:
        # ITK's message names its own classes and source lines; say what it means instead.
        if any(word in str(error).lower() for word in ("bad_alloc", "allocate", "memory")):
            raise CovidalError(f"cannot read {path}: not enough memory to decode it") from error
        raise CovidalError(
            f"cannot read {path} as a {suffix} volume: the file is damaged, truncated or not in that format"
        ) from error


@contextmanager
def _stderr_hidden() -> Iterator[None]:
    """Send what native code writes to the process's stderr to /dev/null meanwhile.

    ITK's MetaImage reader prints its own diagnostics there (e.g. "MetaImage: M_ReadElementsData: data not read
    completely") besides raising; the error raised says what went wrong in our words. Output of other threads
    is hidden too while this lasts: the service never reads MetaImage files (its uploads are NIfTI, NRRD or
    DICOM), so only the command line reads through here.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def dicom_series_files(folder: Path) -> tuple[str, ...]:
    """The files of the one DICOM series directly in ``folder``, in slice order (GDCM).

    Raises:
        CovidalError: the folder holds no DICOM series, or several.
    """
    series_ids = _dicom_series_ids(folder)
    if not series_ids:
        raise CovidalError(
            f"{folder} is a folder without DICOM images; give a volume file "
            f"({', '.join(VOLUME_SUFFIXES)}) or a folder holding one DICOM series"
        )
    if len(series_ids) > 1:
        raise CovidalError(
            f"{folder} holds {len(series_ids)} DICOM series ({', '.join(series_ids)}); "
            "move each series into its own folder"
        )
    return tuple(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), series_ids[0]))


def _dicom_series_ids(folder: Path) -> tuple[str, ...]:
    with _itk_warnings_hidden():  # GDCM warns "No Series were found" for every non-DICOM folder
        return tuple(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder)))


@contextmanager
def _itk_warnings_hidden() -> Iterator[None]:
    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)


def _check_nifti_complete(path: Path) -> None:
    """Refuse a NIfTI file shorter than its header says.

    ITK's NIfTI reader fills the missing part of a truncated file with zeros
    without any error, so an interrupted download would load as a wrong volume.
    """
    gzipped = path.name.lower().endswith(".gz")
    try:
        with gzip.open(path, "rb") if gzipped else open(path, "rb") as stream:
            header = stream.read(540)
            expected = _nifti_expected_bytes(header)
            if expected is None:
                return  # not a NIfTI header: SimpleITK reports the problem
            if gzipped:
                available = expected if _gzip_trailer_size(path) == expected % 2**32 else _stream_length(stream, header)
            else:
                available = path.stat().st_size
    except (OSError, EOFError, zlib.error) as error:
        raise CovidalError(f"cannot read volume {path}: the file is damaged or truncated") from error
    if available < expected:
        raise CovidalError(f"cannot read volume {path}: truncated file ({available} of {expected} bytes)")


def _nifti_expected_bytes(header: bytes) -> int | None:
    """Header plus voxel data length in bytes from a NIfTI-1 or NIfTI-2 header, or None if it is neither."""
    for order in "<>":
        if len(header) >= 348 and struct.unpack(order + "i", header[:4])[0] == 348:
            ndim, *dims = struct.unpack(order + "8h", header[40:56])
            bits = struct.unpack(order + "h", header[72:74])[0]
            offset = int(struct.unpack(order + "f", header[108:112])[0])
        elif len(header) >= 540 and struct.unpack(order + "i", header[:4])[0] == 540:
            bits = struct.unpack(order + "h", header[14:16])[0]
            ndim, *dims = struct.unpack(order + "8q", header[16:80])
            offset = struct.unpack(order + "q", header[168:176])[0]
        else:
            continue
        if not 1 <= ndim <= 7:
            return None
        return offset + math.prod(dims[:ndim]) * bits // 8
    return None


def _gzip_trailer_size(path: Path) -> int:
    """The uncompressed size mod 2**32 recorded in a gzip file's last 4 bytes."""
    with open(path, "rb") as raw:
        raw.seek(-4, os.SEEK_END)
        return struct.unpack("<I", raw.read(4))[0]


def _stream_length(stream: gzip.GzipFile, already_read: bytes) -> int:
    length = len(already_read)
    while chunk := stream.read(_GZIP_CHUNK_BYTES):
        length += len(chunk)
    return length


def _last_line(error: Exception) -> str:
    """SimpleITK errors span several lines of C++ context; the last one says what went wrong."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
