"""``covidal corrupt-labels``: the copies, the record, the summary line, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import SimpleITK as sitk


def write_labels(folder, volume_writer, count=4):
    """``count`` label volumes ``c1.nrrd``.. each with a lesion box."""
    folder.mkdir()
    for index in range(count):
        label = np.zeros((4, 40, 48), dtype=np.uint8)
        label[1:3, 5 + 5 * index : 10 + 5 * index, 10:20] = 1
        volume_writer(label, folder / f"c{index + 1}.nrrd")
    return folder


def test_corrupts_the_share_asked_for_and_says_so(cli, tmp_path, volume_writer):
    labels = write_labels(tmp_path / "labels", volume_writer)
    out = tmp_path / "noisy"
    result = cli("corrupt-labels", "--labels", labels, "--out", out, "--rate", "0.5", "--kind", "erase", "--seed", "1")
    assert result.code == 0, result.err
    record = json.loads((out / "corruption.json").read_text())
    erased = sorted(entry["name"] for entry in record["corrupted"])
    assert len(erased) == 2 and record["kind"] == "erase" and record["seed"] == 1
    for index in range(1, 5):
        written = sitk.GetArrayFromImage(sitk.ReadImage(str(out / f"c{index}.nrrd")))
        assert (not written.any()) == (f"c{index}" in erased)
    assert f"corrupted 2 of 4 label volumes (erase: 2); copies in {out}" in result.out


def test_default_kind_is_mixed(cli, tmp_path, volume_writer):
    labels = write_labels(tmp_path / "labels", volume_writer)
    result = cli("corrupt-labels", "--labels", labels, "--out", tmp_path / "noisy", "--rate", "1")
    assert result.code == 0, result.err
    assert json.loads((tmp_path / "noisy" / "corruption.json").read_text())["kind"] == "mixed"
    assert "corrupted 4 of 4 label volumes (" in result.out


def test_bad_options_are_one_line_errors(cli, tmp_path, volume_writer):
    labels = write_labels(tmp_path / "labels", volume_writer, count=1)
    base = ("corrupt-labels", "--labels", labels, "--out", tmp_path / "o")
    cli(*base).assert_user_error("required", "--rate")
    cli(*base, "--rate", "1.5").assert_user_error("rate", "[0, 1]", "1.5")
    cli(*base, "--rate", "half").assert_user_error("--rate", "number")
    cli(*base, "--rate", "0.5", "--kind", "blur").assert_user_error("--kind", "blur")
    cli(*base, "--rate", "1", "--kind", "swap").assert_user_error("swap", "at least 2")
    cli("corrupt-labels", "--labels", tmp_path / "nope", "--out", tmp_path / "o", "--rate", "0.5").assert_user_error(
        "nope", "does not exist"
    )
    cli("corrupt-labels", "--labels", labels, "--out", labels, "--rate", "0.5").assert_user_error("labels folder")
