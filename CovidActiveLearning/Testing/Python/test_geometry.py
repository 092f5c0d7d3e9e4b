"""Tests of CovidActiveLearningLib/geometry.py on real volume nodes read from an oblique NRRD."""

import numpy as np
import pytest
import SimpleITK as sitk

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import (
    axes_rotation,
    box_center_ras,
    box_size_mm,
    check_backend_geometry,
    ijk_to_ras,
    ijk_to_ras_matrix,
    ras_to_ijk,
    ras_to_voxel,
    voxel_inside,
    voxel_spacing,
)
from CovidActiveLearningLib.regions import VoxelBox
from CovidActiveLearningLib.volumes import read_volume


@pytest.fixture
def ct_node(mrml, chest_files):
    return read_volume(mrml.scene, chest_files[0])


def test_ijk_to_ras_matches_simpleitk_lps_geometry(ct_node, chest_files):
    image = sitk.ReadImage(str(chest_files[0]))
    for voxel in [(0, 0, 0), (5, 7, 3), (55, 47, 5)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(voxel))
        np.testing.assert_allclose(ijk_to_ras(ct_node, voxel), lps * [-1, -1, 1], atol=1e-4)


@pytest.mark.parametrize("offset", [(0, 0, 0), (0.49, -0.49, 0.3), (-0.3, 0.2, -0.49)])
def test_ras_to_voxel_rounds_to_the_voxel_whose_cell_holds_the_point(ct_node, offset):
    voxel = (12, 30, 4)
    ras = ijk_to_ras(ct_node, np.add(voxel, offset))
    assert ras_to_voxel(ct_node, ras) == voxel
    np.testing.assert_allclose(ras_to_ijk(ct_node, ras), np.add(voxel, offset), atol=1e-9)


def test_voxel_inside_checks_every_axis(ct_node):
    assert voxel_inside(ct_node, (0, 0, 0)) and voxel_inside(ct_node, (55, 47, 5))
    for outside in [(-1, 0, 0), (56, 0, 0), (0, 48, 0), (0, 0, 6)]:
        assert not voxel_inside(ct_node, outside)


def test_box_center_and_size_follow_the_voxel_cells(ct_node):
    box = VoxelBox(k=2, i0=8, i1=16, j0=4, j1=10)
    np.testing.assert_allclose(box_center_ras(ct_node, box), ijk_to_ras(ct_node, (11.5, 6.5, 2)))
    np.testing.assert_allclose(box_size_mm(ct_node, box), [8 * 1.4, 6 * 1.2, 5.0], rtol=1e-6)
    np.testing.assert_allclose(voxel_spacing(ct_node), [1.4, 1.2, 5.0], rtol=1e-6)


def test_axes_rotation_is_a_proper_rotation_along_the_grid(ct_node):
    rotation = axes_rotation(ct_node)
    np.testing.assert_allclose(rotation.T @ rotation, np.eye(3), atol=1e-9)
    assert np.linalg.det(rotation) == pytest.approx(1.0)
    direction_i = ijk_to_ras_matrix(ct_node)[:3, 0] / 1.4
    np.testing.assert_allclose(rotation[:, 0], direction_i, atol=1e-6)


def test_check_backend_geometry_accepts_the_same_grid_and_refuses_another(ct_node):
    dims = (56, 48, 6)
    matrix = ijk_to_ras_matrix(ct_node)
    check_backend_geometry(ct_node, dims, matrix.tolist())
    with pytest.raises(UserFacingError, match="voxels"):
        check_backend_geometry(ct_node, (56, 48, 7), matrix.tolist())
    shifted = matrix.copy()
    shifted[0, 3] += 0.5
    with pytest.raises(UserFacingError, match="mm away"):
        check_backend_geometry(ct_node, dims, shifted.tolist())


def test_a_transformed_volume_is_refused(mrml, ct_node):
    transform = mrml.scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    ct_node.SetAndObserveTransformNodeID(transform.GetID())
    with pytest.raises(UserFacingError, match="harden the transform"):
        ijk_to_ras_matrix(ct_node)
