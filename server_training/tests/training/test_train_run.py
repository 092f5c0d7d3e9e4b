"""The training loop: split, every loss end to end (tiny), run-folder contents, and bad input."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from covidal.data.points import PointLabel, derive_points_for_slices, load_points
from covidal.data.slices import SliceRecord, load_slices
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, LossName
from covidal.training.checkpoint import HISTORY_FILE, MODEL_FILE, load_run
from covidal.training.train_config import TrainConfig
from covidal.training.train_run import POINTS_FILE, split_train_val, train

pytestmark = pytest.mark.usefixtures("single_thread_torch")

TINY = TrainConfig(loss=LossConfig(LossName.POINT), steps=1, batch_size=4, image_size=32, device="cpu")


def blank_records(count: int) -> list[SliceRecord]:
    return [
        SliceRecord(str(n), np.zeros((4, 4), np.float32), np.zeros((4, 4), np.uint8), str(n), None)
        for n in range(count)
    ]


@pytest.fixture(scope="module")
def records(synthetic_slices) -> list[SliceRecord]:
    return load_slices(synthetic_slices.images, synthetic_slices.masks)


@pytest.mark.parametrize(
    ("count", "fraction", "train_size", "val_size"),
    [
        (10, 0.1, 9, 1),
        (10, 0.25, 8, 2),  # round(2.5) = 2
        (10, 0.35, 6, 4),  # round(3.5) = 4
        (3, 0.1, 2, 1),  # at least one validation slice
        (2, 0.9, 1, 1),  # at least one training slice
        (5, 0.0, 5, 0),  # nothing held out
        (1, 0.0, 1, 0),
    ],
)
def test_split_sizes(count, fraction, train_size, val_size):
    records = blank_records(count)
    train_part, val_part = split_train_val(records, fraction, seed=0)
    assert (len(train_part), len(val_part)) == (train_size, val_size)
    ids = [r.slice_id for r in train_part + val_part]
    assert sorted(ids, key=int) == [r.slice_id for r in records]  # disjoint and complete
    # each side keeps the input order
    assert [r.slice_id for r in train_part] == sorted((r.slice_id for r in train_part), key=int)
    assert [r.slice_id for r in val_part] == sorted((r.slice_id for r in val_part), key=int)


def test_split_is_deterministic_per_seed():
    records = blank_records(20)

    def val_ids(seed):
        return [r.slice_id for r in split_train_val(records, 0.3, seed)[1]]

    assert val_ids(0) == val_ids(0)
    assert val_ids(0) != val_ids(1)


@pytest.mark.parametrize("count", [0, 1])
def test_too_few_slices_to_hold_any_out(count):
    with pytest.raises(CovidalError, match="too few.*--val-fraction 0"):
        split_train_val(blank_records(count), 0.1, seed=0)


@pytest.mark.parametrize("loss", list(LossName))
def test_every_loss_trains_with_finite_losses(tmp_path, records, loss):
    config = replace(TINY, loss=LossConfig(loss))
    result = train(records[:4], config, tmp_path, progress=False, validation=records[4:])
    (record,) = result.history
    assert math.isfinite(record.loss) and record.loss >= 0
    assert record.loss_parts and all(math.isfinite(v) for v in record.loss_parts.values())
    assert 0 <= record.val["dice"] <= 1
    assert (tmp_path / MODEL_FILE).is_file()


def test_explicit_validation_set_is_used_as_given(tmp_path, records):
    train_part, val_part = records[:4], records[4:]
    config = replace(TINY, val_fraction=0.5)  # ignored when validation is given
    result = train(train_part, config, tmp_path, progress=False, validation=val_part)
    summary = json.loads((tmp_path / HISTORY_FILE).read_text())
    assert summary["train_slices"] == [r.slice_id for r in train_part]
    assert summary["val_slices"] == [r.slice_id for r in val_part]
    assert result.history[0].val["slices"] == len(val_part)


def test_run_folder_history_best_step_and_points(tmp_path, records):
    # 4 training slices in batches of 2: a pass is 2 steps, validated after steps 2, 4 and 5 (the last).
    config = replace(TINY, steps=5, batch_size=2, val_fraction=0.34, learning_rate=3e-3)
    result = train(records, config, tmp_path, progress=False)
    summary = json.loads((tmp_path / HISTORY_FILE).read_text())
    dices = [record["val"]["dice"] for record in summary["validations"]]
    assert [record["step"] for record in summary["validations"]] == [2, 4, 5] and summary["validate_every"] == 2
    assert all(math.isfinite(record["loss"]) for record in summary["validations"])
    best = 2 * (1 + dices.index(max(dices)))  # the first validation reaching the best Dice
    assert summary["best_step"] == result.best_step == min(best, 5) == load_run(tmp_path).step
    assert summary["best_val_dice"] == pytest.approx(max(dices))
    assert TrainConfig.from_dict(summary["config"]) == config
    # derived points: exactly the protocol's points of the training slices
    by_id = {r.slice_id: r for r in records}
    expected = derive_points_for_slices({i: by_id[i].mask for i in summary["train_slices"]}, config.seed)
    assert load_points(tmp_path / POINTS_FILE) == expected
    assert summary["points"]["infection"] == sum(p.label == 1 for p in expected)


def test_without_validation_every_check_is_saved(tmp_path, records):
    result = train(records[:2], replace(TINY, steps=3, validate_every=2, val_fraction=0.0), tmp_path, progress=False)
    assert result.best_step == 3 and result.best_val_dice is None
    assert [record.step for record in result.history] == [2, 3]
    assert all(record.val is None for record in result.history)
    assert load_run(tmp_path).step == 3


def test_the_saved_model_is_the_average_of_the_weights(tmp_path, records):
    """Decay 0 averages nothing (the saved model is the trained one); decay 0.9 saves a lagging average."""
    config = replace(TINY, steps=4, val_fraction=0.0, learning_rate=3e-3)
    saved = {}
    for decay in (None, 0.0, 0.9):
        train(records[:4], replace(config, ema_decay=decay), tmp_path / str(decay), progress=False)
        saved[decay] = load_run(tmp_path / str(decay)).model.state_dict()
    assert all(torch.equal(saved[0.0][key], value) for key, value in saved[None].items())
    assert not all(torch.equal(saved[0.9][key], value) for key, value in saved[None].items())
    assert load_run(tmp_path / "0.9").config.ema_decay == 0.9


def test_given_points_restricted_to_training_slices(tmp_path, records):
    points = [PointLabel(r.slice_id, 3, 4 + n, n % 2) for n, r in enumerate(records)]
    train(records[:3], replace(TINY, val_fraction=0.0), tmp_path, points=points, progress=False)
    assert load_points(tmp_path / POINTS_FILE) == points[:3]


def without_masks(records):
    return [replace(r, mask=None) for r in records]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("no slices", "no slices"),
        ("no masks, no points", "needs reference masks"),
        ("validation without masks", "validation needs reference masks"),
        ("full loss without masks", "'full' loss needs reference masks"),
        ("points on other slices", "no point labels fall on the training slices"),
    ],
)
def test_bad_input_is_a_covidal_error(tmp_path, records, case, message):
    config, validation, points, data = replace(TINY, val_fraction=0.0), None, None, records[:2]
    if case == "no slices":
        data = []
    elif case == "no masks, no points":
        data = without_masks(data)
    elif case == "validation without masks":
        validation = without_masks(records[2:3])
    elif case == "full loss without masks":
        config, data, points = replace(config, loss=LossConfig(LossName.FULL)), without_masks(data), []
    else:
        points = [PointLabel("not-a-slice", 1, 1, 1)]
    with pytest.raises(CovidalError, match=message):
        train(data, config, tmp_path / "run", points=points, progress=False, validation=validation)
    assert not (tmp_path / "run" / MODEL_FILE).exists()
