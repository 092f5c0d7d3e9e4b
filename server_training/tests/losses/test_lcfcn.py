import math

import numpy as np
import pytest
import torch
from torch import nn

from covidal.losses.base import IGNORE_INDEX, Batch
from covidal.losses.lcfcn import (
    LCFCNLoss,
    false_positive_loss,
    global_split_loss,
    image_level_loss,
    lcfcn_loss,
    split_loss,
)
from covidal.losses.point import point_loss


def logits_from_probs(infection_probs) -> torch.Tensor:
    """Logits [B, 2, H, W] whose softmax gives the infection probabilities [B, H, W]."""
    probs = torch.as_tensor(np.asarray(infection_probs), dtype=torch.float64)
    return torch.stack([torch.zeros_like(probs), torch.log(probs / (1 - probs))], dim=1)


def labels_with_points(shape, infection=(), background=()) -> torch.Tensor:
    """Point labels [B, H, W] with infection / background at the given (b, r, c)."""
    labels = torch.full(shape, IGNORE_INDEX)
    for index in infection:
        labels[index] = 1
    for index in background:
        labels[index] = 0
    return labels


def test_image_level_exact_value():
    probs = [
        [[0.1, 0.7], [0.2, 0.4]],  # has an infection point: -log(max S0) - log(max S1)
        [[0.1, 0.3], [0.2, 0.05]],  # background only: -log(max S0) - log(1 - max S1)
    ]
    labels = labels_with_points((2, 2, 2), infection=[(0, 1, 1)], background=[(1, 0, 0)])
    expected = (-math.log(0.9) - math.log(0.7) + -math.log(0.95) - math.log(1 - 0.3)) / 2
    assert image_level_loss(logits_from_probs(probs), labels).item() == pytest.approx(expected, rel=1e-9)


def test_image_level_treats_an_unlabelled_image_as_infection_free():
    probs = [[[0.1, 0.6], [0.2, 0.3]]]
    labels = labels_with_points((1, 2, 2))
    expected = -math.log(0.9) - math.log(1 - 0.6)
    assert image_level_loss(logits_from_probs(probs), labels).item() == pytest.approx(expected, rel=1e-9)


def blobs_image(size=(8, 8)) -> np.ndarray:
    """Infection probability 0.1 with two 2x2 blobs of probability 0.8 at rows 1-2 / cols 1-2 and 5-6."""
    probs = np.full(size, 0.1)
    probs[1:3, 1:3] = 0.8
    probs[1:3, 5:7] = 0.8
    return probs


def test_false_positive_is_zero_when_every_blob_holds_a_point():
    labels = labels_with_points((1, 8, 8), infection=[(0, 1, 1), (0, 2, 6)], background=[(0, 7, 7)])
    assert false_positive_loss(logits_from_probs([blobs_image()]), labels).item() == 0.0


def test_false_positive_supervises_point_free_blob_as_background():
    labels = labels_with_points((1, 8, 8), infection=[(0, 1, 1)])
    # Only the right blob (4 pixels of S0 = 0.2) is a false positive.
    value = false_positive_loss(logits_from_probs([blobs_image()]), labels).item()
    assert value == pytest.approx(-math.log(0.2), rel=1e-9)


def test_false_positive_blobs_are_eight_connected():
    probs = np.full((5, 5), 0.1)
    probs[1, 1] = probs[2, 2] = 0.9  # touching at a corner only: one blob
    labels = labels_with_points((1, 5, 5), infection=[(0, 1, 1)])
    assert false_positive_loss(logits_from_probs([probs]), labels).item() == 0.0


def test_false_positive_averages_over_images():
    labels = labels_with_points((2, 8, 8), infection=[(0, 1, 1), (1, 1, 1), (1, 1, 6)])
    value = false_positive_loss(logits_from_probs([blobs_image(), blobs_image()]), labels).item()
    assert value == pytest.approx(-math.log(0.2) / 2, rel=1e-9)


def two_peaks(bridge_prob: float) -> np.ndarray:
    """A 5x11 map with peaks at (2, 2) and (2, 8) joined through column 5 with ``bridge_prob``."""
    probs = np.full((5, 11), 0.1)
    probs[1:4, 1:10] = 0.7
    probs[1:4, 5] = bridge_prob
    probs[2, 2] = probs[2, 8] = 0.95
    return probs


def test_split_is_positive_when_two_points_share_a_blob():
    labels = labels_with_points((1, 5, 11), infection=[(0, 2, 2), (0, 2, 8)])
    value = split_loss(logits_from_probs([two_peaks(bridge_prob=0.6)]), labels).item()
    # The boundary runs through the valley (S0 = 0.4) and its neighbours (S0 = 0.3), not the peaks.
    assert -math.log(0.4) <= value <= -math.log(0.3)


def test_split_is_zero_when_each_blob_has_its_own_point():
    labels = labels_with_points((1, 5, 11), infection=[(0, 2, 2), (0, 2, 8)])
    assert split_loss(logits_from_probs([two_peaks(bridge_prob=0.1)]), labels).item() == 0.0


def test_split_is_zero_for_one_point_per_blob_even_if_the_point_spans_pixels():
    # One click labelled as a 2-pixel footprint is one point, not two.
    labels = labels_with_points((1, 5, 11), infection=[(0, 2, 2), (0, 2, 3)])
    assert split_loss(logits_from_probs([two_peaks(bridge_prob=0.6)]), labels).item() == 0.0


def test_split_weight_grows_with_points_in_the_blob():
    probs = np.full((5, 17), 0.1)
    probs[1:4, 1:16] = 0.7
    probs[1:4, 5] = probs[1:4, 11] = 0.6
    probs[2, 2] = probs[2, 8] = probs[2, 14] = 0.95
    labels = labels_with_points((1, 5, 17), infection=[(0, 2, 2), (0, 2, 8), (0, 2, 14)])
    value = split_loss(logits_from_probs([probs]), labels).item()
    # Weight n - 1 = 2 on a mean of -log S0 over the two valleys and their neighbours (S0 0.3 to 0.4).
    assert 2 * -math.log(0.4) <= value <= 2 * -math.log(0.3)


def test_global_split_needs_two_points_anywhere():
    logits = logits_from_probs([two_peaks(bridge_prob=0.1)])
    one_point = labels_with_points((1, 5, 11), infection=[(0, 2, 2)])
    two_points = labels_with_points((1, 5, 11), infection=[(0, 2, 2), (0, 2, 8)])
    assert global_split_loss(logits, one_point).item() == 0.0
    assert global_split_loss(logits, two_points).item() > 0.0


def test_lcfcn_total_is_the_sum_of_its_parts_and_gradient_flows():
    torch.manual_seed(0)
    logits = torch.randn(2, 2, 12, 12, requires_grad=True)
    labels = labels_with_points((2, 12, 12), infection=[(0, 3, 3), (0, 8, 8), (1, 5, 5)], background=[(1, 0, 0)])
    result = lcfcn_loss(logits, labels)
    assert set(result.parts) == {"image", "point", "false_positive", "split", "global_split"}
    assert result.total.item() == pytest.approx(sum(result.parts.values()), rel=1e-5)
    assert result.parts["point"] == pytest.approx(point_loss(logits, labels).item())
    result.total.backward()
    assert torch.isfinite(logits.grad).all()
    assert torch.any(logits.grad != 0)


def test_lcfcn_loss_class_runs_the_model():
    model = nn.Conv2d(1, 2, kernel_size=3, padding=1)
    labels = labels_with_points((2, 10, 10), infection=[(0, 2, 2)], background=[(1, 9, 9)])
    result = LCFCNLoss()(model, Batch(images=torch.randn(2, 1, 10, 10), point_labels=labels))
    assert torch.isfinite(result.total)
    result.total.backward()
    assert torch.any(model.weight.grad != 0)


@pytest.mark.parametrize("term", [image_level_loss, false_positive_loss, split_loss, global_split_loss])
def test_bad_inputs_raise(term):
    with pytest.raises(ValueError, match="logits must be"):
        term(torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="point_labels must be"):
        term(torch.zeros(1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64))
