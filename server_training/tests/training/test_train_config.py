"""TrainConfig validation and (de)serialisation; device resolution."""

from __future__ import annotations

import json

import pytest
import torch

from covidal.data.window import HUWindow, ImageKind
from covidal.errors import CovidalError
from covidal.losses.registry import LossConfig, LossName
from covidal.models.kinds import ModelKind
from covidal.models.slices.build import ModelConfig
from covidal.training.background_prior import BackgroundPrior
from covidal.training.train_config import DeviceChoice, TrainConfig, measured_threshold, resolve_device
from covidal.validation import ConfigError


def test_defaults_are_valid_and_device_is_an_enum():
    config = TrainConfig(device="cpu")
    assert config.device is DeviceChoice.CPU
    assert config.image_size % 32 == 0 and config.steps >= 1


@pytest.mark.parametrize(
    "config",
    [
        TrainConfig(),
        TrainConfig(
            loss=LossConfig(LossName.CB_LCFCN, consistency_weight=0.25),
            model=ModelConfig(ModelKind.FCN8, dropout=0.0, pretrained="/weights/vgg16.pth"),
            steps=3,
            validate_every=2,
            batch_size=2,
            learning_rate=5e-4,
            image_size=64,
            val_fraction=0.0,
            seed=7,
            device="cpu",
            window=HUWindow(level=-500.0, width=1200.0),
            mask_class=2,
            pseudo_masks=True,
            background_prior=BackgroundPrior.BOTH,
            tta=True,
            lung_restriction=True,
            ema_decay=0.99,
            augment="intensity+scale",
        ),
    ],
)
def test_to_dict_from_dict_round_trip_through_json(config):
    data = json.loads(json.dumps(config.to_dict()))
    assert TrainConfig.from_dict(data) == config
    # to_dict holds plain JSON values only (enums as their strings).
    assert data["loss"]["name"] == config.loss.name.value
    assert data["model"]["name"] == config.model.name.value
    assert data["device"] == config.device.value
    assert data["background_prior"] == config.background_prior.value
    assert data["augment"] == config.augment.value
    assert data["window"] == {"level": config.window.level, "width": config.window.width}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("steps", 0, "steps"),
        ("steps", -3, "steps"),
        ("validate_every", 0, "validate_every"),
        ("batch_size", 0, "batch size"),
        ("learning_rate", 0.0, "learning rate"),
        ("learning_rate", -1e-3, "learning rate"),
        ("learning_rate", float("nan"), "learning rate"),
        ("image_size", 0, "image size"),
        ("image_size", 16, "image size"),
        ("image_size", 48, "image size"),
        ("val_fraction", 1.0, "validation fraction"),
        ("val_fraction", -0.1, "validation fraction"),
        ("device", "gpu", "gpu"),
        ("min_background_points", 0, "min_background_points"),
        ("background_prior", "lungs", "background_prior"),
        ("pseudo_masks", 1, "pseudo_masks"),
        ("tta", "yes", "tta"),
        ("lung_restriction", None, "lung_restriction"),
        ("ema_decay", 1.0, "ema_decay"),
        ("ema_decay", -0.1, "ema_decay"),
        ("ema_decay", float("nan"), "ema_decay"),
        ("ema_decay", "0.9", "ema_decay"),
        ("ema_decay", True, "ema_decay"),
        ("augment", "elastic", "augment"),
        ("augment", None, "augment"),
    ],
)
def test_bad_values_raise_value_error(field, value, message):
    error = ConfigError if field in ("ema_decay", "augment") else ValueError
    with pytest.raises(error, match=message):
        TrainConfig(**{field: value})


def test_from_dict_refuses_unknown_keys_instead_of_ignoring_them():
    data = TrainConfig().to_dict()
    data["colour"] = "blue"
    with pytest.raises((TypeError, ValueError)):
        TrainConfig.from_dict(data)


@pytest.mark.parametrize(("choice", "expected"), [("cpu", "cpu"), (DeviceChoice.CPU, "cpu")])
def test_resolve_device_explicit_cpu(choice, expected):
    assert resolve_device(choice) == torch.device(expected)


def test_resolve_device_auto_follows_cuda_availability():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_resolve_device_cuda_without_gpu_is_a_user_error():
    with pytest.raises(CovidalError, match="--device cpu"):
        resolve_device("cuda")


def test_prediction_options_follow_the_config():
    options = TrainConfig(tta=True).prediction
    assert options.tta and not options.lung_restriction


def test_measured_thresholds_depend_on_the_loss_and_the_kind_of_image():
    assert measured_threshold("cb-flip-rot", ImageKind.EIGHT_BIT) == 0.7
    assert measured_threshold("cb-flip-rot", ImageKind.HU) == 0.95  # infection is rarer in a CT's lungs
    assert measured_threshold("cb-flip-rot", None) == measured_threshold("cb-flip-rot") == 0.7
    assert measured_threshold("point", ImageKind.HU) == measured_threshold("full") == 0.5
