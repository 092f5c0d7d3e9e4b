"""A 3D run configuration that trains in about a second (tiny network, 8^3 patches on a coarse grid)."""

from __future__ import annotations

from covidal.models.volumes.unet import UNet3DConfig
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.noisyteacher.student_modes import StudentMode
from covidal.volumes.patches import PatchConfig
from covidal.volumes.sliding_window import SlidingWindowConfig


def tiny_config(mode: StudentMode, **changes) -> Train3DConfig:
    options = {
        "mode": mode,
        "batch_size": 2,
        "epochs": 2,
        "steps_per_epoch": 3,
        "spacing": (2.0, 2.0, 4.0),
        "patch": PatchConfig(size=(8, 8, 8)),
        "network": UNet3DConfig(channels=(4, 8), strides=(2,), num_res_units=1),
        "sliding_window": SlidingWindowConfig(patch_size=(8, 8, 8)),
        "device": "cpu",
    }
    return Train3DConfig(**{**options, **changes})
