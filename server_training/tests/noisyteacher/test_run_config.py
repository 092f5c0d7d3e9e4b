"""The 3D run configuration: validation and a lossless round trip through JSON."""

from __future__ import annotations

import json

import pytest

from covidal.models.volumes.unet import UNet3DConfig
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.noisyteacher.student_modes import StudentMode
from covidal.volumes.patches import PatchConfig
from covidal.volumes.sliding_window import SlidingWindowConfig


def test_round_trip_through_json_keeps_every_field():
    config = Train3DConfig(
        mode="rgsm-al",
        lam=0.3,
        batch_size=2,
        epochs=3,
        steps_per_epoch=5,
        learning_rate=3e-4,
        spacing=(2.0, 2.0, 4.0),
        patch=PatchConfig(size=(16, 24, 32), foreground_probability=0.25),
        network=UNet3DConfig(channels=(4, 8, 16), strides=(2, 2), num_res_units=1),
        sliding_window=SlidingWindowConfig(patch_size=(16, 24, 32), overlap=0.25),
        seed=9,
        device="cpu",
        amp=False,
        chunk_size=2,
    )
    restored = Train3DConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert restored == config
    assert restored.mode is StudentMode.RGSM_AL


def test_defaults_are_the_papers_setting():
    config = Train3DConfig()
    assert config.spacing == (1.6, 1.6, 3.2)
    assert config.patch.size == (96, 96, 96) and config.batch_size == 4 and config.lam == 0.5
    assert config.network == UNet3DConfig()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"lam": 1.5}, "lambda"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 0}, "epochs"),
        ({"steps_per_epoch": 0}, "steps_per_epoch"),
        ({"learning_rate": 0.0}, "learning rate"),
        ({"weight_decay": -1.0}, "weight decay"),
        ({"spacing": (1.0, 0.0, 1.0)}, "spacing"),
        ({"chunk_size": 0}, "chunk size"),
        ({"mode": "noisy"}, "noisy"),
        ({"device": "tpu"}, "tpu"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        Train3DConfig(**options)
