"""Bounds of the job settings that size memory: a value past its bound is a clear error, the bound itself is kept."""

from __future__ import annotations

import pytest

from covidal.errors import CovidalError
from covidal.service.jobs.job_config import TrainJobConfig
from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"image_size": 2**20}, ["image_size", "in [1, 1024]"]),
        ({"image_size": 1056}, ["image_size", "in [1, 1024], got 1056"]),
        ({"width": 10**6}, ["width", "in [1, 256]"]),
        ({"batch_size": 10**6}, ["batch_size", "in [1, 256]"]),
        ({"background_sample": 10**12}, ["background_sample", "in [1, 1048576]"]),
    ],
)
def test_train_job_settings_have_upper_bounds(values, words):
    with pytest.raises(CovidalError) as raised:
        TrainJobConfig.from_dict(values)
    for word in words:
        assert word in str(raised.value), str(raised.value)


@pytest.mark.parametrize("augment", ["elastic", ["intensity"], 3, None])
def test_an_unknown_augmentation_is_a_clear_error(augment):
    with pytest.raises(CovidalError, match="augment"):
        TrainJobConfig.from_dict({"augment": augment})


def test_a_project_chooses_the_augmentation_in_its_settings():
    config = TrainJobConfig.for_project({"augment": "intensity+scale"}, {})
    assert config.augment == "intensity+scale" and TrainJobConfig().augment == "none"
    assert TrainJobConfig.from_dict(config.to_dict()) == config


def test_train_job_bounds_themselves_are_accepted():
    config = TrainJobConfig.from_dict({"image_size": 1024, "width": 256, "batch_size": 256})
    assert (config.image_size, config.width, config.batch_size) == (1024, 256, 256)


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"batch_size": 10**6}, ["batch_size", "in [1, 64]"]),
        ({"patch_size": [4096, 96, 96]}, ["patch_size", "integers in [1, 256]"]),
        ({"channels": [16, 10**6]}, ["channels", "integers in [1, 1024]"]),
        ({"channels": [1] * 9, "patch_size": [256, 256, 256]}, ["channels", "levels"]),
        ({"spacing": [0.001, 0.001, 0.001]}, ["spacing", "at least"]),
    ],
)
def test_noisy_teacher_job_settings_have_bounds(values, words):
    with pytest.raises(CovidalError) as raised:
        NoisyTeacherJobConfig.from_dict(values)
    for word in words:
        assert word in str(raised.value), str(raised.value)
