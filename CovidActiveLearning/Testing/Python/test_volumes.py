"""Tests of CovidActiveLearningLib/volumes.py: real files, the real DICOM series of ../shared."""

import numpy as np
import pytest
import SimpleITK as sitk
import slicer

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import ijk_to_ras_matrix
from CovidActiveLearningLib.volumes import (
    HashCache,
    VolumeSnapshot,
    check_annotatable,
    content_hash,
    read_dicom_series,
    read_volume,
    snapshot,
    write_nrrd,
)


def test_dicom_series_reads_with_simpleitk_geometry_and_hu(mrml, shared_dicom):
    node = read_dicom_series(mrml.scene, shared_dicom, "tcia")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(shared_dicom)))
    image = reader.Execute()
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), sitk.GetArrayFromImage(image))
    last = np.array(image.GetSize()) - 1
    np.testing.assert_allclose(
        (ijk_to_ras_matrix(node) @ np.append(last, 1))[:3],
        np.array(image.TransformIndexToPhysicalPoint(last.tolist())) * [-1, -1, 1],
        atol=1e-3,
    )
    check_annotatable(node)


def test_content_hash_is_the_same_after_a_nrrd_round_trip_and_changes_with_the_voxels(mrml, chest_files, tmp_path):
    node = read_volume(mrml.scene, chest_files[0])
    first = content_hash(snapshot(node))
    again = read_volume(mrml.scene, write_nrrd(snapshot(node), tmp_path / "copy.nrrd"))
    assert content_hash(snapshot(again)) == first
    slicer.util.arrayFromVolume(again)[0, 0, 0] += 1
    slicer.util.arrayFromVolumeModified(again)
    assert content_hash(snapshot(again)) != first


def test_the_hash_cache_holds_until_the_voxels_or_the_grid_change(mrml, chest_files):
    node = read_volume(mrml.scene, chest_files[0])
    cache = HashCache()
    cache.put(snapshot(node), "digest")
    assert cache.get(snapshot(node)) == "digest"
    assert cache.get(snapshot(read_volume(mrml.scene, chest_files[0]))) is None  # another node: its own entry
    slicer.util.arrayFromVolume(node)[1, 2, 3] += 5
    slicer.util.arrayFromVolumeModified(node)
    assert cache.get(snapshot(node)) is None
    cache.put(snapshot(node), "after the edit")
    moved = ijk_to_ras_matrix(node)
    moved[0, 3] += 1.0
    node.SetIJKToRASMatrix(slicer.util.vtkMatrixFromArray(moved))
    assert cache.get(snapshot(node)) is None


@pytest.mark.parametrize("dtype", [np.int16, np.uint8, np.float32, np.int32])
def test_written_nrrd_keeps_voxels_and_oblique_geometry(mrml, chest_files, tmp_path, dtype):
    """The NRRD writer (numpy and gzip, no MRML, so it runs off the GUI thread) against SimpleITK and Slicer's reader."""
    node = read_volume(mrml.scene, chest_files[0])
    voxels = slicer.util.arrayFromVolume(node).astype(dtype)
    slicer.util.updateVolumeFromArray(node, voxels)
    path = write_nrrd(snapshot(node), tmp_path / "out.nrrd")
    written, source = sitk.ReadImage(str(path)), sitk.ReadImage(str(chest_files[0]))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(written), voxels)
    assert sitk.GetArrayFromImage(written).dtype == dtype
    np.testing.assert_allclose(written.GetDirection(), source.GetDirection(), atol=1e-9)
    np.testing.assert_allclose(written.GetOrigin(), source.GetOrigin(), atol=1e-9)
    np.testing.assert_allclose(written.GetSpacing(), source.GetSpacing(), atol=1e-9)
    back = read_volume(mrml.scene, path)
    np.testing.assert_allclose(ijk_to_ras_matrix(back), ijk_to_ras_matrix(node), atol=1e-9)
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(back), voxels)


def test_a_voxel_type_nrrd_cannot_name_is_refused(tmp_path):
    with pytest.raises(UserFacingError, match="Cannot send voxels of type complex64"):
        write_nrrd(VolumeSnapshot(np.zeros((3, 4, 5), np.complex64), np.eye(4), ()), tmp_path / "c.nrrd")
    assert not (tmp_path / "c.nrrd").exists()


def test_nothing_selected_2d_images_and_labelmaps_are_refused(mrml, chest_files):
    with pytest.raises(UserFacingError, match="Select a CT volume"):
        check_annotatable(None)
    flat = slicer.util.addVolumeFromArray(np.zeros((1, 20, 20), np.int16), name="xray")
    with pytest.raises(UserFacingError, match="2D image"):
        check_annotatable(flat)
    labels = read_volume(mrml.scene, chest_files[1], labelmap=True)
    with pytest.raises(UserFacingError, match="not a scalar"):
        check_annotatable(labels)


def test_unreadable_file_is_a_clear_error(mrml, tmp_path):
    broken = tmp_path / "broken.nrrd"
    broken.write_bytes(b"NRRD0004\ntype: short\n")
    with pytest.raises(UserFacingError, match="Could not read"):
        read_volume(mrml.scene, broken)
    assert mrml.scene.GetNodesByClass("vtkMRMLScalarVolumeNode").GetNumberOfItems() == 0
