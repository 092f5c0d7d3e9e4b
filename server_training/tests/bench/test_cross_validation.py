"""Cross-validation of methods: fixed folds, micro metrics over every held-out slice, reuse of finished folds."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from covidal.bench.cross_validation import (
    EMA_DECAY,
    METHODS,
    FoldResult,
    cross_validate,
    fixed_folds,
    nested_threshold_row,
)
from covidal.data.slices import SliceRecord, load_slices
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig
from covidal.metrics.segmentation import ConfusionCounts, compute_dice
from covidal.models.slices.build import ModelConfig
from covidal.training.augment import Augment
from covidal.training.train_config import TrainConfig

pytestmark = pytest.mark.usefixtures("single_thread_torch")


def records(count: int) -> list[SliceRecord]:
    image = np.zeros((8, 8), dtype=np.float32)
    return [SliceRecord(str(i), image, image.astype(np.uint8), str(i), None) for i in range(count)]


def test_folds_are_contiguous_blocks_in_numeric_order_covering_every_slice_once():
    blocks = fixed_folds(list(reversed(records(12))), 5)
    assert [[r.slice_id for r in block] for block in blocks] == [
        ["0", "1"],
        ["2", "3", "4"],
        ["5", "6"],
        ["7", "8", "9"],
        ["10", "11"],
    ]
    with pytest.raises(CovidalError, match="folds"):
        fixed_folds(records(3), 4)
    with pytest.raises(CovidalError, match="folds"):
        fixed_folds(records(3), 1)


def test_rows_sum_the_counts_of_every_held_out_slice_and_finished_folds_are_reused(make_slices, tmp_path):
    slices = make_slices(6)
    data = load_slices(slices.images, slices.masks)
    config = TrainConfig(
        loss=LossConfig(), model=ModelConfig(width=8), batch_size=4, image_size=32, val_fraction=0.0, device="cpu"
    )
    lines: list[str] = []
    rows = cross_validate(data, ["point", "cb+tta"], config, tmp_path, folds=3, epochs=1, log=lines.append)
    assert [row["method"] for row in rows] == ["point", "cb+tta"]
    assert len(lines) == 6
    for row in rows:
        folds = [json.loads((tmp_path / row["method"] / f"fold{k}.json").read_text()) for k in range(3)]
        assert sum(fold["slices"] for fold in folds) == 6
        total = sum((ConfusionCounts(**fold["counts"]) for fold in folds), ConfusionCounts())
        assert total.tp + total.fp + total.fn + total.tn == 6 * 40 * 48  # every native pixel, once
        assert row["dice"] == pytest.approx(compute_dice(total))
        assert row["config"]["tta"] is (row["method"] == "cb+tta")
    again = cross_validate(data, ["point", "cb+tta"], config, tmp_path, folds=3, epochs=1, log=lines.append)
    assert again == rows  # read back, not trained again (training seconds would differ)


def test_folds_saved_before_an_option_existed_are_reused(make_slices, tmp_path):
    """A fold file written before ``ema_decay`` and ``augment`` were options reads as their defaults."""
    slices = make_slices(4)
    data = load_slices(slices.images, slices.masks)
    config = TrainConfig(model=ModelConfig(width=8), batch_size=4, image_size=32, val_fraction=0.0, device="cpu")
    rows = cross_validate(data, ["point"], config, tmp_path, folds=2, epochs=1, log=lambda line: None)
    for path in [*tmp_path.glob("point/fold*.json"), *tmp_path.glob("models/*/fold*/done.json")]:
        saved = json.loads(path.read_text())
        del saved["config"]["ema_decay"], saved["config"]["augment"]
        path.write_text(json.dumps(saved))
    again = cross_validate(data, ["point"], config, tmp_path, folds=2, epochs=1, log=lambda line: None)
    assert again == rows  # read back (the training seconds would differ)
    changed = replace(config, ema_decay=0.5)
    assert cross_validate(data, ["point"], changed, tmp_path, folds=2, epochs=1, log=lambda line: None) != rows


def test_unknown_methods_and_missing_masks_are_refused(tmp_path):
    with pytest.raises(CovidalError, match="unknown method"):
        cross_validate(records(4), ["magic"], TrainConfig(), tmp_path, folds=2, epochs=1)
    no_masks = [SliceRecord(r.slice_id, r.image, None, r.case_id, None) for r in records(4)]
    with pytest.raises(CovidalError, match="mask"):
        cross_validate(no_masks, ["point"], TrainConfig(), tmp_path, folds=2, epochs=1)


def test_every_method_is_a_valid_config():
    for name, method in METHODS.items():
        assert isinstance(method(TrainConfig()), TrainConfig), name


def test_methods_that_only_predict_differently_train_the_same_model():
    def trained(name):
        config = METHODS[name](TrainConfig())
        return replace(config, tta=False, lung_restriction=False, threshold=0.5)

    assert trained("cb+tta+threshold-0.7") == trained("cb+tta") == trained("cb-flip-rot")
    assert METHODS["cb+tta+threshold-0.7"](TrainConfig()).prediction.threshold == 0.7
    assert trained("cb+background-weight-4+tta") == trained("cb+background-weight-4") != trained("cb-flip-rot")
    assert METHODS["cb+background-weight-4"](TrainConfig()).loss.background_weight == 4.0
    assert trained("cb+ema+augment+tta+threshold-0.7") == trained("cb+ema+augment") != trained("cb-flip-rot")
    assert trained("cb+ema").ema_decay == EMA_DECAY and trained("cb+ema").augment is Augment.NONE
    assert trained("cb+augment").ema_decay is None and trained("cb+augment").augment is Augment.INTENSITY_SCALE
    both = trained("cb+background-weight-8+ema+augment")
    assert both.loss.background_weight == 8.0 and both.ema_decay == EMA_DECAY


def test_the_command_refuses_an_unknown_method_in_one_line(cli, synthetic_slices, tmp_path):
    result = cli(
        "bench-cv", "--images", synthetic_slices.images, "--masks", synthetic_slices.masks, "--out", tmp_path,
        "--methods", "magic",
    )  # fmt: skip
    result.assert_user_error("magic")


def test_the_nested_threshold_is_chosen_on_the_other_folds():
    """Two candidates over three folds: 0.5 is better summed over folds 1-2 (so fold 0 gets it), 0.8 over
    folds 0-2 and 0-1 (so folds 1 and 2 get it); each fold is then scored with its chosen candidate."""

    def fold(tp, fp, fn):
        return FoldResult(ConfusionCounts(tp=tp, fp=fp, fn=fn, tn=0), 1.0)

    results = {
        "cb+tta": [fold(10, 90, 0), fold(50, 0, 0), fold(50, 0, 0)],
        "cb+tta+threshold-0.8": [fold(10, 0, 0), fold(40, 0, 10), fold(45, 0, 5)],
    }
    row = nested_threshold_row("cb+tta", results, log=lambda line: None)
    assert row["method"] == "cb+tta+threshold-chosen-on-other-folds" and row["chosen_thresholds"] == [0.5, 0.8, 0.8]
    assert row["fold_dice"] == pytest.approx([20 / 110, 80 / 90, 90 / 95])
    assert row["dice"] == pytest.approx(2 * 95 / (2 * 95 + 90 + 15))
