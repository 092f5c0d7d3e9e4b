"""Tests for covidal.models.slices.build: names, config validation/serialisation, building."""

import dataclasses
import json

import pytest
import torch

from covidal.errors import CovidalError
from covidal.models import ModelConfig, ModelKind, SegmentationNet, build_model
from covidal.models.kinds import SLICE_MODEL_KINDS, VOLUME_MODEL_KINDS
from covidal.models.slices.build import MODEL_BUILDERS
from covidal.models.slices.fcn8 import FCN8VGG16
from covidal.models.slices.unet import UNet2D


def test_model_kinds_are_their_string_values_on_their_axis():
    assert [kind.value for kind in ModelKind] == ["unet", "fcn8", "unet3d"]
    assert SLICE_MODEL_KINDS == (ModelKind.UNET, ModelKind.FCN8) and VOLUME_MODEL_KINDS == (ModelKind.UNET3D,)


def test_every_2d_kind_has_a_builder():
    assert set(MODEL_BUILDERS) == set(SLICE_MODEL_KINDS)


def test_a_3d_kind_is_no_2d_model():
    with pytest.raises(CovidalError, match="unknown 2D model 'unet3d'"):
        ModelConfig(name="unet3d")


def test_defaults():
    config = ModelConfig()
    assert (config.name, config.dropout, config.pretrained) == (ModelKind.UNET, 0.5, None)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {"name": "unet", "dropout": 0.5, "pretrained": None, "width": 32}),
        ({"name": "fcn8", "dropout": 0}, {"name": "fcn8", "dropout": 0.0, "pretrained": None, "width": 32}),
        (
            {"name": "fcn8", "pretrained": "/w/vgg.pth"},
            {"name": "fcn8", "dropout": 0.5, "pretrained": "/w/vgg.pth", "width": 32},
        ),
        (
            {"name": "unet", "dropout": 0.25, "width": 8},
            {"name": "unet", "dropout": 0.25, "pretrained": None, "width": 8},
        ),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(values, expected):
    config = ModelConfig.from_dict(values)
    as_dict = config.to_dict()
    assert as_dict == expected
    assert type(as_dict["name"]) is str  # plain JSON, not an enum
    assert ModelConfig.from_dict(json.loads(json.dumps(as_dict))) == config


def test_string_name_is_normalised_to_the_enum():
    assert ModelConfig(name="fcn8").name is ModelKind.FCN8  # type: ignore[arg-type]


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        ModelConfig().dropout = 0.1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"dropout": 1.0}, r"in \[0, 1\)"),
        ({"width": 0}, "integer >= 1"),
        ({"width": 2.5}, "integer >= 1"),
        ({"dropout": -0.1}, r"in \[0, 1\)"),
        ({"dropout": "0.5"}, "must be a finite number"),
        ({"dropout": True}, "must be a finite number"),
        ({"name": "resnet"}, "unknown 2D model 'resnet'; choose one of: unet, fcn8"),
        ({"name": "unet", "pretrained": "vgg16.pth"}, "pretrained weights are only supported for fcn8"),
    ],
)
def test_bad_config_raises(kwargs, message):
    with pytest.raises(CovidalError, match=message):
        ModelConfig(**kwargs)


@pytest.mark.parametrize(
    ("values", "message"),
    [({"name": "unet", "depth": 5}, r"unknown model config keys \['depth'\]"), (["unet"], "JSON object")],
)
def test_bad_dict_raises(values, message):
    with pytest.raises(CovidalError, match=message):
        ModelConfig.from_dict(values)


def test_build_unet():
    model = build_model(ModelConfig(name=ModelKind.UNET, dropout=0.2))
    assert isinstance(model, UNet2D) and isinstance(model, SegmentationNet)
    assert model.dropout == pytest.approx(0.2)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_build_fcn8_with_pretrained_trunk(tmp_path):
    vgg_state = FCN8VGG16(fc_channels=8).vgg.state_dict()
    path = tmp_path / "vgg16.pth"
    torch.save({"features." + key: torch.full_like(value, 0.5) for key, value in vgg_state.items()}, path)
    model = build_model(ModelConfig(name=ModelKind.FCN8, dropout=0.3, pretrained=str(path)))
    assert isinstance(model, FCN8VGG16)
    assert model.fc_channels == 4096 and model.dropout == pytest.approx(0.3)
    assert torch.all(model.vgg[0].weight == 0.5) and torch.all(model.vgg[28].bias == 0.5)


def test_build_fcn8_with_missing_weights_raises(tmp_path):
    config = ModelConfig(name=ModelKind.FCN8, pretrained=str(tmp_path / "absent.pth"))
    with pytest.raises(CovidalError, match="not found"):
        build_model(config)


@pytest.mark.parametrize("width", [8, 16])
def test_unet_width_sets_the_channel_ladder(width):
    model = build_model(ModelConfig(width=width))
    assert model.feature_channels == width
    assert model.trunk.conv_0.conv_0.conv.out_channels == width
    assert model.trunk.down_4.convs.conv_0.conv.out_channels == 8 * width
