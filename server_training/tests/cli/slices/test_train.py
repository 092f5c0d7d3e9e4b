"""``covidal train`` end to end on tiny synthetic slices and an oblique CT volume (CPU, 32x32, 1-2 passes)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from scipy import ndimage

from covidal.data.points import (
    PointLabel,
    derive_points_for_slices,
    load_points,
    save_points,
)
from covidal.data.slices import load_slices
from covidal.training.checkpoint import load_run
from covidal.training.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread_torch")

FAST = ("--epochs", "2", "--size", "32", "--batch-size", "4", "--device", "cpu", "--quiet")
METRICS = ("dice", "iou", "ppv", "sensitivity", "specificity")


def summary_of(run_dir) -> dict:
    return json.loads((run_dir / "train.json").read_text())


def test_train_on_slices_writes_a_complete_run(cli, synthetic_slices, tmp_path):
    run_dir = tmp_path / "run"
    result = cli(
        "train",
        "--images",
        synthetic_slices.images,
        "--masks",
        synthetic_slices.masks,
        "--loss",
        "cb-flip",
        "--consistency-weight",
        "0.5",
        "--dropout",
        "0.2",
        "--val-fraction",
        "0.34",
        "--lr",
        "3e-3",
        "--seed",
        "4",
        "--out",
        run_dir,
        *FAST,
    )
    assert result.code == 0, result.err
    assert result.err == "" and "best step" in result.out

    run = load_run(run_dir)
    summary = summary_of(run_dir)
    config = TrainConfig.from_dict(summary["config"])
    assert config == run.config
    assert (config.loss.name.value, config.loss.consistency_weight, config.model.dropout) == ("cb-flip", 0.5, 0.2)
    # --epochs 2: 4 training slices in batches of 4 are one step a pass, validated after each
    assert (config.steps, config.validate_every, config.image_size, config.seed, config.learning_rate) == (
        2,
        1,
        32,
        4,
        3e-3,
    )

    # 6 slices, round(6 * 0.34) = 2 held out; the split covers every slice once
    assert len(summary["val_slices"]) == 2
    assert sorted(summary["train_slices"] + summary["val_slices"], key=int) == list(synthetic_slices.stems)

    validations = summary["validations"]
    assert [v["step"] for v in validations] == [1, 2]
    for validation in validations:
        assert math.isfinite(validation["loss"]) and set(validation["loss_parts"]) >= {"consistency"}
        assert all(validation["val"][key] is None or 0 <= validation["val"][key] <= 1 for key in METRICS)
        assert validation["val"]["slices"] == 2
    dices = [v["val"]["dice"] for v in validations]
    assert summary["best_step"] == 1 + dices.index(max(dices)) == run.step
    assert summary["best_val_dice"] == max(dices) == run.val_dice


def test_derived_points_are_valid_and_inside_mask_components(cli, synthetic_slices, tmp_path):
    run_dir = tmp_path / "run"
    assert (
        cli(
            "train",
            "--images",
            synthetic_slices.images,
            "--masks",
            synthetic_slices.masks,
            "--loss",
            "point",
            "--val-fraction",
            "0.34",
            "--out",
            run_dir,
            *FAST,
        ).code
        == 0
    )
    points = load_points(run_dir / "points.json")  # a valid covidal.points file
    masks = {r.slice_id: r.mask for r in load_slices(synthetic_slices.images, synthetic_slices.masks)}
    train_slices = summary_of(run_dir)["train_slices"]
    assert {p.slice_id for p in points} == set(train_slices)
    for slice_id in train_slices:
        mask = masks[slice_id]
        components, count = ndimage.label(mask, structure=np.ones((3, 3)))
        on_slice = [p for p in points if p.slice_id == slice_id]
        infection = [p for p in on_slice if p.label == 1]
        # one infection point in each component, and background points on background
        assert sorted(components[p.row, p.col] for p in infection) == list(range(1, count + 1))
        assert all(mask[p.row, p.col] == 0 for p in on_slice if p.label == 0)
        assert len(on_slice) - len(infection) == max(count, 1)


def test_given_points_file_is_used_restricted_to_training_slices(cli, synthetic_slices, tmp_path):
    masks = {r.slice_id: r.mask for r in load_slices(synthetic_slices.images, synthetic_slices.masks)}
    # hand-placed points: not what the protocol would derive (a background click in a corner of every slice)
    given = [PointLabel(s, 0, 0, 0) for s in synthetic_slices.stems]
    given += [p for p in derive_points_for_slices(masks, seed=9) if p.label == 1]
    points_file = tmp_path / "given.json"
    save_points(points_file, given)
    run_dir = tmp_path / "run"
    assert (
        cli(
            "train",
            "--images",
            synthetic_slices.images,
            "--masks",
            synthetic_slices.masks,
            "--loss",
            "point",
            "--points",
            points_file,
            "--val-fraction",
            "0.34",
            "--out",
            run_dir,
            *FAST,
        ).code
        == 0
    )
    train_slices = set(summary_of(run_dir)["train_slices"])
    assert load_points(run_dir / "points.json") == [p for p in given if p.slice_id in train_slices]


def test_points_without_masks_and_without_validation(cli, synthetic_slices, tmp_path):
    points_file = tmp_path / "given.json"
    save_points(points_file, [PointLabel("2", 5, 5, 0), PointLabel("3", 20, 30, 1)])
    run_dir = tmp_path / "run"
    result = cli(
        "train",
        "--images",
        synthetic_slices.images,
        "--points",
        points_file,
        "--val-fraction",
        "0",
        "--loss",
        "point",
        "--out",
        run_dir,
        *FAST,
    )
    assert result.code == 0, result.err
    summary = summary_of(run_dir)
    assert (
        summary["val_slices"] == [] and summary["best_val_dice"] is None and summary["best_step"] == 4
    )  # 2 passes of 2 steps
    assert summary["points"] == {"infection": 1, "background": 1}


def test_train_on_an_oblique_ct_volume(cli, synthetic_ct, tmp_path):
    run_dir = tmp_path / "run"
    result = cli(
        "train",
        "--images",
        synthetic_ct.ct,
        "--masks",
        synthetic_ct.labels,
        "--loss",
        "point",
        "--val-fraction",
        "0.25",
        "--window-level",
        "-500",
        "--window-width",
        "1000",
        "--out",
        run_dir,
        *FAST,
    )
    assert result.code == 0, result.err
    summary = summary_of(run_dir)
    assert sorted(summary["train_slices"] + summary["val_slices"]) == [f"ct:{k}" for k in range(4)]
    assert len(summary["val_slices"]) == 1
    assert summary["config"]["window"] == {"level": -500.0, "width": 1000.0}
    assert all(p.slice_id.startswith("ct:") for p in load_points(run_dir / "points.json"))


def test_steps_and_validate_every_set_the_schedule(cli, synthetic_slices, tmp_path):
    run_dir = tmp_path / "run"
    result = cli(
        "train",
        "--images",
        synthetic_slices.images,
        "--masks",
        synthetic_slices.masks,
        "--loss",
        "point",
        "--steps",
        "5",
        "--validate-every",
        "2",
        "--val-fraction",
        "0.34",
        "--size",
        "32",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        run_dir,
    )
    assert result.code == 0, result.err
    summary = summary_of(run_dir)
    assert [v["step"] for v in summary["validations"]] == [2, 4, 5]
    assert (summary["config"]["steps"], summary["config"]["validate_every"]) == (5, 2)
    assert "of 5" in result.out


def test_point_supervision_options_reach_the_loss_and_the_saved_config(cli, synthetic_slices, tmp_path):
    run_dir = tmp_path / "run"
    result = cli(
        "train", "--images", synthetic_slices.images, "--masks", synthetic_slices.masks, "--out", run_dir,
        "--pseudo-masks", "--background-prior", "intensity", "--derived-weight", "0.25",
        "--self-training-weight", "0.5", "--self-training-threshold", "0.8", "--no-tta", "--lung-restriction",
        "--background-weight", "3", "--threshold", "0.6", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    config = load_run(run_dir).config
    assert (config.loss.background_weight, config.prediction.threshold) == (3.0, 0.6)
    assert config.loss.name.value == "cb-flip-rot"  # the default loss
    assert (config.pseudo_masks, config.background_prior.value, config.tta, config.lung_restriction) == (
        True,
        "intensity",
        False,
        True,
    )
    assert (config.loss.derived_weight, config.loss.self_training_weight, config.loss.self_training_threshold) == (
        0.25,
        0.5,
        0.8,
    )
    parts = summary_of(run_dir)["validations"][-1]["loss_parts"]
    assert {"original/derived", "transformed/derived", "self_training"} <= set(parts)


def test_the_default_run_predicts_with_tta_and_a_bad_threshold_is_one_line(cli, synthetic_slices, tmp_path):
    result = cli(
        "train", "--images", synthetic_slices.images, "--masks", synthetic_slices.masks, "--out", tmp_path / "run",
        *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    prediction = load_run(tmp_path / "run").config.prediction
    assert prediction.tta and prediction.threshold == 0.7  # cb-flip-rot's measured threshold
    assert load_run(tmp_path / "run").config.augment == "intensity+scale"  # as measured
    point = cli(
        "train", "--images", synthetic_slices.images, "--masks", synthetic_slices.masks, "--out", tmp_path / "point",
        "--loss", "point", *FAST,
    )  # fmt: skip
    assert point.code == 0, point.err
    assert load_run(tmp_path / "point").config.prediction.threshold == 0.5  # not measured: the argmax
    bad = cli(
        "train", "--images", synthetic_slices.images, "--masks", synthetic_slices.masks, "--out", tmp_path / "bad",
        "--self-training-threshold", "0.3", *FAST,
    )  # fmt: skip
    bad.assert_user_error("self_training_threshold")


def test_the_weight_average_and_augmentation_reach_the_saved_config(cli, synthetic_slices, tmp_path):
    result = cli(
        "train", "--images", synthetic_slices.images, "--masks", synthetic_slices.masks, "--out", tmp_path / "run",
        "--ema-decay", "0.9", "--augment", "intensity+scale", *FAST,
    )  # fmt: skip
    assert result.code == 0, result.err
    config = load_run(tmp_path / "run").config
    assert (config.ema_decay, config.augment.value) == (0.9, "intensity+scale")
    for bad, message in ((["--ema-decay", "1"], "ema-decay"), (["--augment", "elastic"], "augment")):
        refused = cli(
            "train", "--images", synthetic_slices.images, "--masks", synthetic_slices.masks, "--out", tmp_path / "bad",
            *bad, *FAST,
        )  # fmt: skip
        refused.assert_user_error(message)
