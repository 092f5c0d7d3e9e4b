"""Bad input gets one clear line on stderr and exit status 2: never a traceback, never a silently wrong result.

Each case breaks a fresh copy of the tiny synthetic data set in one way and runs ``covidal train``
on it through the real entry point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from PIL import Image

pytestmark = pytest.mark.usefixtures("single_thread_torch")

FAST = ("--loss", "point", "--epochs", "1", "--size", "32", "--device", "cpu", "--quiet")


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def write_uncompressed(path: Path) -> None:
    sitk.WriteImage(sitk.ReadImage(str(path)), str(path), False)


def empty_folder(folder: Path) -> None:
    for path in folder.iterdir():
        path.unlink()


def png_of_size(path: Path, shape=(30, 30)) -> None:
    Image.fromarray(np.zeros(shape, np.uint8)).save(path)


def random_bytes(path: Path) -> None:
    path.write_bytes(np.random.default_rng(0).bytes(500))


def slices_case(change=None, target=None, extra=()):
    """Four PNG slices in ``images/`` and ``masks/``; ``change(path)`` damages ``target`` (e.g. "masks/3.png")."""

    def build(make_slices, volume_writer, tmp_path):
        data = make_slices(4)
        if change is not None:
            change(data.images.parent / target)
        return ("--images", data.images, "--masks", data.masks, *extra)

    return build


def folders_case(images_name, masks_name, make_empty=False):
    """``--images tmp/<images_name> --masks tmp/<masks_name>``, created empty or left missing."""

    def build(make_slices, volume_writer, tmp_path):
        if make_empty:
            (tmp_path / images_name).mkdir()
            (tmp_path / masks_name).mkdir()
        return ("--images", tmp_path / images_name, "--masks", tmp_path / masks_name)

    return build


def volume_case(ct_array, label_array, label_direction=None, after=None):
    """One CT file (NRRD, oblique geometry) with its label volume; ``after(ct_path)`` may damage the CT file."""

    def build(make_slices, volume_writer, tmp_path):
        ct = volume_writer(ct_array, tmp_path / "ct.nrrd")
        labels = volume_writer(label_array, tmp_path / "labels.nrrd", label_direction)
        if after is not None:
            after(ct)
        return ("--images", ct, "--masks", labels)

    return build


def flat_volume_case(make_slices, volume_writer, tmp_path):
    path = tmp_path / "flat.nrrd"
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((40, 48), np.int16)), str(path))
    return ("--images", path, "--masks", path)


def case_without_label_volume(make_slices, volume_writer, tmp_path):
    """A folder of two CT cases and a folder holding the label volume of only the first."""
    cases, labels = tmp_path / "cases", tmp_path / "labels"
    cases.mkdir()
    labels.mkdir()
    for name in ("a", "b"):
        volume_writer(HU, cases / f"{name}.nrrd")
    volume_writer(LABELS, labels / "a.nrrd")
    return ("--images", cases, "--masks", labels)


def masks_and_points_missing(make_slices, volume_writer, tmp_path):
    return ("--images", make_slices(2).images)


HU = np.full((3, 40, 48), -800, np.int16)
LABELS = np.zeros((3, 40, 48), np.uint8)
WITH_NAN = HU.astype(np.float32)
WITH_NAN[1, 20, 20] = np.nan
WITH_INF = HU.astype(np.float32)
WITH_INF[2, 0, 0] = np.inf

CASES = {  # case: (builder of the data arguments, words the error must contain)
    "missing images folder": (folders_case("nowhere", "masks"), ["does not exist", "nowhere"]),
    "missing masks folder": (slices_case(shutil.rmtree, "masks"), ["does not exist", "masks"]),
    "empty images folder": (folders_case("images", "masks", make_empty=True), ["holds no"]),
    "empty masks folder": (slices_case(empty_folder, "masks"), ["holds no", "masks"]),
    "image without a mask": (slices_case(Path.unlink, "masks/3.png"), ["no match", "3"]),
    "mask without an image": (slices_case(Path.unlink, "images/2.png"), ["no match", "2"]),
    "mask of another size": (slices_case(png_of_size, "masks/2.png"), ["30x30", "48x40"]),
    "unreadable image": (slices_case(random_bytes, "images/2.png"), ["cannot read", "2.png"]),
    "truncated image": (slices_case(truncate, "images/3.png"), ["cannot read", "3.png"]),
    "truncated mask": (slices_case(truncate, "masks/4.png"), ["cannot read", "4.png"]),
    "empty image file": (slices_case(lambda path: path.write_bytes(b""), "images/1.png"), ["cannot read"]),
    "case without a label volume": (case_without_label_volume, ["no match", "b"]),
    "volume that is not 3D": (flat_volume_case, ["2D", "3D"]),
    "truncated volume": (
        volume_case(HU, LABELS, after=lambda ct: (write_uncompressed(ct), truncate(ct, 0.7))),
        ["cannot read", "ct.nrrd", "damaged, truncated"],
    ),
    "unreadable volume": (
        volume_case(HU, LABELS, after=random_bytes),
        ["cannot read", "ct.nrrd", "damaged, truncated"],
    ),
    "truncated compressed volume": (
        volume_case(HU, LABELS, after=lambda ct: truncate(ct, 0.9)),
        ["cannot read", "damaged, truncated"],
    ),
    "NaN in a volume": (volume_case(WITH_NAN, LABELS), ["NaN"]),
    "infinity in a volume": (volume_case(WITH_INF, LABELS), ["infinite"]),
    "label volume on another grid": (
        volume_case(HU, LABELS, label_direction=np.eye(3)),
        ["does not match", "direction"],
    ),
    "label volume of another size": (volume_case(HU, LABELS[:2]), ["does not match", "size"]),
    "epochs 0": (slices_case(extra=("--epochs", "0")), ["--epochs", "at least 1"]),
    "validate-every without steps": (slices_case(extra=("--validate-every", "2")), ["--validate-every", "--steps"]),
    "masks and points both missing": (masks_and_points_missing, ["--masks", "--points"]),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_training_input(cli, make_slices, volume_writer, tmp_path, case):
    build, words = CASES[case]
    argv = build(make_slices, volume_writer, tmp_path)
    run_dir = tmp_path / "run"
    cli("train", *argv, "--out", run_dir, *FAST).assert_user_error(*words)
    assert not (run_dir / "model.pt").exists()


def write_points(path: Path, points: list[dict]) -> Path:
    path.write_text(json.dumps({"format": "covidal.points", "version": 1, "points": points}))
    return path


@pytest.mark.parametrize(
    ("point", "words"),
    [
        ({"slice": "2", "row": 40, "col": 5, "label": 1}, ["outside", "row 40", "40x48"]),  # rows are 0..39
        ({"slice": "2", "row": 3, "col": 48, "label": 0}, ["outside", "col 48"]),
        ({"slice": "99", "row": 1, "col": 1, "label": 1}, ["'99'", "not in the data set"]),
        ({"slice": "2", "row": -1, "col": 1, "label": 1}, ["non-negative"]),
        ({"slice": "2", "row": 1, "col": 1, "label": 2}, ["label"]),
    ],
)
def test_bad_points_file(cli, make_slices, tmp_path, point, words):
    data = make_slices(3)
    points = write_points(tmp_path / "points.json", [{"slice": "1", "row": 1, "col": 1, "label": 0}, point])
    result = cli(
        "train", "--images", data.images, "--masks", data.masks, "--points", points, "--out", tmp_path / "run", *FAST
    )
    result.assert_user_error(*words)


def test_points_file_that_is_not_json(cli, make_slices, tmp_path):
    data = make_slices(2)
    (tmp_path / "points.json").write_text("{not json")
    result = cli(
        "train",
        "--images",
        data.images,
        "--masks",
        data.masks,
        "--points",
        tmp_path / "points.json",
        "--out",
        tmp_path / "run",
        *FAST,
    )
    result.assert_user_error("not valid JSON")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_device_cuda_without_gpu(cli, synthetic_slices, tiny_run, tmp_path, command):
    data = ("--images", synthetic_slices.images, "--masks", synthetic_slices.masks)
    argv = {
        "train": ("train", *data, "--out", tmp_path / "run", "--loss", "point", "--size", "32", "--quiet"),
        "evaluate": ("evaluate", "--model", tiny_run, *data, "--json", tmp_path / "m.json", "--quiet"),
        "predict": ("predict", "--model", tiny_run, "--input", synthetic_slices.images, "--out", tmp_path / "p"),
    }[command]
    cli(*argv, "--device", "cuda").assert_user_error("cuda", "--device cpu")
    assert list(tmp_path.iterdir()) == []


def test_no_traceback_reaches_the_terminal(make_slices, tmp_path):
    """A real process: a truncated image ends with one line on stderr and status 2."""
    data = make_slices(3)
    truncate(data.images / "2.png")
    command = [
        sys.executable,
        "-m",
        "covidal.cli.main",
        "train",
        "--images",
        str(data.images),
        "--masks",
        str(data.masks),
        "--out",
        str(tmp_path / "run"),
        *FAST,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("COVIDAL_DEBUG", None)
    finished = subprocess.run(command, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert finished.returncode == 2
    assert finished.stdout == ""
    assert "Traceback" not in finished.stderr
    assert finished.stderr.startswith("covidal: error: cannot read image") and finished.stderr.count("\n") == 1
    assert "2.png" in finished.stderr
