"""Tests for covidal.losses.combo: agreement with MONAI DiceCELoss, hand values, weighting, bad inputs."""

import math

import pytest
import torch
from monai.losses import DiceCELoss

from covidal.losses.combo import ComboLoss, per_sample_combo_loss

SMOOTH = 1e-5


def random_batch(batch: int = 3, shape: tuple[int, int, int] = (4, 5, 6), seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = 3 * torch.randn(batch, 2, *shape, generator=generator)
    labels = (torch.rand(batch, *shape, generator=generator) > 0.7).long()
    return logits, labels


def test_mean_of_per_sample_losses_equals_monai_dice_ce():
    logits, labels = random_batch()
    monai = DiceCELoss(to_onehot_y=True, softmax=True)(logits, labels.unsqueeze(1))
    per_sample = per_sample_combo_loss(logits, labels)
    assert per_sample.shape == (3,)
    torch.testing.assert_close(per_sample.mean(), monai, rtol=0, atol=1e-6)
    torch.testing.assert_close(ComboLoss()(logits, labels), monai, rtol=0, atol=1e-6)


def test_each_sample_loss_equals_monai_on_that_sample_alone():
    logits, labels = random_batch(seed=1)
    monai = DiceCELoss(to_onehot_y=True, softmax=True)
    expected = torch.stack([monai(logits[i : i + 1], labels[i : i + 1, None]) for i in range(3)])
    torch.testing.assert_close(per_sample_combo_loss(logits, labels), expected, rtol=0, atol=1e-6)


def test_uniform_weights_give_the_batch_loss():
    logits, labels = random_batch(batch=4, seed=2)
    weights = torch.full((4,), 0.25)
    torch.testing.assert_close(ComboLoss()(logits, labels, weights), ComboLoss()(logits, labels), rtol=0, atol=1e-6)


def test_weights_give_the_weighted_sum_of_per_sample_losses():
    logits, labels = random_batch(batch=3, seed=3)
    per_sample = per_sample_combo_loss(logits, labels)
    weights = torch.tensor([0.0, 0.7, 0.3], dtype=torch.float64)  # other dtype: converted
    expected = 0.7 * per_sample[1] + 0.3 * per_sample[2]
    torch.testing.assert_close(ComboLoss()(logits, labels, weights), expected, rtol=0, atol=1e-6)


def dice(intersection: float, denominator: float) -> float:
    return 1 - (2 * intersection + SMOOTH) / (denominator + SMOOTH)


S2 = 1 / (1 + math.exp(-2.0))  # sigmoid(2)
S1 = 1 / (1 + math.exp(1.0))  # sigmoid(-1)


@pytest.mark.parametrize(
    ("logit_difference", "labels", "expected"),
    [
        # p = 0.5 everywhere, labels (0, 1): each channel overlaps 0.5 of a 1-voxel target.
        ((0.0, 0.0), (0, 1), dice(0.5, 2.0) + math.log(2)),
        # p = 0.5 everywhere, no foreground: background overlaps 1 of 2 voxels, foreground has no target.
        ((0.0, 0.0), (0, 0), (dice(1.0, 3.0) + dice(0.0, 1.0)) / 2 + math.log(2)),
        # p(fg) = sigmoid(z) = (s2, s1) for z = (2, -1); labels (fg, bg). CE = -log s2 - log(1 - s1), halved.
        (
            (2.0, -1.0),
            (1, 0),
            (dice(1 - S1, (1 - S2) + (1 - S1) + 1) + dice(S2, S2 + S1 + 1)) / 2
            + (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-1.0))) / 2,
        ),
    ],
)
def test_hand_values_on_two_voxels(logit_difference, labels, expected):
    # Background logit 0, foreground logit z: softmax gives p(fg) = sigmoid(z).
    logits = torch.zeros(1, 2, 1, 1, 2, dtype=torch.float64)
    logits[0, 1, 0, 0] = torch.tensor(logit_difference, dtype=torch.float64)
    labels = torch.tensor(labels).view(1, 1, 1, 2)
    assert per_sample_combo_loss(logits, labels).item() == pytest.approx(expected, abs=1e-12)


def test_half_precision_logits_are_scored_in_float32():
    logits, labels = random_batch(seed=4)
    loss = per_sample_combo_loss(logits.bfloat16(), labels)
    assert loss.dtype == torch.float32
    torch.testing.assert_close(loss, per_sample_combo_loss(logits.bfloat16().float(), labels))


def test_bool_labels_are_accepted():
    logits, labels = random_batch(seed=5)
    torch.testing.assert_close(per_sample_combo_loss(logits, labels.bool()), per_sample_combo_loss(logits, labels))


@pytest.mark.parametrize(
    ("logits_shape", "labels_shape", "label_dtype", "message"),
    [
        ((2, 2, 4, 4), (2, 4, 4), torch.long, r"logits must be \[B, 2, D, H, W\]"),
        ((2, 3, 4, 4, 4), (2, 4, 4, 4), torch.long, r"logits must be \[B, 2, D, H, W\]"),
        ((2, 2, 4, 4, 4), (2, 1, 4, 4, 4), torch.long, r"labels must be \[B, D, H, W\] = \[2, 4, 4, 4\]"),
        ((2, 2, 4, 4, 4), (3, 4, 4, 4), torch.long, r"labels must be \[B, D, H, W\]"),
        ((2, 2, 4, 4, 4), (2, 4, 4, 5), torch.long, r"labels must be \[B, D, H, W\]"),
        ((2, 2, 4, 4, 4), (2, 4, 4, 4), torch.float32, "labels must be integer"),
    ],
)
def test_bad_shapes_raise(logits_shape, labels_shape, label_dtype, message):
    with pytest.raises(ValueError, match=message):
        per_sample_combo_loss(torch.zeros(logits_shape), torch.zeros(labels_shape, dtype=label_dtype))


def test_integer_logits_raise():
    with pytest.raises(ValueError, match="logits must be floating point"):
        per_sample_combo_loss(torch.zeros(1, 2, 2, 2, 2, dtype=torch.long), torch.zeros(1, 2, 2, 2, dtype=torch.long))


def test_labels_other_than_zero_and_one_raise():
    logits, labels = random_batch()
    labels[0, 0, 0, 0] = 2
    with pytest.raises(ValueError, match=r"labels must be 0 or 1, got values \[2\]"):
        ComboLoss()(logits, labels)


@pytest.mark.parametrize("shape", [(2,), (3, 1), ()])
def test_weights_of_the_wrong_shape_raise(shape):
    logits, labels = random_batch()
    with pytest.raises(ValueError, match=r"weights must be \[B\] = \[3\]"):
        ComboLoss()(logits, labels, torch.ones(shape))
