"""The typed options of a noisy-teacher job: defaults, the project's settings, JSON round trip, clear errors."""

from __future__ import annotations

import json

import pytest

from covidal.errors import CovidalError
from covidal.noisyteacher.student_modes import StudentMode
from covidal.service.jobs.job_config import JobKind
from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig
from covidal.training.train_config import DeviceChoice


def test_defaults_are_the_papers_student_and_network():
    config = NoisyTeacherJobConfig()
    assert config.mode is StudentMode.RGSM_AL and config.trains_student
    assert (config.epochs, config.steps_per_epoch, config.patch_size, config.channels) == (
        100,
        25,
        (96, 96, 96),
        (16, 32, 64, 128, 256),
    )


def test_project_settings_then_the_jobs_options_and_a_json_round_trip():
    settings = {"epochs": 3, "patch_size": [16, 16, 8], "window": [-600, 1500], "image_size": 64}  # 2D keys ignored
    config = NoisyTeacherJobConfig.for_project(settings, {"epochs": 5, "mode": "semi", "channels": [4, 8, 16]})
    assert (config.epochs, config.patch_size, config.mode, config.channels) == (
        5,
        (16, 16, 8),
        StudentMode.SEMI,
        (4, 8, 16),
    )
    assert NoisyTeacherJobConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_the_networks_configs():
    config = NoisyTeacherJobConfig(
        mode="rgs", epochs=2, steps_per_epoch=3, patch_size=[8, 16, 16], channels=[4, 8, 16], seed=7
    )
    teacher, student = (config.train_config(mode, "cpu") for mode in (StudentMode.SUPERVISED, config.mode))
    assert teacher.mode is StudentMode.SUPERVISED and student.mode is StudentMode.RGS
    assert teacher.network.strides == (2, 2) and teacher.patch.size == teacher.sliding_window.patch_size == (8, 16, 16)
    assert (student.epochs, student.steps_per_epoch, student.seed, student.device) == (2, 3, 7, DeviceChoice.CPU)
    assert config.steps_per_network == 6 and not NoisyTeacherJobConfig(mode="supervised").trains_student


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"mode": "psychic"}, ["mode", "psychic", "rgsm-al"]),
        ({"epochs": True}, ["epochs", "integer"]),
        ({"steps_per_epoch": 2.5}, ["steps_per_epoch", "integer"]),
        ({"epochs": 10_000, "steps_per_epoch": 1_000}, ["at most 1000000"]),
        ({"seed": -1}, ["seed", ">= 0"]),
        ({"lam": "half"}, ["lam", "[0, 1]"]),
        ({"learning_rate": 0}, ["learning_rate", "> 0"]),
        ({"patch_size": 96}, ["patch_size", "3 integers"]),
        ({"patch_size": [96, 96, 90]}, ["patch_size", "multiples of 16"]),
        ({"channels": [16]}, ["channels", "2 to 7 levels"]),
        ({"channels": [16, 0]}, ["channels", "integers in [1, 1024]"]),
        ({"spacing": [1.6, 1.6, -3.2]}, ["spacing", "at least 0.25"]),
        ({"epoch": 3}, ["unknown job config keys", "epochs"]),
    ],
)
def test_bad_options_are_named(values, words):
    with pytest.raises(CovidalError) as error:
        NoisyTeacherJobConfig.from_dict(values)
    for word in words:
        assert word in str(error.value), (word, str(error.value))


def test_job_kinds_name_the_kind_that_fits():
    assert JobKind.parse("noisy-teacher") is JobKind.NOISY_TEACHER
    with pytest.raises(CovidalError, match="one of 'train', 'noisy-teacher', 'clicks-to-3d'; got 'x'"):
        JobKind.parse("x")
    JobKind.TRAIN.check_model_kind(1, "fcn8")
    with pytest.raises(
        CovidalError,
        match="'unet3d' model, but 'train' jobs train 'unet' and 'fcn8' models: start a 'noisy-teacher' job",
    ):
        JobKind.TRAIN.check_model_kind(1, "unet3d")
