"""Tests for covidal.models.slices.unet.UNet2D."""

import pytest
import torch
from monai.networks.nets import BasicUNet
from torch import nn

from covidal.models.slices.network import SegmentationNet
from covidal.models.slices.unet import UNet2D

DEFAULT_FEATURES = (32, 32, 64, 128, 256, 32)


@pytest.fixture(scope="module")
def unet() -> UNet2D:
    torch.manual_seed(0)
    return UNet2D()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_is_a_segmentation_net_with_32_feature_channels(unet):
    assert isinstance(unet, SegmentationNet)
    assert unet.feature_channels == 32
    assert unet.dropout == 0.5
    assert isinstance(unet.trunk.final_conv, nn.Identity)


@pytest.mark.parametrize(("height", "width"), [(64, 64), (32, 48)])
def test_output_and_feature_shapes(unet, height, width):
    images = torch.randn(2, 1, height, width)
    unet.eval()
    with torch.no_grad():
        assert unet.features(images).shape == (2, 32, height, width)
        assert unet(images).shape == (2, 2, height, width)


def test_num_classes_and_widths_are_configurable():
    net = UNet2D(features=(8, 8, 16, 16, 32, 8), num_classes=3, in_channels=2)
    with torch.no_grad():
        assert net(torch.randn(1, 2, 32, 32)).shape == (1, 3, 32, 32)
    assert net.feature_channels == 8


def test_parameter_count_is_basic_unet_with_its_final_conv_replaced_by_the_head(unet):
    reference = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=DEFAULT_FEATURES, dropout=0.0)
    final_conv = parameter_count(reference.final_conv)
    assert final_conv == 32 * 2 + 2  # 1x1 conv 32 -> 2, with bias
    head = 32 * 2 + 2
    expected = parameter_count(reference) - final_conv + head
    print(f"UNet2D default parameters: {expected}")
    assert parameter_count(unet) == expected


def test_parameter_count_with_three_classes():
    reference = BasicUNet(spatial_dims=2, in_channels=1, out_channels=2, features=DEFAULT_FEATURES, dropout=0.0)
    expected = parameter_count(reference) - parameter_count(reference.final_conv) + (32 * 3 + 3)
    assert parameter_count(UNet2D(num_classes=3)) == expected


def test_forward_is_head_of_features_in_eval(unet):
    images = torch.randn(1, 1, 32, 32)
    unet.eval()
    with torch.no_grad():
        torch.testing.assert_close(unet(images), unet.classifier(unet.features(images)))


def test_eval_is_deterministic_and_train_mode_head_varies(unet):
    images = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        unet.eval()
        torch.testing.assert_close(unet(images), unet(images))
        unet.train()
        # The trunk has no dropout: only the head is stochastic in train mode.
        torch.testing.assert_close(unet.features(images), unet.features(images))
        assert not torch.allclose(unet(images), unet(images))
    unet.eval()


def test_head_masks_reproduce_train_mode_samples_on_real_features(unet):
    images = torch.randn(2, 1, 32, 32)
    unet.eval()
    with torch.no_grad():
        features = unet.features(images)
        masks = unet.sample_channel_masks(4, 2, generator=torch.Generator().manual_seed(0))
        logits = unet.head_logits_with_masks(features, masks)
        for t in range(4):
            direct = unet.classifier(features * masks[t, :, :, None, None] / 0.5)
            torch.testing.assert_close(logits[t], direct, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("height", "width"), [(64, 40), (24, 32), (65, 64)])
def test_sizes_not_divisible_by_16_raise(unet, height, width):
    with pytest.raises(ValueError, match="divisible by 16"):
        unet(torch.zeros(1, 1, height, width))


def test_wrong_channel_count_raises(unet):
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        unet(torch.zeros(1, 3, 32, 32))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"dropout": 1.0}, "0 <= p < 1"), ({"dropout": -0.5}, "0 <= p < 1"), ({"features": (32, 32, 64)}, "six")],
)
def test_bad_constructor_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        UNet2D(**kwargs)
