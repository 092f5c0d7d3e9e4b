"""``covidal demo`` end to end at toy settings: the real CT from PyPI, both synthetic cases,
train -> evaluate -> predict through the CLI, and the outputs a user opens afterwards."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk

from covidal.sample_data import make_demo_case


def test_demo_runs_train_evaluate_predict_and_writes_a_prediction_on_the_ct_grid(cli, tmp_path, single_thread_torch):
    out = tmp_path / "demo"
    result = cli("demo", "--out", out, "--epochs", "1", "--size", "32", "--width", "4", "--device", "cpu")
    assert result.code == 0, result.err
    for command in ("$ covidal train", "$ covidal evaluate", "$ covidal predict"):
        assert command in result.out  # the user sees the commands to rerun

    metrics = json.loads((out / "test_metrics.json").read_text())
    assert 0.0 <= metrics["dice"] <= 1.0
    counts = metrics["counts"]
    test_ct = sitk.ReadImage(str(out / "data" / "test_ct.nrrd"))
    assert sum(counts.values()) == np.prod(test_ct.GetSize())  # every voxel of the held-out case scored once

    case = make_demo_case(seed=0)
    ct, prediction = sitk.ReadImage(str(case.ct)), sitk.ReadImage(str(out / "prediction.nrrd"))
    assert prediction.GetSize() == ct.GetSize()
    assert np.allclose(prediction.GetSpacing(), ct.GetSpacing())
    assert np.allclose(prediction.GetOrigin(), ct.GetOrigin())
    assert np.allclose(prediction.GetDirection(), ct.GetDirection())
    assert set(np.unique(sitk.GetArrayViewFromImage(prediction))) <= {0, 1}


def test_demo_crops_both_cases_to_the_same_grid_with_different_lesions(cli, tmp_path, single_thread_torch):
    out = tmp_path / "demo"
    assert cli("demo", "--out", out, "--epochs", "1", "--size", "32", "--width", "4", "--device", "cpu").code == 0
    data = out / "data"
    train_ct, test_ct = (sitk.ReadImage(str(data / f"{name}_ct.nrrd")) for name in ("train", "test"))
    assert train_ct.GetSize() == test_ct.GetSize() and train_ct.GetOrigin() == test_ct.GetOrigin()
    train_lesions, test_lesions = (sitk.GetArrayFromImage(sitk.ReadImage(str(data / f"{name}_lesions.nrrd")))
                                   for name in ("train", "test"))
    assert train_lesions.any() and test_lesions.any()
    assert not np.array_equal(train_lesions, test_lesions)

    # The crop is a sub-grid of the full CT: its origin is the full CT's voxel at the crop's corner.
    full = sitk.ReadImage(str(make_demo_case(seed=0).ct))
    corner = full.TransformPhysicalPointToIndex(train_ct.GetOrigin())
    assert np.allclose(full.TransformIndexToPhysicalPoint(corner), train_ct.GetOrigin())
