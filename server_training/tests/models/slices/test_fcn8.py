"""Tests for covidal.models.slices.fcn8: layer layout, shapes, and loading torchvision VGG16 weights."""

from pathlib import Path

import pytest
import torch
from torch import nn

from covidal.errors import CovidalError
from covidal.models.slices.fcn8 import (
    FCN8VGG16,
    linear_to_conv_weight,
    load_vgg16_imagenet_weights,
)
from covidal.models.slices.network import SegmentationNet

# torchvision vgg16().features: conv indices and their (in, out) channels; pools at 4, 9, 16, 23, 30.
VGG16_CONVS = {
    0: (3, 64), 2: (64, 64), 5: (64, 128), 7: (128, 128), 10: (128, 256), 12: (256, 256), 14: (256, 256),
    17: (256, 512), 19: (512, 512), 21: (512, 512), 24: (512, 512), 26: (512, 512), 28: (512, 512),
}  # fmt: skip
VGG16_POOLS = (4, 9, 16, 23, 30)
SMALL_FC = 64


@pytest.fixture(scope="module")
def small_fcn8() -> FCN8VGG16:
    torch.manual_seed(0)
    return FCN8VGG16(fc_channels=SMALL_FC)


def torchvision_features_state(seed: int) -> dict[str, torch.Tensor]:
    """A torchvision-format ``features.N.*`` VGG16 state dict with random values."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for index, (in_ch, out_ch) in VGG16_CONVS.items():
        state[f"features.{index}.weight"] = torch.randn(out_ch, in_ch, 3, 3, generator=generator)
        state[f"features.{index}.bias"] = torch.randn(out_ch, generator=generator)
    return state


@pytest.fixture(scope="module")
def features_state() -> dict[str, torch.Tensor]:
    return torchvision_features_state(seed=1)


def save(state: object, path: Path) -> Path:
    torch.save(state, path)
    return path


def test_vgg_layer_indices_match_torchvision(small_fcn8):
    vgg = small_fcn8.vgg
    assert len(vgg) == 31
    for index, module in enumerate(vgg):
        if index in VGG16_CONVS:
            assert isinstance(module, nn.Conv2d)
            assert (module.in_channels, module.out_channels) == VGG16_CONVS[index]
            assert module.kernel_size == (3, 3) and module.padding == (1, 1)
        elif index in VGG16_POOLS:
            assert isinstance(module, nn.MaxPool2d)
            assert module.kernel_size == 2 and module.stride == 2
        else:
            assert isinstance(module, nn.ReLU) and module.inplace
            assert isinstance(vgg[index - 1], nn.Conv2d)  # a ReLU follows every conv


def test_fc_and_score_layers(small_fcn8):
    assert (small_fcn8.fc6.in_channels, small_fcn8.fc6.out_channels) == (512, SMALL_FC)
    assert small_fcn8.fc6.kernel_size == (7, 7) and small_fcn8.fc6.padding == (3, 3)
    assert small_fcn8.fc7.kernel_size == (1, 1)
    assert small_fcn8.fc_dropout.p == 0.5
    score_layers = (small_fcn8.score_fr, small_fcn8.score_pool4, small_fcn8.score_pool3)
    score_inputs = [layer.in_channels for layer in score_layers]
    assert score_inputs == [SMALL_FC, 512, 256]
    assert isinstance(small_fcn8, SegmentationNet)
    assert small_fcn8.feature_channels == 64


@pytest.mark.parametrize(("height", "width"), [(64, 64), (64, 96)])
def test_output_and_feature_shapes(small_fcn8, height, width):
    images = torch.randn(2, 1, height, width)
    small_fcn8.eval()
    with torch.no_grad():
        features = small_fcn8.features(images)
        assert features.shape == (2, 64, height, width)
        assert features.min() >= 0  # the fused maps pass a ReLU
        assert small_fcn8(images).shape == (2, 2, height, width)


def test_eval_is_deterministic_and_train_mode_varies(small_fcn8):
    images = torch.randn(1, 1, 64, 64)
    with torch.no_grad():
        small_fcn8.eval()
        torch.testing.assert_close(small_fcn8(images), small_fcn8(images))
        small_fcn8.train()
        assert not torch.allclose(small_fcn8(images), small_fcn8(images))
    small_fcn8.eval()


@pytest.mark.parametrize(("height", "width"), [(48, 64), (64, 80), (16, 16)])
def test_sizes_not_divisible_by_32_raise(small_fcn8, height, width):
    with pytest.raises(ValueError, match="divisible by 32"):
        small_fcn8(torch.zeros(1, 1, height, width))


def test_three_channel_input_is_refused(small_fcn8):
    with pytest.raises(ValueError, match=r"\[B, 1, H, W\]"):
        small_fcn8(torch.zeros(1, 3, 64, 64))


@pytest.mark.parametrize(("kwargs", "message"), [({"fc_channels": 0}, "fc_channels"), ({"dropout": 1.0}, "0 <= p < 1")])
def test_bad_constructor_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FCN8VGG16(**kwargs)


def test_linear_to_conv_weight_gives_the_same_output_on_a_window():
    generator = torch.Generator().manual_seed(0)
    linear = torch.randn(5, 3 * 2 * 2, generator=generator)
    window = torch.randn(1, 3, 2, 2, generator=generator)
    conv = linear_to_conv_weight(linear, in_channels=3, kernel=2)
    assert conv.shape == (5, 3, 2, 2)
    by_conv = torch.nn.functional.conv2d(window, conv)[0, :, 0, 0]
    torch.testing.assert_close(by_conv, linear @ window.flatten())


@pytest.mark.parametrize("shape", [(5, 11), (5, 12, 1), (12,)])
def test_linear_to_conv_weight_rejects_wrong_shapes(shape):
    with pytest.raises(ValueError, match="linear weight"):
        linear_to_conv_weight(torch.zeros(shape), in_channels=3, kernel=2)


def test_load_maps_features_to_vgg_and_skips_fc_when_widths_differ(tmp_path, features_state):
    model = FCN8VGG16(fc_channels=SMALL_FC)
    fc6_before = model.fc6.weight.clone()
    # A classifier.0 that could never fit: ignored because fc_channels != 4096.
    path = save(
        {**features_state, "classifier.0.weight": torch.zeros(4, 8), "classifier.0.bias": torch.zeros(4)},
        tmp_path / "vgg16.pth",
    )
    load_vgg16_imagenet_weights(model, path)
    for index in VGG16_CONVS:
        assert torch.equal(model.vgg[index].weight, features_state[f"features.{index}.weight"])
        assert torch.equal(model.vgg[index].bias, features_state[f"features.{index}.bias"])
    assert torch.equal(model.fc6.weight, fc6_before)


def test_load_full_torchvision_layout_including_fc6_and_fc7(tmp_path, features_state):
    # The real sizes (fc6 is a 25088 -> 4096 Linear): about 1.5 GB of RAM for a few seconds.
    model = FCN8VGG16()
    generator = torch.Generator().manual_seed(2)
    classifier = {
        "classifier.0.weight": torch.randn(4096, 512 * 7 * 7, generator=generator),
        "classifier.0.bias": torch.randn(4096, generator=generator),
        "classifier.3.weight": torch.randn(4096, 4096, generator=generator),
        "classifier.3.bias": torch.randn(4096, generator=generator),
        "classifier.6.weight": torch.randn(1000, 4096, generator=generator),
        "classifier.6.bias": torch.randn(1000, generator=generator),
    }
    load_vgg16_imagenet_weights(model, save({**features_state, **classifier}, tmp_path / "vgg16.pth"))
    assert torch.equal(model.vgg[28].weight, features_state["features.28.weight"])
    assert torch.equal(model.fc6.weight.reshape(4096, -1), classifier["classifier.0.weight"])
    assert torch.equal(model.fc6.weight[7, 3, 2, 5], classifier["classifier.0.weight"][7, 3 * 49 + 2 * 7 + 5])
    assert torch.equal(model.fc6.bias, classifier["classifier.0.bias"])
    assert torch.equal(model.fc7.weight[:, :, 0, 0], classifier["classifier.3.weight"])
    assert torch.equal(model.fc7.bias, classifier["classifier.3.bias"])


def test_missing_file_raises(tmp_path, small_fcn8):
    with pytest.raises(CovidalError, match="not found"):
        load_vgg16_imagenet_weights(small_fcn8, tmp_path / "absent.pth")


def test_unreadable_file_raises(tmp_path, small_fcn8):
    path = tmp_path / "garbage.pth"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(CovidalError, match="cannot read"):
        load_vgg16_imagenet_weights(small_fcn8, path)


def test_file_without_a_state_dict_raises(tmp_path, small_fcn8):
    with pytest.raises(CovidalError, match="does not hold a state dict"):
        load_vgg16_imagenet_weights(small_fcn8, save(torch.zeros(3), tmp_path / "tensor.pth"))


def test_state_dict_without_vgg_keys_raises(tmp_path, small_fcn8):
    path = save({"encoder.0.weight": torch.zeros(64, 3, 3, 3)}, tmp_path / "other.pth")
    with pytest.raises(CovidalError, match="none of the VGG16"):
        load_vgg16_imagenet_weights(small_fcn8, path)


def test_incomplete_state_dict_raises_and_leaves_the_model_unchanged(tmp_path, small_fcn8, features_state):
    partial = {key: value for key, value in features_state.items() if key != "features.17.bias"}
    before = small_fcn8.vgg[0].weight.clone()
    with pytest.raises(CovidalError, match="features.17.bias"):
        load_vgg16_imagenet_weights(small_fcn8, save(partial, tmp_path / "partial.pth"))
    assert torch.equal(small_fcn8.vgg[0].weight, before)


def test_wrong_shape_raises(tmp_path, small_fcn8, features_state):
    wrong = {**features_state, "features.0.weight": torch.zeros(64, 1, 3, 3)}
    with pytest.raises(CovidalError, match=r"vgg\.0\.weight has shape \(64, 1, 3, 3\)"):
        load_vgg16_imagenet_weights(small_fcn8, save(wrong, tmp_path / "wrong.pth"))


def test_classifier_weight_of_wrong_size_raises(tmp_path, features_state):
    model = FCN8VGG16(fc_channels=4096)
    bad = {**features_state, "classifier.0.weight": torch.zeros(4096, 10), "classifier.0.bias": torch.zeros(4096)}
    with pytest.raises(CovidalError, match="classifier.0.weight does not fit"):
        load_vgg16_imagenet_weights(model, save(bad, tmp_path / "bad_fc.pth"))
