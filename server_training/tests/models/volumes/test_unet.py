"""Tests for covidal.models.volumes.unet: the paper's parameter count, config validation/serialisation, final layer."""

import dataclasses
import json

import pytest
import torch
from torch.nn.modules.conv import _ConvNd

from covidal.errors import CovidalError
from covidal.models.volumes.unet import (
    PAPER_PARAMETER_COUNT,
    UNet3DConfig,
    build_unet3d,
    count_trainable_parameters,
    final_layer_parameter_names,
)

pytestmark = pytest.mark.usefixtures("single_thread_torch")

TINY = UNet3DConfig(channels=(4, 8), strides=(2,), num_res_units=1)


def test_default_network_has_the_papers_parameter_count():
    model = build_unet3d()
    assert count_trainable_parameters(model) == PAPER_PARAMETER_COUNT == 4_806_481


def test_count_skips_frozen_parameters():
    model = build_unet3d(TINY)
    total = sum(p.numel() for p in model.parameters())
    first = next(model.parameters())
    first.requires_grad_(False)
    assert count_trainable_parameters(model) == total - first.numel()


def test_defaults():
    config = UNet3DConfig()
    assert (config.channels, config.strides, config.num_res_units) == ((16, 32, 64, 128, 256), (2, 2, 2, 2), 2)


@pytest.mark.parametrize("config", [TINY, UNet3DConfig(channels=(4, 8, 8), strides=(2, 1), num_res_units=0)])
def test_tiny_network_maps_images_to_two_logit_channels(config):
    logits = build_unet3d(config)(torch.randn(2, 1, 8, 16, 12))
    assert logits.shape == (2, 2, 8, 16, 12)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {"channels": [16, 32, 64, 128, 256], "strides": [2, 2, 2, 2], "num_res_units": 2}),
        ({"channels": [4, 8], "strides": [2]}, {"channels": [4, 8], "strides": [2], "num_res_units": 2}),
        (
            {"channels": (8, 8, 16), "strides": (2, 1), "num_res_units": 0},
            {"channels": [8, 8, 16], "strides": [2, 1], "num_res_units": 0},
        ),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(values, expected):
    config = UNet3DConfig.from_dict(values)
    assert isinstance(config.channels, tuple) and isinstance(config.strides, tuple)
    assert config.to_dict() == expected
    assert UNet3DConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        UNet3DConfig().num_res_units = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"channels": (16,), "strides": ()}, "at least two levels"),
        ({"channels": (16, 32, 64), "strides": (2,)}, r"strides needs len\(channels\) - 1 = 2 entries, got 1"),
        ({"channels": (16, 0), "strides": (2,)}, "channels must be a list of integers >= 1"),
        ({"channels": (16, 32.0), "strides": (2,)}, "channels must be a list of integers >= 1"),
        ({"channels": "16,32", "strides": (2,)}, "channels must be a list of integers >= 1"),
        ({"channels": (16, 32), "strides": (-2,)}, "strides must be a list of integers >= 1"),
        ({"channels": (16, 32), "strides": (True,)}, "strides must be a list of integers >= 1"),
        ({"num_res_units": -1}, "num_res_units must be an integer >= 0"),
        ({"num_res_units": 1.5}, "num_res_units must be an integer >= 0"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(CovidalError, match=message):
        UNet3DConfig(**kwargs)


@pytest.mark.parametrize(
    ("values", "message"),
    [({"channels": [4, 8], "depth": 3}, r"unknown UNet3D config keys \['depth'\]"), ([4, 8], "JSON object")],
)
def test_bad_dict_raises(values, message):
    with pytest.raises(CovidalError, match=message):
        UNet3DConfig.from_dict(values)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (UNet3DConfig(), ("model.2.1.conv.unit0.conv.weight", "model.2.1.conv.unit0.conv.bias")),
        (TINY, ("model.2.1.conv.unit0.conv.weight", "model.2.1.conv.unit0.conv.bias")),
        (UNet3DConfig(channels=(4, 8), strides=(2,), num_res_units=0), ("model.2.conv.weight", "model.2.conv.bias")),
    ],
)
def test_final_layer_parameter_names(config, expected):
    assert final_layer_parameter_names(build_unet3d(config)) == expected


@pytest.mark.parametrize("num_res_units", [0, 1])
def test_final_layer_is_the_last_convolution_run_and_writes_the_logits(num_res_units):
    model = build_unet3d(UNet3DConfig(channels=(4, 8, 8), strides=(2, 2), num_res_units=num_res_units))
    prefix = final_layer_parameter_names(model)[0].rsplit(".", 1)[0]
    calls = []  # (module name, input, output) of every convolution, in the order they run
    for name, module in model.named_modules():
        if isinstance(module, _ConvNd):
            module.register_forward_hook(lambda _m, args, out, name=name: calls.append((name, args[0], out)))
    logits = model(torch.randn(1, 1, 16, 16, 16))
    last_name, last_input, last_output = calls[-1]
    assert last_name == prefix
    # Without residual units the layer's output is the logits; with them, its output plus an identity shortcut.
    shortcut = 0 if num_res_units == 0 else last_input
    torch.testing.assert_close(logits, last_output + shortcut, rtol=0, atol=0)


def test_model_without_a_two_channel_convolution_raises():
    with pytest.raises(ValueError, match="no convolution with 2 output channels"):
        final_layer_parameter_names(torch.nn.Sequential(torch.nn.Conv3d(1, 3, 1), torch.nn.Linear(3, 2)))
