"""Inference on native grids, and the metrics of a set, checked against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from covidal.data.intensity_lungs import intensity_lung_mask
from covidal.data.slices import SliceRecord
from covidal.training.checkpoint import load_run
from covidal.training.inference import evaluate, predict_probabilities, softmax_of
from covidal.training.train_config import PredictionOptions

pytestmark = pytest.mark.usefixtures("single_thread_torch")

CPU = torch.device("cpu")


class ConstantNet(nn.Module):
    """Predicts one class everywhere: logits ``[B, 2, S, S]`` favouring ``infection`` or background."""

    def __init__(self, infection: bool) -> None:
        super().__init__()
        self.logits = torch.tensor([0.0, 8.0] if infection else [8.0, 0.0])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        batch, _, height, width = images.shape
        return self.logits.view(1, 2, 1, 1).expand(batch, 2, height, width).clone()


def record(slice_id: str, shape: tuple[int, int], lesion: tuple[slice, slice] | None) -> SliceRecord:
    mask = np.zeros(shape, dtype=np.uint8)
    if lesion is not None:
        mask[lesion] = 1
    image = np.random.default_rng(len(slice_id)).random(shape, dtype=np.float32)
    return SliceRecord(slice_id, image, mask, slice_id, None)


# 40x48 with a 10x10 lesion (100 of 1920 pixels) and 30x20 without one (600 pixels): 2520 pixels.
TINY_SET = [record("a", (40, 48), (slice(5, 15), slice(10, 20))), record("b", (30, 20), None)]


def test_probabilities_come_back_on_each_native_grid(tiny_run):
    run = load_run(tiny_run)
    records = [record("a", (40, 48), None), record("b", (64, 30), None), record("c", (17, 90), None)]
    results = list(predict_probabilities(run.model, records, run.config.image_size, CPU, batch_size=2))
    assert [r.slice_id for r, _ in results] == ["a", "b", "c"]
    for rec, prob in results:
        assert prob.shape == rec.image.shape
        assert np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1


@pytest.mark.parametrize(
    ("infection", "expected"),
    [
        # all infection: TP 100, FP 1820 + 600, FN 0, TN 0
        (
            True,
            {
                "dice": 200 / 2620,
                "iou": 100 / 2520,
                "ppv": 100 / 2520,
                "sensitivity": 1.0,
                "specificity": 0.0,
                "counts": {"tp": 100, "fp": 2420, "fn": 0, "tn": 0},
                "mae": 0.5,
            },
        ),  # one predicted region per slice; references hold 1 and 0
        # all background: TP 0, FP 0, FN 100, TN 2420
        (
            False,
            {
                "dice": 0.0,
                "iou": 0.0,
                "ppv": math.nan,
                "sensitivity": 0.0,
                "specificity": 1.0,
                "counts": {"tp": 0, "fp": 0, "fn": 100, "tn": 2420},
                "mae": 0.5,
            },
        ),
    ],
)
def test_constant_predictions_give_hand_computed_metrics(infection, expected):
    result = evaluate(ConstantNet(infection), TINY_SET, image_size=32, device=CPU).to_dict()
    assert result["slices"] == 2
    assert result["counts"] == expected["counts"]
    assert sum(result["counts"].values()) == 40 * 48 + 30 * 20
    for key in ("dice", "iou", "ppv", "sensitivity", "specificity", "mae"):
        assert result[key] == pytest.approx(expected[key], nan_ok=True), key
    assert set(result["game"]) == {"0", "1", "2", "3"}
    assert result["game"]["0"] == pytest.approx(expected["mae"])


def test_evaluate_refuses_records_without_masks():
    records = [TINY_SET[0], SliceRecord("no-mask", np.zeros((8, 8), np.float32), None, "no-mask", None)]
    with pytest.raises(ValueError, match="no-mask"):
        evaluate(ConstantNet(True), records, image_size=32, device=CPU)


def test_predictions_do_not_depend_on_batching(tiny_run):
    """Eval mode (no dropout) and per-slice standardisation: a slice's output ignores its batch mates."""
    run = load_run(tiny_run)
    records = [record(str(n), (40, 48), (slice(n, n + 6), slice(3, 9))) for n in range(5)]
    one_by_one = [p for _, p in predict_probabilities(run.model, records, 32, CPU, batch_size=1)]
    together = [p for _, p in predict_probabilities(run.model, records, 32, CPU, batch_size=5)]
    for single, batched in zip(one_by_one, together):
        np.testing.assert_allclose(single, batched, atol=1e-5)


def test_tta_of_a_flip_and_rotation_equivariant_model_equals_the_model():
    torch.manual_seed(0)
    images = torch.randn(2, 1, 16, 16)
    pointwise = nn.Conv2d(1, 2, kernel_size=1)  # acts on each pixel alone: equivariant to every flip and turn
    with torch.no_grad():
        assert torch.allclose(
            softmax_of(pointwise, images, CPU, tta=True), softmax_of(pointwise, images, CPU), atol=1e-6
        )


def test_tta_averages_the_views_of_a_model_that_is_not_equivariant():
    torch.manual_seed(0)
    images = torch.randn(2, 1, 16, 16)
    shifted = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    with torch.no_grad():
        shifted.weight.zero_()
        shifted.weight[1, 0, 0, 0] = 3.0  # reads the upper-left neighbour: moved by every flip and turn
        plain, augmented = softmax_of(shifted, images, CPU), softmax_of(shifted, images, CPU, tta=True)
    assert (plain - augmented).abs().max() > 0.05
    assert torch.allclose(augmented.sum(dim=1), torch.ones(2, 16, 16), atol=1e-6)


def test_lung_restriction_zeroes_predictions_outside_the_lungs():
    rows, cols = np.indices((64, 64))
    lungs = (((rows - 32) / 24) ** 2 + ((cols - 18) / 10) ** 2 <= 1) | (
        ((rows - 32) / 24) ** 2 + ((cols - 46) / 10) ** 2 <= 1
    )
    image = np.where(lungs, 0.1, 0.6).astype(np.float32)
    slice_record = SliceRecord("chest", image, None, "chest", None)
    options = PredictionOptions(lung_restriction=True)
    ((_, restricted),) = predict_probabilities(ConstantNet(infection=True), [slice_record], 32, CPU, options=options)
    ((_, free),) = predict_probabilities(ConstantNet(infection=True), [slice_record], 32, CPU)
    outside = ~intensity_lung_mask(image)
    assert outside.any() and (restricted[outside] == 0).all()
    assert (restricted[lungs] > 0.99).all()
    assert (free > 0.99).all()
