from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from covidal.data.io import read_volume, write_volume
from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.volumes.cases import CaseSource
from covidal.volumes.preprocess import (
    CT_WINDOW,
    TARGET_SPACING_MM,
    Interpolation,
    prepare_case,
    prepare_cases,
    resample_to_grid,
    resample_to_spacing,
)

SPACING = (0.7, 0.8, 2.5)  # tests/conftest.py writes volumes with this spacing, an origin and an oblique direction
SHAPE = (12, 20, 25)  # [K, J, I]
GRID_SHAPE = (9, 10, 11)  # round(12 * 2.5 / 3.2), round(20 * 0.8 / 1.6), round(25 * 0.7 / 1.6)


def oblique_volume(array: np.ndarray, volume_writer, tmp_path: Path) -> Volume:
    """``array`` written with the shared oblique geometry and read back (a real file, real SimpleITK I/O)."""
    volume = read_volume(volume_writer(array, tmp_path / "source.nrrd"))
    assert not np.allclose(volume.direction, np.eye(3))
    return volume


def assert_same_geometry_exactly(volume: Volume, reference: Volume) -> None:
    assert volume.array.shape == reference.array.shape
    assert volume.spacing == reference.spacing
    assert volume.origin == reference.origin
    np.testing.assert_array_equal(volume.direction, reference.direction)


def index_ramp(shape: tuple[int, int, int], axis: int) -> np.ndarray:
    """Array ``[K, J, I]`` holding each voxel's index along ``axis`` (0 = k, 2 = i)."""
    return np.indices(shape)[axis]


# ---------------------------------------------------------------- resampling


@pytest.mark.parametrize(
    ("shape_ijk", "spacing", "new_spacing", "expected_ijk"),
    [
        ((25, 20, 12), (0.7, 0.8, 2.5), (1.6, 1.6, 3.2), (11, 10, 9)),  # 10.94, 10, 9.375
        ((5, 4, 3), (2.0, 2.0, 5.0), (1.0, 1.0, 1.0), (10, 8, 15)),  # upsampling
        ((1, 3, 2), (0.5, 1.0, 1.0), (3.2, 3.2, 3.2), (1, 1, 1)),  # 0.16 rounds to 0: at least one voxel
    ],
)
def test_resample_to_spacing_size_spacing_and_oblique_geometry(
    tmp_path, volume_writer, shape_ijk, spacing, new_spacing, expected_ijk
):
    source = oblique_volume(np.zeros(shape_ijk[::-1], dtype=np.int16), volume_writer, tmp_path)
    source = Volume(source.array, spacing, source.origin, source.direction)
    for interpolation in Interpolation:
        resampled = resample_to_spacing(source, new_spacing, interpolation)
        assert resampled.shape_ijk == expected_ijk
        assert resampled.spacing == new_spacing
        assert resampled.origin == source.origin
        np.testing.assert_array_equal(resampled.direction, source.direction)


def test_linear_resampling_reproduces_a_linear_ramp_in_mm(tmp_path, volume_writer):
    # f = 2 * (i mm) - 3 * (k mm) is linear in space, so linear interpolation reproduces it exactly
    # at every new voxel whose position lies between source voxel centres.
    ramp = 2.0 * index_ramp(SHAPE, 2) * SPACING[0] - 3.0 * index_ramp(SHAPE, 0) * SPACING[2]
    source = oblique_volume(ramp, volume_writer, tmp_path)
    resampled = resample_to_spacing(source, TARGET_SPACING_MM, Interpolation.LINEAR)
    assert resampled.array.dtype == np.float32 and resampled.array.shape == GRID_SHAPE
    k_mm = index_ramp(GRID_SHAPE, 0) * TARGET_SPACING_MM[2]
    i_mm = index_ramp(GRID_SHAPE, 2) * TARGET_SPACING_MM[0]
    inside = (k_mm <= (SHAPE[0] - 1) * SPACING[2]) & (i_mm <= (SHAPE[2] - 1) * SPACING[0])
    assert inside.mean() > 0.7
    np.testing.assert_allclose(resampled.array[inside], (2.0 * i_mm - 3.0 * k_mm)[inside], atol=1e-3)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32])
def test_nearest_resampling_takes_the_nearest_voxel_and_keeps_the_dtype(tmp_path, volume_writer, dtype):
    labels = index_ramp(SHAPE, 2).astype(dtype)  # each voxel holds its i index
    resampled = resample_to_spacing(
        oblique_volume(labels, volume_writer, tmp_path), TARGET_SPACING_MM, Interpolation.NEAREST
    )
    assert resampled.array.dtype == dtype
    # new voxel i' lies at source index i' * 1.6 / 0.7 = 2.29 i' (never halfway, so no ties)
    nearest_i = np.rint(index_ramp(GRID_SHAPE, 2) * TARGET_SPACING_MM[0] / SPACING[0])
    np.testing.assert_array_equal(resampled.array, nearest_i)


def test_nearest_resampling_of_a_bool_mask_stays_bool(tmp_path, volume_writer):
    mask = index_ramp(SHAPE, 2) % 2 == 0
    source = oblique_volume(mask.astype(np.uint8), volume_writer, tmp_path)
    resampled = resample_to_spacing(source.with_array(mask), TARGET_SPACING_MM, Interpolation.NEAREST)
    assert resampled.array.dtype == bool
    nearest_i = np.rint(index_ramp(GRID_SHAPE, 2) * TARGET_SPACING_MM[0] / SPACING[0])
    np.testing.assert_array_equal(resampled.array, nearest_i % 2 == 0)


def test_round_trip_to_the_training_grid_and_back_gives_the_source_geometry_exactly(tmp_path, volume_writer):
    ramp = index_ramp(SHAPE, 1) * SPACING[1]  # j in mm: linear, so the round trip keeps interior values
    source = oblique_volume(ramp, volume_writer, tmp_path)
    coarse = resample_to_spacing(source, TARGET_SPACING_MM, Interpolation.LINEAR)
    back = resample_to_grid(coarse, source, Interpolation.LINEAR, extrapolate=True)
    assert_same_geometry_exactly(back, source)
    # Interior: source voxels between coarse voxel centres along every axis (beyond them, values are extrapolated).
    inside = np.ones(SHAPE, bool)
    for axis, (old, new) in enumerate(zip(SPACING[::-1], TARGET_SPACING_MM[::-1])):
        inside &= index_ramp(SHAPE, axis) * old <= (GRID_SHAPE[axis] - 1) * new
    assert inside.mean() > 0.7
    np.testing.assert_allclose(back.array[inside], ramp[inside], atol=1e-3)


@pytest.mark.parametrize(("extrapolate", "expected_last_column"), [(False, -5), (True, "edge")])
def test_resample_to_grid_outside_the_input(tmp_path, volume_writer, extrapolate, expected_last_column):
    values = np.arange(np.prod(SHAPE), dtype=np.int32).reshape(SHAPE)
    source = oblique_volume(values, volume_writer, tmp_path)
    # The reference grid is the source's, moved one voxel along the (oblique) i axis.
    shifted_origin = np.asarray(source.origin) + source.direction[:, 0] * source.spacing[0]
    reference = Volume(np.zeros(SHAPE, np.uint8), source.spacing, tuple(shifted_origin), source.direction)
    moved = resample_to_grid(source, reference, Interpolation.NEAREST, default_value=-5, extrapolate=extrapolate)
    assert_same_geometry_exactly(moved.with_array(np.zeros(SHAPE, np.uint8)), reference)
    np.testing.assert_array_equal(moved.array[..., :-1], values[..., 1:])
    last = values[..., -1] if expected_last_column == "edge" else np.full(SHAPE[:2], expected_last_column)
    np.testing.assert_array_equal(moved.array[..., -1], last)


@pytest.mark.parametrize("spacing", [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0), (1.0, float("nan"), 1.0)])
def test_bad_spacing_is_refused(spacing):
    volume = Volume(np.zeros((2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="spacing must be three positive millimetre values"):
        resample_to_spacing(volume, spacing, Interpolation.LINEAR)


# ---------------------------------------------------------------- prepared cases


def ct_with_labels(tmp_path: Path, volume_writer) -> CaseSource:
    """HU -300 everywhere, label 2 on source slices k 0..5 and 0 elsewhere."""
    labels = np.zeros(SHAPE, np.uint8)
    labels[:6] = 2
    ct = volume_writer(np.full(SHAPE, -300, np.int16), tmp_path / "ct.nrrd")
    return CaseSource("ct", ct, volume_writer(labels, tmp_path / "ct_labels.nii.gz"))


def test_prepare_case_puts_image_and_binary_label_on_the_training_grid(tmp_path, volume_writer):
    case = ct_with_labels(tmp_path, volume_writer)
    prepared = prepare_case(case)
    source = read_volume(case.image)
    assert prepared.name == "ct"
    assert_same_geometry_exactly(prepared.source, source)
    np.testing.assert_array_equal(prepared.source.array, source.array)  # kept in HU
    assert prepared.grid.array is prepared.image
    assert prepared.grid.spacing == TARGET_SPACING_MM
    assert prepared.grid.origin == source.origin
    np.testing.assert_array_equal(prepared.grid.direction, source.direction)
    assert prepared.image.dtype == np.float32 and prepared.image.shape == GRID_SHAPE
    np.testing.assert_allclose(prepared.image, 0.5)  # -300 HU is the window's centre, edges included
    assert prepared.label.dtype == np.uint8 and prepared.label.shape == GRID_SHAPE
    # Coarse slice k' lies at source index 1.28 k': k' = 0..4 round to source slices 0..5 (label 2 -> 1).
    expected = np.zeros(GRID_SHAPE, np.uint8)
    expected[:5] = 1
    np.testing.assert_array_equal(prepared.label, expected)


@pytest.mark.parametrize(
    ("hu", "unit"), [(-2000, 0.0), (-1000, 0.0), (-650, 0.25), (-300, 0.5), (400, 1.0), (1500, 1.0)]
)
def test_ct_window_maps_hu_to_unit_range(tmp_path, volume_writer, hu, unit):
    assert (CT_WINDOW.lower, CT_WINDOW.upper) == (-1000.0, 400.0)
    ct = volume_writer(np.full(SHAPE, hu, np.int16), tmp_path / "ct.nii.gz")
    np.testing.assert_allclose(prepare_case(CaseSource("ct", ct, None)).image, unit, atol=1e-6)


def test_image_is_resampled_in_hu_before_windowing(tmp_path):
    # Slices of 1000, -1000 HU, ... along k, 1 mm apart; the coarse slice at 1.5 mm lies halfway between
    # 1000 and -1000 HU: 0 HU, windowed to 1000 / 1400. (Windowing first would give (1 + 0) / 2.)
    hu = np.zeros((4, 2, 2), np.int16)
    hu[0::2], hu[1::2] = 1000, -1000
    path = tmp_path / "stripes.nrrd"
    write_volume(Volume(hu, spacing=(1.0, 1.0, 1.0)), path)
    prepared = prepare_case(CaseSource("stripes", path, None), spacing=(1.0, 1.0, 1.5))
    assert prepared.image.shape == (3, 2, 2)
    np.testing.assert_allclose(prepared.image[1], 1000 / 1400, atol=1e-6)


def test_prepare_cases_keeps_order_and_unlabelled_cases(tmp_path, volume_writer):
    labelled = ct_with_labels(tmp_path, volume_writer)
    unlabelled = CaseSource("other", volume_writer(np.zeros(SHAPE, np.int16), tmp_path / "other.mha"), None)
    prepared = prepare_cases([unlabelled, labelled], spacing=(1.0, 1.0, 5.0))
    assert [p.name for p in prepared] == ["other", "ct"]
    assert prepared[0].label is None and prepared[1].label is not None
    assert prepared[1].grid.spacing == (1.0, 1.0, 5.0)


def test_two_dimensional_file_is_refused(tmp_path):
    path = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((20, 24), np.int16)), str(path))
    with pytest.raises(CovidalError, match=r"flat\.nii\.gz is 2D; expected a 3D volume"):
        prepare_case(CaseSource("flat", path, None))


@pytest.mark.parametrize(
    ("shape", "spacing", "message"),
    [
        (SHAPE, (0.7, 0.8, 3.0), r"spacing \(0\.7, 0\.8\d*, 3\.0\) vs"),
        ((12, 20, 24), SPACING, r"size \(i, j, k\) \(24, 20, 12\)"),
    ],
)
def test_label_on_another_grid_is_refused(tmp_path, volume_writer, shape, spacing, message):
    case = ct_with_labels(tmp_path, volume_writer)
    label = read_volume(volume_writer(np.zeros(shape, np.uint8), tmp_path / "bad.nrrd"))
    write_volume(Volume(label.array, spacing, label.origin, label.direction), tmp_path / "bad.nrrd")
    with pytest.raises(CovidalError, match=rf"label volume .*bad\.nrrd does not match its image: {message}"):
        prepare_case(CaseSource("ct", case.image, tmp_path / "bad.nrrd"))
