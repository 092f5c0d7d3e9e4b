"""The 3D commands end to end on real files: train-3d -> pseudo-label -> noisy-teacher -> evaluate-3d."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

pytestmark = pytest.mark.usefixtures("single_thread_torch")


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, volume_set, tiny_3d_options):
    from covidal.cli.main import main

    run = tmp_path_factory.mktemp("teacher")
    # One thread, like the tests (single_thread_torch), so a rerun in a test reproduces these weights exactly.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert (
            main(
                [
                    "train-3d",
                    "--images",
                    str(volume_set.images),
                    "--labels",
                    str(volume_set.labels),
                    "--out",
                    str(run),
                    *tiny_3d_options,
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    return run


def test_pseudo_labels_keep_each_input_geometry(cli, tmp_path, teacher, volume_set):
    result = cli(
        "pseudo-label",
        "--model",
        teacher,
        "--images",
        volume_set.images,
        "--out",
        tmp_path,
        "--device",
        "cpu",
        "--probabilities",
    )
    assert result.code == 0, result.err
    for name in volume_set.names:
        source = sitk.ReadImage(str(volume_set.images / f"{name}.nrrd"))
        for written in (tmp_path / f"{name}.nrrd", tmp_path / f"{name}_probability.nrrd"):
            image = sitk.ReadImage(str(written))
            assert image.GetSize() == source.GetSize()
            assert np.allclose(image.GetSpacing(), source.GetSpacing())
            assert np.allclose(image.GetOrigin(), source.GetOrigin())
            assert np.allclose(image.GetDirection(), source.GetDirection())
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"{name}.nrrd")))
        assert set(np.unique(labels)) <= {0, 1}
        assert f"{name}:" in result.out


@pytest.mark.parametrize("mode", ["semi", "rgsm-al"])
def test_student_then_evaluation_reports_dice_and_hd95_per_volume(
    cli, tmp_path, teacher, volume_set, mode, tiny_3d_options
):
    pseudo = tmp_path / "pseudo"
    assert (
        cli("pseudo-label", "--model", teacher, "--images", volume_set.images, "--out", pseudo, "--device", "cpu").code
        == 0
    )
    student = tmp_path / "student"
    result = cli(
        "noisy-teacher",
        "--expert-images",
        volume_set.images,
        "--expert-labels",
        volume_set.labels,
        "--pseudo-images",
        volume_set.images,
        "--pseudo-labels",
        pseudo,
        "--mode",
        mode,
        "--lambda",
        "0.3",
        "--out",
        student,
        *tiny_3d_options,
    )
    assert result.code == 0, result.err
    config = json.loads((student / "config.json").read_text())["config"]
    assert config["mode"] == mode and config["lam"] == 0.3
    report_path = tmp_path / "eval.json"
    result = cli(
        "evaluate-3d",
        "--model",
        student,
        "--images",
        volume_set.images,
        "--labels",
        volume_set.labels,
        "--json",
        report_path,
        "--device",
        "cpu",
    )
    assert result.code == 0, result.err
    report = json.loads(report_path.read_text())
    assert set(report["volumes"]) == set(volume_set.names)
    dice = [v["dice"] for v in report["volumes"].values()]
    assert report["dice"] == pytest.approx(sum(dice) / len(dice))
    assert all(0.0 <= d <= 1.0 for d in dice)
    defined = [v["hd95_mm"] for v in report["volumes"].values() if v["hd95_mm"] is not None]
    assert report["hd95_undefined"] == len(dice) - len(defined)
    if defined:
        assert report["hd95_mm"] == pytest.approx(sum(defined) / len(defined))
    else:
        assert report["hd95_mm"] is None
    assert all(math.isfinite(v["reference_ml"]) and v["reference_ml"] > 0 for v in report["volumes"].values())


def test_supervised_student_equals_the_teacher_command(cli, tmp_path, teacher, volume_set, tiny_3d_options):
    """``noisy-teacher --mode supervised`` and ``train-3d`` are the same training."""
    result = cli(
        "noisy-teacher",
        "--expert-images",
        volume_set.images,
        "--expert-labels",
        volume_set.labels,
        "--mode",
        "supervised",
        "--out",
        tmp_path,
        *tiny_3d_options,
    )
    assert result.code == 0, result.err
    from covidal.noisyteacher.run import load_model

    ours, theirs = load_model(tmp_path).model.state_dict(), load_model(teacher).model.state_dict()
    assert all(bool((ours[key] == theirs[key]).all()) for key in ours)


def test_bad_inputs_give_one_line_errors(cli, tmp_path, volume_set, teacher, tiny_3d_options, volume_set_writer):
    empty = tmp_path / "empty"
    empty.mkdir()
    cli(
        "train-3d", "--images", empty, "--labels", volume_set.labels, "--out", tmp_path / "r", *tiny_3d_options
    ).assert_user_error(str(empty), "no volume")

    flat = tmp_path / "flat"
    flat.mkdir()
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((8, 8), np.int16)), str(flat / "case0.nii.gz"))
    cli(
        "pseudo-label", "--model", teacher, "--images", flat, "--out", tmp_path / "p", "--device", "cpu"
    ).assert_user_error("case0.nii.gz", "2D")

    shifted = volume_set_writer(tmp_path / "shifted", count=1)
    moved = sitk.ReadImage(str(shifted.labels / "case0.nrrd"))
    moved.SetOrigin((0.0, 0.0, 0.0))
    sitk.WriteImage(moved, str(shifted.labels / "case0.nrrd"))
    cli(
        "evaluate-3d",
        "--model",
        teacher,
        "--images",
        shifted.images,
        "--labels",
        shifted.labels,
        "--json",
        tmp_path / "e.json",
        "--device",
        "cpu",
    ).assert_user_error("case0", "origin")

    cli(
        "noisy-teacher",
        "--expert-images",
        volume_set.images,
        "--expert-labels",
        volume_set.labels,
        "--mode",
        "rgs",
        "--out",
        tmp_path / "s",
        *tiny_3d_options,
    ).assert_user_error("--pseudo-images")
    cli(
        "noisy-teacher",
        "--expert-images",
        volume_set.images,
        "--expert-labels",
        volume_set.labels,
        "--mode",
        "rgs",
        "--lambda",
        "2",
        "--out",
        tmp_path / "s",
    ).assert_user_error("--lambda")
    cli(
        "train-3d",
        "--images",
        volume_set.images,
        "--labels",
        volume_set.labels,
        "--out",
        tmp_path / "r",
        "--patch",
        "8,8",
    ).assert_user_error("--patch")
    cli(
        "train-3d",
        "--images",
        volume_set.images,
        "--labels",
        volume_set.labels,
        "--out",
        tmp_path / "r",
        "--foreground-probability",
        "1.5",
    ).assert_user_error("probability")
    cli(
        "evaluate-3d",
        "--model",
        tmp_path / "nothing",
        "--images",
        volume_set.images,
        "--labels",
        volume_set.labels,
        "--json",
        tmp_path / "e.json",
        "--device",
        "cpu",
    ).assert_user_error("no trained 3D model")


def test_a_dicom_series_folder_is_a_case(cli, tmp_path, teacher, volume_writer):
    """Volumes may be DICOM series folders: here one written from a tiny oblique CT."""
    from covidal.data.io import read_volume

    series = tmp_path / "images" / "series1"
    series.mkdir(parents=True)
    hu = np.full((4, 16, 16), -850, np.int16)
    image = sitk.ReadImage(str(volume_writer(hu, tmp_path / "ct.nrrd", direction=np.eye(3))))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(image.GetDepth()):
        slice_ = image[:, :, k]
        for tag, value in (
            ("0008|0060", "CT"),
            ("0020|000d", "1.2.3"),
            ("0020|000e", "1.2.3.4"),
            ("0020|0013", str(k + 1)),
            ("0008|0018", f"1.2.3.4.{k + 1}"),
            ("0020|0032", "\\".join(str(v) for v in image.TransformIndexToPhysicalPoint((0, 0, k)))),
            ("0020|0037", "1\\0\\0\\0\\1\\0"),
        ):
            slice_.SetMetaData(tag, value)
        writer.SetFileName(str(series / f"{k:03d}.dcm"))
        writer.Execute(slice_)
    result = cli(
        "pseudo-label",
        "--model",
        teacher,
        "--images",
        tmp_path / "images",
        "--out",
        tmp_path / "out",
        "--device",
        "cpu",
    )
    assert result.code == 0, result.err
    written = sitk.ReadImage(str(tmp_path / "out" / "series1.nrrd"))
    assert written.GetSize() == read_volume(series).to_sitk().GetSize()


SHARED_DICOM = Path(__file__).resolve().parents[4] / ".." / "shared" / "data" / "dicom" / "tcia_chest_ct_48"


def test_real_dicom_series_is_pseudo_labelled_on_its_own_grid(cli, tmp_path, volume_set, tiny_3d_options):
    """The real 48-slice chest CT series of the shared data, pointed at as a folder of cases."""
    from covidal.data.io import read_volume

    if not SHARED_DICOM.is_dir():
        pytest.skip(f"shared data {SHARED_DICOM} is absent (it lives beside the checkout in ../shared/data)")
    # A coarse grid keeps the sliding window over a 512 x 512 x 48 series to a few hundred patches.
    coarse = [*tiny_3d_options[2:], "--spacing", "8,8,12"]
    teacher = tmp_path / "teacher"
    assert (
        cli("train-3d", "--images", volume_set.images, "--labels", volume_set.labels, "--out", teacher, *coarse).code
        == 0
    )
    images = tmp_path / "images"
    images.mkdir()
    (images / "tcia").symlink_to(SHARED_DICOM.resolve(), target_is_directory=True)
    result = cli("pseudo-label", "--model", teacher, "--images", images, "--out", tmp_path / "out", "--device", "cpu")
    assert result.code == 0, result.err
    source = read_volume(SHARED_DICOM)
    written = read_volume(tmp_path / "out" / "tcia.nrrd")
    assert written.shape_ijk == source.shape_ijk == (512, 512, 48)
    assert np.allclose(written.spacing, source.spacing) and np.allclose(written.origin, source.origin)
    assert np.allclose(written.direction, source.direction)
