import math

import pytest
import torch
from torch import nn

from covidal.losses.base import IGNORE_INDEX, Batch
from covidal.losses.point import PointLoss, point_loss


def softplus(x: float) -> float:
    """log(1 + e^x): the CE of a 2-class pixel whose true-class logit is x below the other one."""
    return math.log1p(math.exp(x))


def make_logits(infection_margin: torch.Tensor) -> torch.Tensor:
    """Logits [B, 2, H, W] whose infection logit minus background logit is ``infection_margin`` [B, H, W]."""
    return torch.stack([torch.zeros_like(infection_margin), infection_margin], dim=1)


def test_balanced_sum_of_class_means_independent_of_pixel_counts():
    # One infection pixel with margin 2 (CE = log(1+e^-2)); 50 background pixels with margin 1 (CE = log(1+e^1)).
    margin = torch.zeros(1, 8, 8)
    labels = torch.full((1, 8, 8), IGNORE_INDEX)
    margin[0, 0, 0] = 2.0
    labels[0, 0, 0] = 1
    background = torch.zeros(8, 8, dtype=torch.bool)
    background.view(-1)[14:64] = True
    margin[0][background] = 1.0
    labels[0][background] = 0
    expected = softplus(-2.0) + softplus(1.0)
    assert point_loss(make_logits(margin), labels).item() == pytest.approx(expected, rel=1e-6)


def test_the_background_weight_scales_only_the_background_term():
    margin = torch.tensor([[[2.0, 1.0]]])  # one infection pixel (margin 2), one background pixel (margin 1)
    labels = torch.tensor([[[1, 0]]])
    for weight in (1.0, 4.0, 0.5):
        expected = softplus(-2.0) + weight * softplus(1.0)
        assert point_loss(make_logits(margin), labels, weight).item() == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="background_weight"):
        PointLoss(background_weight=0.0)


@pytest.mark.parametrize(
    ("infection_margins", "background_margins", "expected"),
    [
        ([0.0], [], math.log(2.0)),
        ([], [0.0, 0.0, 0.0], math.log(2.0)),
        ([3.0], [-3.0], 2 * softplus(-3.0)),
        ([1.0, -1.0], [], (softplus(-1.0) + softplus(1.0)) / 2),
    ],
)
def test_table_of_hand_computed_values(infection_margins, background_margins, expected):
    margin = torch.zeros(1, 4, 4)
    labels = torch.full((1, 4, 4), IGNORE_INDEX)
    flat_margin, flat_labels = margin.view(-1), labels.view(-1)
    for index, value in enumerate(infection_margins):
        flat_margin[index], flat_labels[index] = value, 1
    for index, value in enumerate(background_margins, start=8):
        flat_margin[index], flat_labels[index] = value, 0
    assert point_loss(make_logits(margin), labels).item() == pytest.approx(expected, rel=1e-6)


def test_class_means_are_pooled_over_the_batch_not_per_image():
    # Image 0: one infection pixel (CE c1). Image 1: three infection pixels (CE c2 each).
    margin = torch.zeros(2, 4, 4)
    labels = torch.full((2, 4, 4), IGNORE_INDEX)
    margin[0, 0, 0], labels[0, 0, 0] = 1.0, 1
    margin[1, 0, :3], labels[1, 0, :3] = -1.0, 1
    c1, c2 = softplus(-1.0), softplus(1.0)
    pooled = (c1 + 3 * c2) / 4
    assert point_loss(make_logits(margin), labels).item() == pytest.approx(pooled, rel=1e-6)
    assert pooled != pytest.approx((c1 + c2) / 2)


def test_ignored_pixels_neither_change_the_value_nor_get_gradient():
    labels = torch.full((1, 6, 6), IGNORE_INDEX)
    labels[0, 1, 1], labels[0, 4, 4] = 1, 0
    logits = torch.randn(1, 2, 6, 6, requires_grad=True)
    loss = point_loss(logits, labels)
    loss.backward()
    ignored = labels[0] == IGNORE_INDEX
    assert torch.all(logits.grad[0, :, ignored] == 0)
    assert torch.all(logits.grad[0, :, ~ignored] != 0)

    changed = logits.detach().clone()
    changed[0, :, ignored] = torch.randn(2, int(ignored.sum()))
    assert point_loss(changed, labels).item() == pytest.approx(loss.item(), rel=1e-6)


def test_no_labelled_pixel_gives_zero_connected_to_logits():
    logits = torch.randn(2, 2, 5, 5, requires_grad=True)
    loss = point_loss(logits, torch.full((2, 5, 5), IGNORE_INDEX))
    assert loss.item() == 0.0
    assert loss.grad_fn is not None
    loss.backward()
    assert torch.all(logits.grad == 0)


@pytest.mark.parametrize(
    ("logits_shape", "labels", "message"),
    [
        ((1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64), "logits must be"),
        ((1, 2, 4, 4), torch.zeros(1, 4, 5, dtype=torch.int64), "point_labels must be"),
        ((1, 2, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int32), "int64"),
        ((1, 2, 4, 4), torch.full((1, 4, 4), 2, dtype=torch.int64), "only -1"),
        ((1, 2, 4, 4), torch.full((1, 4, 4), -2, dtype=torch.int64), "only -1"),
    ],
)
def test_bad_inputs_raise(logits_shape, labels, message):
    with pytest.raises(ValueError, match=message):
        point_loss(torch.zeros(logits_shape), labels)


def test_point_loss_class_runs_the_model_and_reports_its_part():
    model = nn.Conv2d(1, 2, kernel_size=1)
    labels = torch.full((2, 8, 8), IGNORE_INDEX)
    labels[0, 2, 2], labels[1, 5, 5] = 1, 0
    batch = Batch(images=torch.randn(2, 1, 8, 8), point_labels=labels)
    result = PointLoss()(model, batch)
    expected = point_loss(model(batch.images), labels)
    assert result.total.item() == pytest.approx(expected.item())
    assert result.parts == {"point": pytest.approx(expected.item())}
    result.total.backward()
    assert model.weight.grad is not None and torch.any(model.weight.grad != 0)


@pytest.mark.parametrize(
    ("images", "labels", "masks", "message"),
    [
        (torch.zeros(1, 3, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64), None, "images must be"),
        (torch.zeros(1, 1, 4, 4), torch.zeros(2, 4, 4, dtype=torch.int64), None, "point_labels must be"),
        (torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4), None, "int64"),
        (torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4, dtype=torch.int64), torch.zeros(1, 4, 3), "masks must be"),
    ],
)
def test_batch_rejects_mismatched_tensors(images, labels, masks, message):
    with pytest.raises(ValueError, match=message):
        Batch(images=images, point_labels=labels, masks=masks)


def test_derived_labels_add_a_weighted_point_loss_of_their_own():
    margin = torch.zeros(1, 4, 4)
    margin[0, 0, 0] = 2.0
    clicks = torch.full((1, 4, 4), IGNORE_INDEX)
    clicks[0, 0, 0] = 1
    derived = torch.full((1, 4, 4), IGNORE_INDEX)
    derived[0, 1, 1] = 0  # margin 0: CE log 2
    batch = Batch(torch.zeros(1, 1, 4, 4), clicks, derived_labels=derived)
    logits = make_logits(margin)
    weighted = PointLoss(derived_weight=0.5).from_logits(logits, batch)
    assert weighted.parts == pytest.approx({"point": softplus(-2.0), "derived": math.log(2)})
    assert weighted.total.item() == pytest.approx(softplus(-2.0) + 0.5 * math.log(2))
    assert PointLoss().from_logits(logits, batch).total.item() == pytest.approx(softplus(-2.0))
    with pytest.raises(ValueError, match="derived_weight"):
        PointLoss(derived_weight=-1.0)
