"""``covidal evaluate``: the metrics JSON on slices and on a volume, and a bad model or bad data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.usefixtures("single_thread_torch")

RATIOS = ("dice", "iou", "ppv", "sensitivity", "specificity")


def evaluate_json(cli, model, images, masks, out, *extra) -> dict:
    result = cli(
        "evaluate",
        "--model",
        model,
        "--images",
        images,
        "--masks",
        masks,
        "--json",
        out,
        "--device",
        "cpu",
        "--quiet",
        *extra,
    )
    assert result.code == 0, result.err
    assert result.err == ""
    assert result.out.startswith("dice=") and str(out) in result.out
    return json.loads(out.read_text())


def check_report(report: dict, slices: int, pixels: int) -> None:
    assert set(report) >= {*RATIOS, "mae", "game", "counts", "slices", "settings"}
    assert report["slices"] == slices
    counts = report["counts"]
    assert sum(counts.values()) == pixels  # every native pixel counted once
    tp, fp, fn, tn = counts["tp"], counts["fp"], counts["fn"], counts["tn"]
    assert report["sensitivity"] == pytest.approx(tp / (tp + fn))
    assert report["specificity"] == pytest.approx(tn / (tn + fp))
    assert report["dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert report["iou"] == pytest.approx(tp / (tp + fp + fn))
    assert report["ppv"] == (None if tp + fp == 0 else pytest.approx(tp / (tp + fp)))  # NaN is written as null
    assert all(report[key] is None or 0 <= report[key] <= 1 for key in RATIOS)
    assert report["mae"] >= 0 and report["game"]["0"] == report["mae"]
    assert set(report["game"]) == {"0", "1", "2", "3"}
    assert report["settings"]["averaging"].startswith("micro")


def test_evaluate_slices(cli, tiny_run, synthetic_slices, tmp_path):
    report = evaluate_json(cli, tiny_run, synthetic_slices.images, synthetic_slices.masks, tmp_path / "m.json")
    check_report(report, slices=6, pixels=6 * 40 * 48)
    reference = sum(int(np.count_nonzero(np.array(Image.open(p)))) for p in synthetic_slices.masks.iterdir())
    assert report["counts"]["tp"] + report["counts"]["fn"] == reference  # the masks' infection pixels


def test_evaluate_volume_uses_the_trained_window_unless_overridden(cli, ct_run, synthetic_ct, tmp_path):
    report = evaluate_json(cli, ct_run, synthetic_ct.ct, synthetic_ct.labels, tmp_path / "m.json")
    check_report(report, slices=4, pixels=4 * 40 * 48)
    assert report["settings"]["window"] == {"level": -700.0, "width": 600.0}  # as trained, not the CLI default
    override = evaluate_json(
        cli,
        ct_run,
        synthetic_ct.ct,
        synthetic_ct.labels,
        tmp_path / "o.json",
        "--window-level",
        "-400",
        "--window-width",
        "900",
    )
    assert override["settings"]["window"] == {"level": -400.0, "width": 900.0}


def test_missing_model_folder(cli, synthetic_slices, tmp_path):
    result = cli(
        "evaluate",
        "--model",
        tmp_path / "no-run",
        "--images",
        synthetic_slices.images,
        "--masks",
        synthetic_slices.masks,
        "--json",
        tmp_path / "m.json",
        "--device",
        "cpu",
    )
    result.assert_user_error("no trained 2D model", "covidal train")
    assert not (tmp_path / "m.json").exists()


@pytest.mark.parametrize("seed", [0, 17, 62])  # torch.load fails with UnpicklingError, IndexError, KeyError
def test_corrupt_model_file(cli, synthetic_slices, tmp_path, seed):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "model.pt").write_bytes(np.random.default_rng(seed).bytes(4096))
    result = cli(
        "evaluate",
        "--model",
        tmp_path / "run",
        "--images",
        synthetic_slices.images,
        "--masks",
        synthetic_slices.masks,
        "--json",
        tmp_path / "m.json",
        "--device",
        "cpu",
    )
    result.assert_user_error("model.pt", "not a readable covidal model")


def test_foreign_model_file(cli, synthetic_slices, tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "model.pt")
    result = cli(
        "evaluate",
        "--model",
        tmp_path,
        "--images",
        synthetic_slices.images,
        "--masks",
        synthetic_slices.masks,
        "--json",
        tmp_path / "m.json",
        "--device",
        "cpu",
    )
    result.assert_user_error("not a covidal 2D model")


def test_masks_are_required(cli, tiny_run, synthetic_slices, tmp_path):
    cli(
        "evaluate", "--model", tiny_run, "--images", synthetic_slices.images, "--json", tmp_path / "m.json"
    ).assert_user_error("--masks", "required")


def test_image_without_a_mask(cli, tiny_run, make_slices, tmp_path):
    data = make_slices(3)
    (data.masks / "2.png").unlink()
    result = cli(
        "evaluate",
        "--model",
        tiny_run,
        "--images",
        data.images,
        "--masks",
        data.masks,
        "--json",
        tmp_path / "m.json",
        "--device",
        "cpu",
        "--quiet",
    )
    result.assert_user_error("no match", "2")
