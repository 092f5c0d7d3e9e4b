"""Tests for the shared dropout + 1x1 head of covidal.models.slices.network."""

import pytest
import torch
from torch import Tensor

from covidal.models.slices.network import SegmentationNet, check_image_batch


class IdentityTrunkNet(SegmentationNet):
    """A SegmentationNet whose trunk passes the images through, so features = images."""

    def features(self, images: Tensor) -> Tensor:
        return images


def make_net(feature_channels: int = 6, num_classes: int = 2, dropout: float = 0.5) -> IdentityTrunkNet:
    torch.manual_seed(0)
    return IdentityTrunkNet(feature_channels=feature_channels, num_classes=num_classes, dropout=dropout)


def test_segmentation_net_is_abstract():
    with pytest.raises(TypeError):
        SegmentationNet(feature_channels=4, num_classes=2, dropout=0.5)  # type: ignore[abstract]


@pytest.mark.parametrize(
    ("mask", "expected"),
    [
        # weights W = [[1, 2], [3, 4]], bias b = [10, 20], features x = [1, 1], p = 0.5 -> scale 2
        ([1.0, 1.0], [10 + 2 * (1 + 2), 20 + 2 * (3 + 4)]),
        ([1.0, 0.0], [10 + 2 * 1, 20 + 2 * 3]),
        ([0.0, 1.0], [10 + 2 * 2, 20 + 2 * 4]),
        ([0.0, 0.0], [10, 20]),
    ],
)
def test_head_logits_with_masks_hand_computed(mask, expected):
    net = make_net(feature_channels=2, dropout=0.5)
    with torch.no_grad():
        net.classifier.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]])[:, :, None, None])
        net.classifier.bias.copy_(torch.tensor([10.0, 20.0]))
    features = torch.ones(1, 2, 3, 5)
    logits = net.head_logits_with_masks(features, torch.tensor([[mask]]))
    assert logits.shape == (1, 1, 2, 3, 5)
    expected_map = torch.tensor(expected, dtype=torch.float32)[:, None, None].expand(2, 3, 5)
    torch.testing.assert_close(logits[0, 0], expected_map)


def test_head_logits_with_masks_equals_masked_classifier_per_sample():
    net = make_net(feature_channels=6, num_classes=3, dropout=0.3)
    features = torch.randn(4, 6, 8, 10)
    masks = net.sample_channel_masks(samples=5, batch=4, generator=torch.Generator().manual_seed(1))
    logits = net.head_logits_with_masks(features, masks)
    assert logits.shape == (5, 4, 3, 8, 10)
    for t in range(5):
        direct = net.classifier(features * masks[t, :, :, None, None] / (1 - 0.3))
        torch.testing.assert_close(logits[t], direct, atol=1e-5, rtol=1e-5)


def test_head_logits_with_masks_matches_train_mode_dropout2d():
    # Strictly positive features: a zero channel after dropout can only mean "dropped".
    net = make_net(feature_channels=8, dropout=0.5)
    features = torch.rand(3, 8, 4, 4) + 0.1
    net.head_dropout.train()
    torch.manual_seed(5)
    dropped = net.head_dropout(features)
    mask = (dropped[:, :, 0, 0] != 0).float()  # [B, F]
    assert 0 < mask.sum() < mask.numel()  # the seed drops some channels, keeps others
    torch.testing.assert_close(
        net.head_logits_with_masks(features, mask[None])[0], net.classifier(dropped), atol=1e-5, rtol=1e-5
    )


def test_zero_dropout_gives_the_deterministic_head():
    net = make_net(feature_channels=5, dropout=0.0)
    features = torch.randn(2, 5, 4, 4)
    masks = net.sample_channel_masks(samples=3, batch=2)
    assert torch.equal(masks, torch.ones(3, 2, 5))
    net.train()
    deterministic = net.classifier(features)
    torch.testing.assert_close(net.head(features), deterministic)
    torch.testing.assert_close(net.head_logits_with_masks(features, masks), deterministic.expand(3, -1, -1, -1, -1))


def test_sample_channel_masks_are_binary_reproducible_and_keep_one_minus_p():
    net = make_net(feature_channels=32, dropout=0.25)
    masks = net.sample_channel_masks(200, 4, generator=torch.Generator().manual_seed(3))
    again = net.sample_channel_masks(200, 4, generator=torch.Generator().manual_seed(3))
    assert masks.shape == (200, 4, 32)
    assert masks.dtype == net.classifier.weight.dtype
    assert set(masks.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(masks, again)
    # 25,600 Bernoulli(0.75) draws: standard error ~0.003.
    assert abs(masks.mean().item() - 0.75) < 0.02


def test_eval_head_is_deterministic_and_train_head_varies():
    net = make_net(feature_channels=16, dropout=0.5)
    features = torch.randn(2, 16, 4, 4)
    net.eval()
    torch.testing.assert_close(net(features), net(features))
    net.train()
    assert not torch.allclose(net(features), net(features))


@pytest.mark.parametrize("dropout", [1.0, -0.1, 1.5])
def test_bad_dropout_raises(dropout):
    with pytest.raises(ValueError, match="0 <= p < 1"):
        IdentityTrunkNet(feature_channels=4, num_classes=2, dropout=dropout)


def test_bad_channel_counts_raise():
    with pytest.raises(ValueError, match=">= 1"):
        IdentityTrunkNet(feature_channels=0, num_classes=2, dropout=0.5)


@pytest.mark.parametrize(
    ("features_shape", "masks_shape", "message"),
    [
        ((2, 6, 4, 4), (3, 2, 5), "channel_masks"),
        ((2, 6, 4, 4), (3, 1, 6), "channel_masks"),
        ((2, 6, 4, 4), (2, 6), "channel_masks"),
        ((2, 5, 4, 4), (3, 2, 5), "features"),
        ((6, 4, 4), (3, 1, 6), "features"),
    ],
)
def test_head_logits_with_masks_rejects_bad_shapes(features_shape, masks_shape, message):
    net = make_net(feature_channels=6)
    with pytest.raises(ValueError, match=message):
        net.head_logits_with_masks(torch.zeros(features_shape), torch.ones(masks_shape))


@pytest.mark.parametrize(("samples", "batch"), [(0, 1), (1, 0)])
def test_sample_channel_masks_rejects_non_positive_counts(samples, batch):
    with pytest.raises(ValueError, match=">= 1"):
        make_net().sample_channel_masks(samples, batch)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((1, 1, 32, 48), None),
        ((1, 2, 32, 32), r"\[B, 1, H, W\]"),
        ((1, 32, 32), r"\[B, 1, H, W\]"),
        ((1, 1, 32, 40), "divisible by 16"),
        ((1, 1, 24, 32), "divisible by 16"),
    ],
)
def test_check_image_batch(shape, message):
    images = torch.zeros(shape)
    if message is None:
        check_image_batch(images, 1, 16, "Net")
    else:
        with pytest.raises(ValueError, match=message):
            check_image_batch(images, 1, 16, "Net")
