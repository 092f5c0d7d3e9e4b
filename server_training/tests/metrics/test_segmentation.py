import math

import numpy as np
import pytest

from covidal.metrics.segmentation import (
    ConfusionCounts,
    SegmentationMetric,
    compute_dice,
    compute_iou,
    compute_ppv,
    compute_sensitivity,
    compute_specificity,
    confusion_counts,
)

NAN = float("nan")

# (prediction, reference, expected counts, expected {dice, iou, ppv, sensitivity, specificity})
CASES = [
    pytest.param(
        [[1, 1, 0], [0, 0, 0]],
        [[1, 0, 0], [1, 0, 0]],
        ConfusionCounts(tp=1, fp=1, fn=1, tn=3),
        {"dice": 0.5, "iou": 1 / 3, "ppv": 0.5, "sensitivity": 0.5, "specificity": 0.75},
        id="one-of-each",
    ),
    pytest.param(
        [[0, 0], [0, 0]],
        [[0, 0], [0, 0]],
        ConfusionCounts(tn=4),
        {"dice": 1.0, "iou": 1.0, "ppv": NAN, "sensitivity": NAN, "specificity": 1.0},
        id="both-empty",
    ),
    pytest.param(
        [[1, 1], [1, 1]],
        [[1, 1], [1, 1]],
        ConfusionCounts(tp=4),
        {"dice": 1.0, "iou": 1.0, "ppv": 1.0, "sensitivity": 1.0, "specificity": NAN},
        id="both-full",
    ),
    pytest.param(
        [[1, 1, 1]],
        [[0, 0, 0]],
        ConfusionCounts(fp=3),
        {"dice": 0.0, "iou": 0.0, "ppv": 0.0, "sensitivity": NAN, "specificity": 0.0},
        id="all-false-positive",
    ),
    pytest.param(
        [[0, 0, 1, 1]],
        [[1, 1, 1, 0]],
        ConfusionCounts(tp=1, fp=1, fn=2),
        {"dice": 0.4, "iou": 0.25, "ppv": 0.5, "sensitivity": 1 / 3, "specificity": 0.0},
        id="no-true-negative",
    ),
    pytest.param(
        np.array([[255, 0], [0, 255]], dtype=np.uint8),
        np.array([[True, True], [False, False]]),
        ConfusionCounts(tp=1, fp=1, fn=1, tn=1),
        {"dice": 0.5, "iou": 1 / 3, "ppv": 0.5, "sensitivity": 0.5, "specificity": 0.5},
        id="uint8-255-vs-bool",
    ),
]

FUNCTIONS = {
    "dice": compute_dice,
    "iou": compute_iou,
    "ppv": compute_ppv,
    "sensitivity": compute_sensitivity,
    "specificity": compute_specificity,
}


def assert_scores_equal(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        if math.isnan(value):
            assert math.isnan(actual[name]), name
        else:
            assert actual[name] == pytest.approx(value), name


@pytest.mark.parametrize("prediction, reference, counts, scores", CASES)
def test_confusion_counts_and_ratios(prediction, reference, counts, scores):
    actual = confusion_counts(np.asarray(prediction), np.asarray(reference))
    assert actual == counts
    assert_scores_equal({name: function(actual) for name, function in FUNCTIONS.items()}, scores)


@pytest.mark.parametrize("prediction, reference, counts, scores", CASES)
def test_metric_on_one_slice_matches_functions(prediction, reference, counts, scores):
    metric = SegmentationMetric()
    metric.update(np.asarray(prediction), np.asarray(reference))
    assert metric.counts == counts
    assert_scores_equal(metric.aggregate(), scores)


def test_counts_add_fieldwise():
    total = ConfusionCounts(tp=1, fp=2, fn=3, tn=4) + ConfusionCounts(tp=10, fp=20, fn=30, tn=40)
    assert total == ConfusionCounts(tp=11, fp=22, fn=33, tn=44)


def test_counts_do_not_add_to_other_types():
    with pytest.raises(TypeError):
        ConfusionCounts(tp=1) + 1


@pytest.mark.parametrize("bad", [{"tp": -1}, {"fn": 1.5}, {"tn": True}])
def test_counts_reject_non_count_values(bad):
    with pytest.raises(ValueError, match="integer >= 0"):
        ConfusionCounts(**bad)


def test_micro_average_weighs_slices_by_pixel_count():
    # Slice a (2x2): TP 1, FN 1 -> Dice 2/3. Slice b (4x4): 4 predicted, 4 reference,
    # no overlap -> Dice 0. Micro: TP 1, FP 4, FN 5 -> 2 / (2 + 9) = 2/11, not the
    # per-slice mean 1/3.
    small_prediction = np.array([[1, 0], [0, 0]], dtype=bool)
    small_reference = np.array([[1, 1], [0, 0]], dtype=bool)
    large_prediction = np.zeros((4, 4), dtype=bool)
    large_prediction[0] = True
    large_reference = np.zeros((4, 4), dtype=bool)
    large_reference[3] = True

    metric = SegmentationMetric(per_slice=True)
    metric.update(small_prediction, small_reference, slice_id="a")
    metric.update(large_prediction, large_reference, slice_id="b")

    assert metric.counts == ConfusionCounts(tp=1, fp=4, fn=5, tn=10)
    assert metric.aggregate()["dice"] == pytest.approx(2 / 11)
    assert metric.per_slice_dice == pytest.approx({"a": 2 / 3, "b": 0.0})
    macro_dice = np.mean(list(metric.per_slice_dice.values()))
    assert macro_dice == pytest.approx(1 / 3)


def test_empty_slices_add_only_true_negatives_to_the_set():
    metric = SegmentationMetric()
    metric.update(np.array([[1, 0]]), np.array([[1, 1]]))
    before = metric.aggregate()
    metric.update(np.zeros((3, 3), dtype=np.uint8), np.zeros((3, 3), dtype=np.uint8))
    after = metric.aggregate()
    assert metric.counts == ConfusionCounts(tp=1, fn=1, tn=9)
    assert after["dice"] == before["dice"] == pytest.approx(2 / 3)
    assert after["specificity"] == 1.0 and math.isnan(before["specificity"])


def test_per_slice_ids_default_to_update_order():
    metric = SegmentationMetric(per_slice=True)
    metric.update(np.ones((2, 2), dtype=int), np.ones((2, 2), dtype=int))
    metric.update(np.zeros((2, 2), dtype=int), np.ones((2, 2), dtype=int))
    assert metric.per_slice_dice == {"0": 1.0, "1": 0.0}


def test_per_slice_off_keeps_nothing():
    metric = SegmentationMetric()
    metric.update(np.ones((2, 2), dtype=bool), np.ones((2, 2), dtype=bool), slice_id="x")
    assert metric.per_slice_dice == {}


def test_reset_forgets_everything():
    metric = SegmentationMetric(per_slice=True)
    metric.update(np.ones((2, 2), dtype=bool), np.zeros((2, 2), dtype=bool), slice_id="x")
    metric.reset()
    assert metric.counts == ConfusionCounts()
    assert metric.per_slice_dice == {}
    metric.update(np.ones((2, 2), dtype=bool), np.ones((2, 2), dtype=bool), slice_id="x")
    assert metric.aggregate()["dice"] == 1.0


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"prediction shape \(2, 3\) does not match reference shape \(3, 2\)"):
        confusion_counts(np.zeros((2, 3), dtype=bool), np.zeros((3, 2), dtype=bool))
    metric = SegmentationMetric()
    with pytest.raises(ValueError, match="does not match"):
        metric.update(np.zeros((2, 2), dtype=bool), np.zeros((2, 3), dtype=bool))
    assert metric.counts == ConfusionCounts()


def test_float_masks_are_rejected():
    with pytest.raises(ValueError, match="threshold probabilities"):
        confusion_counts(np.full((2, 2), 0.3), np.zeros((2, 2), dtype=bool))


@pytest.mark.parametrize("per_slice", ["yes", 1, None])
def test_bad_per_slice_option_is_rejected(per_slice):
    with pytest.raises(ValueError, match="per_slice must be True or False"):
        SegmentationMetric(per_slice=per_slice)


def test_duplicate_slice_id_is_rejected():
    metric = SegmentationMetric(per_slice=True)
    metric.update(np.ones((2, 2), dtype=bool), np.ones((2, 2), dtype=bool), slice_id="case1/3")
    with pytest.raises(ValueError, match="'case1/3' was already added"):
        metric.update(np.ones((2, 2), dtype=bool), np.ones((2, 2), dtype=bool), slice_id="case1/3")
    assert metric.counts == ConfusionCounts(tp=4)


def test_aggregate_without_slices_is_an_error():
    with pytest.raises(RuntimeError, match="no slices"):
        SegmentationMetric().aggregate()
