import gzip
import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from PIL import Image
from scipy.spatial.transform import Rotation

from covidal.data.io import (
    geometry_difference,
    is_dicom_series_dir,
    labels_to_binary,
    read_image_2d,
    read_label_volume,
    read_mask_2d,
    read_volume,
    volume_suffix,
    write_volume,
)
from covidal.data.volume import Volume
from covidal.errors import CovidalError

SHARED_DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"
DICOM = SHARED_DATA / "dicom"
OBLIQUE = Rotation.from_euler("xyz", [10, -20, 30], degrees=True).as_matrix()


def shared(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data {path} is absent (it lives beside the checkout in ../shared/data)")
    return path


def oblique_volume(dtype=np.int16) -> Volume:
    array = (np.arange(3 * 4 * 5).reshape(3, 4, 5) * 7 - 200).astype(dtype)
    return Volume(array, spacing=(0.7, 0.8, 2.5), origin=(-100.5, 20.25, 33.125), direction=OBLIQUE)


def write_png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    Image.fromarray(array, mode=mode).save(path)
    return path


def truncate(path: Path, keep: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


# ---------------------------------------------------------------- volumes


@pytest.mark.parametrize(
    ("suffix", "atol"),
    [(".nrrd", 1e-12), (".nhdr", 1e-12), (".mha", 0.0), (".mhd", 0.0), (".nii", 1e-6), (".nii.gz", 1e-6)],
)
def test_round_trip_keeps_voxels_and_oblique_geometry(tmp_path, suffix, atol):
    # NIfTI stores geometry in float32, hence its tolerance; the others store it as text.
    volume = oblique_volume()
    path = tmp_path / f"ct{suffix}"
    write_volume(volume, path)
    read = read_volume(path)
    np.testing.assert_array_equal(read.array, volume.array)
    assert read.array.dtype == np.int16
    np.testing.assert_allclose(read.spacing, volume.spacing, rtol=0, atol=atol)
    np.testing.assert_allclose(read.origin, volume.origin, rtol=0, atol=atol)
    np.testing.assert_allclose(read.direction, volume.direction, rtol=0, atol=atol)
    assert read.same_geometry(volume)


@pytest.mark.parametrize(
    ("suffix", "expected_files"),
    [(".nrrd", ["ct.nrrd"]), (".mhd", ["ct.mhd", "ct.zraw"]), (".nhdr", ["ct.nhdr", "ct.raw.gz"])],
)
def test_write_creates_parents_and_leaves_no_temporary_files(tmp_path, suffix, expected_files):
    folder = tmp_path / "a" / "b"
    write_volume(oblique_volume(), folder / f"ct{suffix}")
    write_volume(oblique_volume(), folder / f"ct{suffix}")  # replacing an existing file
    assert sorted(p.name for p in folder.iterdir()) == expected_files


def test_write_compresses(tmp_path):
    volume = Volume(np.zeros((20, 64, 64), dtype=np.int16))
    write_volume(volume, tmp_path / "zeros.nrrd")
    assert (tmp_path / "zeros.nrrd").stat().st_size < volume.array.nbytes / 10


def test_write_stores_bool_as_uint8(tmp_path):
    mask = Volume(np.eye(4, dtype=bool)[None].repeat(2, axis=0))
    write_volume(mask, tmp_path / "mask.nrrd")
    read = read_volume(tmp_path / "mask.nrrd")
    assert read.array.dtype == np.uint8
    np.testing.assert_array_equal(read.array, mask.array.astype(np.uint8))


def test_write_refuses_unknown_suffix(tmp_path):
    with pytest.raises(CovidalError, match="suffixes"):
        write_volume(oblique_volume(), tmp_path / "ct.png")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.nii.gz", ".nii.gz"),
        ("A.NII.GZ", ".nii.gz"),
        ("a.nii", ".nii"),
        ("b.mhd", ".mhd"),
        ("c.png", None),
        ("d", None),
    ],
)
def test_volume_suffix(name, expected):
    assert volume_suffix(Path(name)) == expected


def test_single_slice_volume_is_accepted(tmp_path):
    write_volume(Volume(np.ones((1, 8, 8), dtype=np.int16)), tmp_path / "one.nrrd")
    assert read_volume(tmp_path / "one.nrrd").array.shape == (1, 8, 8)


def test_2d_file_is_refused(tmp_path):
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), dtype=np.int16)), str(tmp_path / "flat.nrrd"))
    with pytest.raises(CovidalError, match=r"flat\.nrrd is 2D; expected a 3D volume"):
        read_volume(tmp_path / "flat.nrrd")


def test_vector_volume_is_refused(tmp_path):
    image = sitk.GetImageFromArray(np.zeros((2, 8, 8, 3), dtype=np.uint8), isVector=True)
    sitk.WriteImage(image, str(tmp_path / "rgb.mha"))
    with pytest.raises(CovidalError, match="3 components per voxel"):
        read_volume(tmp_path / "rgb.mha")


@pytest.mark.parametrize("suffix", [".nrrd", ".mha"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_volume_is_refused(tmp_path, bad, suffix):
    # Not NIfTI: ITK's NIfTI reader already turns non-finite voxels into 0.
    array = np.zeros((2, 8, 8), dtype=np.float32)
    array[1, 2, 3] = bad
    write_volume(Volume(array), tmp_path / f"bad{suffix}")
    with pytest.raises(CovidalError, match="NaN or infinite"):
        read_volume(tmp_path / f"bad{suffix}")


def test_missing_path_is_refused(tmp_path):
    with pytest.raises(CovidalError, match="nowhere.nii.gz does not exist"):
        read_volume(tmp_path / "nowhere.nii.gz")


@pytest.mark.parametrize(("name", "hint"), [("slice.dcm", "folder holding the series"), ("notes.txt", "unsupported")])
def test_unsupported_file_is_refused(tmp_path, name, hint):
    (tmp_path / name).write_bytes(b"x" * 100)
    with pytest.raises(CovidalError, match=hint):
        read_volume(tmp_path / name)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_truncated_volume_is_refused(tmp_path, suffix):
    path = tmp_path / f"ct{suffix}"
    array = np.random.default_rng(0).integers(-1000, 1000, size=(8, 32, 32)).astype(np.int16)
    write_volume(Volume(array), path)
    with pytest.raises(CovidalError, match="ct"):
        read_volume(truncate(path, keep=0.8))


@pytest.mark.parametrize("damage", ["truncated", "missing data file"])
def test_a_damaged_metaimage_is_refused_in_our_words_only(tmp_path, capfd, damage):
    """ITK's MetaImage reader prints its own diagnostics on the process's stderr (file descriptor 2, which
    capfd captures); only the error raised may say what went wrong."""
    path = tmp_path / ("ct.mha" if damage == "truncated" else "ct.mhd")
    write_volume(Volume(np.zeros((4, 8, 8), np.int16)), path)
    if damage == "truncated":
        truncate(path, keep=0.8)
    else:
        (data,) = [file for file in tmp_path.iterdir() if file != path]
        data.unlink()
    capfd.readouterr()
    with pytest.raises(CovidalError, match=f"cannot read .*{path.name} as a {path.suffix} volume: the file is damaged"):
        read_volume(path)
    printed = capfd.readouterr()
    assert (printed.out, printed.err) == ("", "")


def test_garbage_gzip_nifti_is_refused_in_our_words(tmp_path):
    (tmp_path / "ct.nii.gz").write_bytes(b"garbage")
    with pytest.raises(CovidalError, match="cannot read volume .*ct.nii.gz: the file is damaged or truncated$"):
        read_volume(tmp_path / "ct.nii.gz")


def test_multi_member_gzip_nifti_is_complete(tmp_path):
    # Its gzip trailer holds only the last member's size, so completeness is checked by decompressing.
    volume = Volume(np.arange(4 * 16 * 16, dtype=np.int16).reshape(4, 16, 16))
    write_volume(volume, tmp_path / "plain.nii")
    data = (tmp_path / "plain.nii").read_bytes()
    (tmp_path / "ct.nii.gz").write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:]))
    np.testing.assert_array_equal(read_volume(tmp_path / "ct.nii.gz").array, volume.array)
    (tmp_path / "cut.nii.gz").write_bytes(gzip.compress(data[:1000]) + gzip.compress(data[1000:-40]))
    with pytest.raises(CovidalError, match=r"truncated file \(\d+ of \d+ bytes\)"):
        read_volume(tmp_path / "cut.nii.gz")


def test_truncated_nifti_header_is_refused(tmp_path):
    path = tmp_path / "ct.nii.gz"
    path.write_bytes(gzip.compress(b"\x5c\x01\x00\x00" + b"\x00" * 100))
    with pytest.raises(CovidalError, match="ct.nii.gz"):
        read_volume(path)


def test_garbage_volume_is_refused(tmp_path):
    (tmp_path / "ct.nrrd").write_bytes(b"not an image at all")
    with pytest.raises(CovidalError, match="cannot read .*ct.nrrd as a .nrrd volume: the file is damaged") as caught:
        read_volume(tmp_path / "ct.nrrd")
    assert "itk" not in str(caught.value).lower()  # our words, not ITK's


def test_folder_without_dicom_is_refused(tmp_path):
    (tmp_path / "readme.txt").write_text("hello")
    assert not is_dicom_series_dir(tmp_path)
    with pytest.raises(CovidalError, match="without DICOM images"):
        read_volume(tmp_path)


def test_is_dicom_series_dir_is_false_for_files_and_missing_paths(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    assert not is_dicom_series_dir(tmp_path / "a.txt")
    assert not is_dicom_series_dir(tmp_path / "missing")


# ---------------------------------------------------------------- label volumes


def test_label_volume_keeps_integer_labels(tmp_path):
    image = oblique_volume()
    labels = image.with_array((np.arange(60).reshape(3, 4, 5) % 3).astype(np.int16))
    write_volume(labels, tmp_path / "labels.nrrd")
    read = read_label_volume(tmp_path / "labels.nrrd", image)
    assert read.array.dtype == np.int16
    np.testing.assert_array_equal(read.array, labels.array)


@pytest.mark.parametrize(("values", "dtype"), [([0.0, 1.0, 2.0], np.uint8), ([0.0, 300.0, -1.0], np.int32)])
def test_whole_number_float_labels_become_integers(tmp_path, values, dtype):
    image = Volume(np.zeros((1, 1, 3), dtype=np.int16))
    write_volume(image.with_array(np.array([[values]], dtype=np.float32)), tmp_path / "labels.nrrd")
    read = read_label_volume(tmp_path / "labels.nrrd", image)
    assert read.array.dtype == dtype
    np.testing.assert_array_equal(read.array, [[values]])


def test_fractional_labels_are_refused(tmp_path):
    image = Volume(np.zeros((1, 2, 2), dtype=np.int16))
    write_volume(image.with_array(np.array([[[0.0, 1.0], [0.5, 1.0]]], dtype=np.float32)), tmp_path / "soft.nrrd")
    with pytest.raises(CovidalError, match=r"non-integer values \(e.g. 0.5\)"):
        read_label_volume(tmp_path / "soft.nrrd", image)


@pytest.mark.parametrize(
    ("label", "property_name"),
    [
        (Volume(np.zeros((3, 4, 6), np.uint8), (0.7, 0.8, 2.5), (-100.5, 20.25, 33.125), OBLIQUE), "size"),
        (Volume(np.zeros((3, 4, 5), np.uint8), (0.7, 0.8, 3.0), (-100.5, 20.25, 33.125), OBLIQUE), "spacing"),
        (Volume(np.zeros((3, 4, 5), np.uint8), (0.7, 0.8, 2.5), (-100.5, 20.25, 34.0), OBLIQUE), "origin"),
        (Volume(np.zeros((3, 4, 5), np.uint8), (0.7, 0.8, 2.5), (-100.5, 20.25, 33.125), np.eye(3)), "direction"),
    ],
)
def test_label_geometry_mismatch_is_refused_naming_the_property(tmp_path, label, property_name):
    write_volume(label, tmp_path / "labels.nrrd")
    with pytest.raises(CovidalError, match=f"labels.nrrd does not match its image: {property_name}"):
        read_label_volume(tmp_path / "labels.nrrd", oblique_volume())


def test_geometry_difference_is_none_for_matching_grids():
    assert geometry_difference(oblique_volume(np.uint8), oblique_volume()) is None


# ---------------------------------------------------------------- DICOM (shared data)


def test_tcia_dicom_series():
    folder = shared(DICOM / "tcia_chest_ct_48")
    assert is_dicom_series_dir(folder)
    volume = read_volume(folder)
    assert volume.array.shape == (48, 512, 512)
    np.testing.assert_allclose(volume.spacing, (1.07421875, 1.07421875, 3.0), atol=1e-6)
    # slices sorted by position: the origin is the lowest slice (z = 343.91) and k runs upwards
    assert volume.origin[2] == pytest.approx(343.91, abs=1e-3)
    np.testing.assert_allclose(volume.direction, np.eye(3), atol=1e-6)
    # rescaled to HU: air outside the body is -1000 and most voxels are air or lung
    assert volume.array[:, :20, :20].mean() == pytest.approx(-1000, abs=5)
    assert np.median(volume.array) < -900
    assert volume.array.max() > 300  # bone


def test_dcmqi_dicom_series_with_its_label_maps():
    folder = shared(DICOM / "dcmqi_chest_ct_3slice")
    volume = read_volume(folder)
    assert volume.array.shape == (3, 512, 512)
    np.testing.assert_allclose(volume.spacing, (0.810547, 0.810547, 1.0), atol=1e-5)
    labels = read_label_volume(folder / "liver_spine_seg.nrrd", volume)
    assert set(np.unique(labels.array)) == {0, 1, 2}


def test_dicom_with_minimal_headers_loads():
    volume = read_volume(shared(DICOM / "lungmask_minimal_headers"))
    assert volume.array.shape == (2, 512, 512)
    assert volume.spacing == (0.625, 0.625, 1.0)


def test_folder_with_two_dicom_series_is_refused_listing_them(tmp_path):
    for series in ("lungmask_minimal_headers", "dcmqi_chest_ct_3slice"):
        for dicom_file in shared(DICOM / series).glob("*.dcm"):
            shutil.copy(dicom_file, tmp_path / f"{series}-{dicom_file.name}")
    with pytest.raises(CovidalError, match=r"holds 2 DICOM series \(1\.2\..*, 1\.2\..*\)"):
        read_volume(tmp_path)


# ---------------------------------------------------------------- 2D images


def test_gray_png_is_read_as_stored(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    read = read_image_2d(write_png(tmp_path / "g.png", gray))
    assert read.dtype == np.uint8
    np.testing.assert_array_equal(read, gray)


def test_rgb_with_equal_channels_gives_the_gray_values(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    read = read_image_2d(write_png(tmp_path / "rgb.png", np.stack([gray] * 3, axis=-1)))
    np.testing.assert_array_equal(read, gray)


@pytest.mark.parametrize(("rgb", "luminance"), [((255, 0, 0), 76), ((0, 255, 0), 150), ((0, 0, 255), 29)])
def test_colour_pixels_become_luminance(tmp_path, rgb, luminance):
    read = read_image_2d(write_png(tmp_path / "c.png", np.full((2, 2, 3), rgb, dtype=np.uint8)))
    assert np.all(read == luminance)


def test_gray_with_alpha_drops_alpha(tmp_path):
    pixels = np.stack([np.full((3, 3), 90, np.uint8), np.full((3, 3), 10, np.uint8)], axis=-1)
    assert np.all(read_image_2d(write_png(tmp_path / "la.png", pixels, mode="LA")) == 90)


def test_16_bit_png_keeps_its_values(tmp_path):
    values = np.array([[0, 1000], [40000, 65535]], dtype=np.uint16)
    read = read_image_2d(write_png(tmp_path / "deep.png", values))
    np.testing.assert_array_equal(read, values)
    assert read.dtype == np.uint16


def test_jpeg_is_read(tmp_path):
    path = tmp_path / "s.jpg"
    Image.fromarray(np.full((16, 16), 100, dtype=np.uint8)).save(path, quality=95)
    read = read_image_2d(path)
    assert read.shape == (16, 16) and np.abs(read.astype(int) - 100).max() <= 1


@pytest.mark.parametrize("name", ["s.png", "s.jpg"])
def test_truncated_image_is_refused(tmp_path, name):
    noise = np.random.default_rng(1).integers(0, 256, size=(64, 64), dtype=np.uint8)
    path = write_png(tmp_path / name, noise)
    with pytest.raises(CovidalError, match=f"cannot read image .*{name}"):
        read_image_2d(truncate(path))


@pytest.mark.parametrize(("name", "message"), [("s.bmp", "not a 2D image"), ("gone.png", "does not exist")])
def test_unusable_image_paths_are_refused(tmp_path, name, message):
    if name.endswith(".bmp"):
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / name)
    with pytest.raises(CovidalError, match=message):
        read_image_2d(tmp_path / name)


def test_multi_frame_image_is_refused(tmp_path):
    frames = [Image.fromarray(np.full((4, 4), value, np.uint8)) for value in (0, 255)]
    frames[0].save(tmp_path / "anim.png", save_all=True, append_images=frames[1:])
    with pytest.raises(CovidalError, match="2 frames"):
        read_image_2d(tmp_path / "anim.png")


# ---------------------------------------------------------------- 2D masks

VALUES_0_255 = np.array([[0, 255, 255, 0]], dtype=np.uint8)
VALUES_0_1 = np.array([[0, 1, 1, 0]], dtype=np.uint8)
VALUES_0_1_2 = np.array([[0, 1, 2, 0]], dtype=np.uint8)
VALUES_NOISY = np.array([[0, 3, 127, 128, 250, 255]], dtype=np.uint8)


@pytest.mark.parametrize(
    ("values", "mask_class", "expected"),
    [
        (VALUES_0_255, None, [[0, 1, 1, 0]]),
        (VALUES_0_1, None, [[0, 1, 1, 0]]),
        (VALUES_0_1_2, None, [[0, 1, 1, 0]]),
        (VALUES_0_1_2, 1, [[0, 1, 0, 0]]),
        (VALUES_0_1_2, 2, [[0, 0, 1, 0]]),
        (VALUES_0_1_2, 3, [[0, 0, 0, 0]]),
        (VALUES_NOISY, None, [[0, 0, 0, 1, 1, 1]]),  # 8-bit mask with JPEG-like noise: threshold at 128
    ],
)
def test_gray_masks(tmp_path, values, mask_class, expected):
    mask = read_mask_2d(write_png(tmp_path / "m.png", values), mask_class)
    assert mask.dtype == np.uint8
    np.testing.assert_array_equal(mask, expected)


@pytest.mark.parametrize(("mask_class", "expected"), [(None, [[0, 1, 1, 0]]), (1, [[0, 1, 0, 0]]), (2, [[0, 0, 1, 0]])])
def test_palette_masks_use_indices_not_colours(tmp_path, mask_class, expected):
    # like covid_semiseg masks_multiclass: index 1 is dark red (128, 0, 0), index 2 dark green (0, 128, 0)
    image = Image.fromarray(VALUES_0_1_2, mode="P")
    image.putpalette([0, 0, 0, 128, 0, 0, 0, 128, 0])
    image.save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask_2d(tmp_path / "m.png", mask_class), expected)


def test_colour_mask_is_binarised_without_class_and_refused_with_one(tmp_path):
    colours = np.array([[[0, 0, 0], [128, 0, 0], [0, 128, 0], [0, 0, 0]]], dtype=np.uint8)
    path = write_png(tmp_path / "m.png", colours)
    np.testing.assert_array_equal(read_mask_2d(path), [[0, 1, 1, 0]])
    with pytest.raises(CovidalError, match="colour image"):
        read_mask_2d(path, mask_class=1)


def test_jpeg_mask_with_compression_noise(tmp_path):
    truth = np.zeros((32, 32), dtype=np.uint8)
    truth[8:24, 8:24] = 255
    Image.fromarray(truth).save(tmp_path / "m.jpg", quality=75)
    mask = read_mask_2d(tmp_path / "m.jpg")
    np.testing.assert_array_equal(mask, truth // 255)


@pytest.mark.parametrize("mask_class", [0, -1, 1.5])
def test_bad_mask_class_is_refused(tmp_path, mask_class):
    with pytest.raises(CovidalError, match="mask class"):
        read_mask_2d(write_png(tmp_path / "m.png", VALUES_0_1), mask_class)


def test_truncated_mask_is_refused(tmp_path):
    noise = np.random.default_rng(2).integers(0, 2, size=(64, 64), dtype=np.uint8) * 255
    with pytest.raises(CovidalError, match="cannot read image"):
        read_mask_2d(truncate(write_png(tmp_path / "m.png", noise)))


@pytest.mark.parametrize(
    ("mask_class", "expected"),
    [(None, [0, 1, 1, 1]), (2, [0, 0, 1, 0]), (7, [0, 0, 0, 0])],
)
def test_labels_to_binary(mask_class, expected):
    result = labels_to_binary(np.array([0, 1, 2, 255]), mask_class)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)
