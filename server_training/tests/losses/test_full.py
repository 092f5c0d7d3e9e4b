import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

from covidal.losses.base import IGNORE_INDEX, Batch
from covidal.losses.full import FullSupervisionLoss, edge_weights, structure_loss


def numpy_structure_loss(infection_logit: np.ndarray, mask: np.ndarray) -> float:
    """Inf-Net's structure loss for one image, written out in numpy.

    The 31x31 mean counts the zero padding (count_include_pad=True): every
    window sum is divided by 31 * 31 = 961.
    """
    padded = np.pad(mask, 15)
    local_mean = sliding_window_view(padded, (31, 31)).sum(axis=(-2, -1)) / 961.0
    weights = 1.0 + 5.0 * np.abs(local_mean - mask)
    probs = 1.0 / (1.0 + np.exp(-infection_logit))
    bce = -(mask * np.log(probs) + (1 - mask) * np.log(1 - probs))
    wbce = (weights * bce).sum() / weights.sum()
    intersection = (probs * mask * weights).sum()
    union = ((probs + mask) * weights).sum() - intersection
    wiou = 1.0 - (intersection + 1.0) / (union + 1.0)
    return float(wbce + wiou)


def logits_with_difference(infection_logit: np.ndarray) -> torch.Tensor:
    """[B, 2, H, W] logits whose infection-minus-background difference is ``infection_logit`` [B, H, W]."""
    z = torch.as_tensor(infection_logit, dtype=torch.float64)
    return torch.stack([-0.5 * z, 0.5 * z], dim=1)


def test_edge_weights_on_4x4_count_the_padding():
    # Every 31x31 window centred in a 4x4 image covers the whole image: mean = 3 / 961.
    mask = torch.zeros(1, 4, 4, dtype=torch.float64)
    mask[0, 1, 1:3] = 1.0
    mask[0, 2, 1] = 1.0
    weights = edge_weights(mask)[0]
    inside, outside = 1 + 5 * (1 - 3 / 961), 1 + 5 * (3 / 961)
    expected = torch.where(mask[0] == 1, torch.full_like(mask[0], inside), torch.full_like(mask[0], outside))
    assert torch.allclose(weights, expected, atol=1e-12)


def test_structure_loss_on_4x4_matches_numpy():
    mask = np.zeros((4, 4))
    mask[1, 1:3] = 1.0
    mask[2, 1] = 1.0
    infection_logit = np.linspace(-2.0, 2.0, 16).reshape(4, 4)
    expected = numpy_structure_loss(infection_logit, mask)
    actual = structure_loss(logits_with_difference(infection_logit[None]), torch.as_tensor(mask[None]))
    assert actual.item() == pytest.approx(expected, rel=1e-9)


def test_structure_loss_is_the_mean_over_images_and_matches_numpy_on_larger_masks():
    rng = np.random.default_rng(0)
    masks = np.zeros((2, 40, 36))
    masks[0, 5:20, 8:30] = 1.0
    masks[1, 25:38, 2:12] = 1.0
    infection_logits = rng.normal(size=(2, 40, 36))
    expected = np.mean([numpy_structure_loss(z, m) for z, m in zip(infection_logits, masks)])
    actual = structure_loss(logits_with_difference(infection_logits), torch.as_tensor(masks))
    assert actual.item() == pytest.approx(expected, rel=1e-9)


def test_perfect_prediction_gives_near_zero_loss():
    masks = torch.zeros(1, 16, 16, dtype=torch.float64)
    masks[0, 4:10, 3:12] = 1.0
    logits = logits_with_difference(40.0 * (2 * masks - 1))
    assert structure_loss(logits, masks).item() < 1e-10


def test_full_loss_runs_the_model_with_gradients():
    model = torch.nn.Conv2d(1, 2, kernel_size=3, padding=1)
    masks = torch.zeros(2, 12, 12)
    masks[:, 3:7, 3:7] = 1.0
    batch = Batch(images=torch.randn(2, 1, 12, 12), point_labels=torch.full((2, 12, 12), IGNORE_INDEX), masks=masks)
    loss = FullSupervisionLoss()
    assert loss.requires_masks
    result = loss(model, batch)
    assert set(result.parts) == {"structure"}
    assert torch.isfinite(result.total)
    result.total.backward()
    assert torch.any(model.weight.grad != 0)


def test_missing_masks_raise():
    batch = Batch(images=torch.zeros(1, 1, 4, 4), point_labels=torch.zeros(1, 4, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="masks is None"):
        FullSupervisionLoss()(torch.nn.Conv2d(1, 2, 1), batch)


@pytest.mark.parametrize(
    ("logits_shape", "masks_shape", "message"),
    [((1, 1, 4, 4), (1, 4, 4), "logits must be"), ((1, 2, 4, 4), (1, 4, 5), "masks must be")],
)
def test_bad_shapes_raise(logits_shape, masks_shape, message):
    with pytest.raises(ValueError, match=message):
        structure_loss(torch.zeros(logits_shape), torch.zeros(masks_shape))
