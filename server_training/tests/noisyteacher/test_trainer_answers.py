"""3D runs that learn from a clinician's answers (clicks and background answers) instead of, or beside, expert
volumes: the run folder, resuming, and the clean gradient of the answers weighing pseudo-labels."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from run_testing import tiny_config

from covidal.errors import CovidalError
from covidal.noisyteacher.run import load_model
from covidal.noisyteacher.student_modes import StudentMode
from covidal.noisyteacher.trainer import train_3d
from covidal.volumes.cases import list_volume_cases
from covidal.volumes.preprocess import PreparedCase, prepare_cases


def answered(case: PreparedCase) -> PreparedCase:
    """``case`` labelled as a clinician's answers would label it: one click at the lesion's centre, background
    answers on the slices without lesion, every other voxel unanswered (-1)."""
    labels = np.full(case.label.shape, -1, dtype=np.int8)
    labels[[k for k in range(len(case.label)) if not case.label[k].any()]] = 0
    labels[tuple(np.argwhere(case.label).mean(axis=0).round().astype(int))] = 1
    return replace(case, name=f"{case.name}-answers", label=labels)


@pytest.fixture(scope="module")
def cases(volume_set):
    config = tiny_config(StudentMode.SUPERVISED)
    return prepare_cases(list_volume_cases(volume_set.images, volume_set.labels), config.spacing, config.window)


@pytest.mark.usefixtures("single_thread_torch")
def test_a_student_learns_from_answers_alone(tmp_path, cases):
    config = tiny_config(StudentMode.RGS)
    lines = []
    train_3d(config, [], tmp_path, pseudo=cases, log=lines.append, answered=[answered(c) for c in cases[:2]])
    assert "answer loss" in lines[-1] and "expert loss" not in lines[-1]
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert len(steps) == 6 and all(s["expert_loss"] is None and s["answer_loss"] > 0 for s in steps)
    assert all(len(s["weights"]) == config.batch_size for s in steps)
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["epochs"][-1]["expert_loss"] is None and history["epochs"][-1]["answer_loss"] > 0
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["expert_cases"] == [] and saved["answered_cases"] == ["case0-answers", "case1-answers"]


@pytest.mark.usefixtures("single_thread_torch")
def test_an_interrupted_run_with_answers_resumes_to_the_same_weights(tmp_path, cases):
    config = tiny_config(StudentMode.SEMI)
    clicks = [answered(c) for c in cases[:2]]
    train_3d(config, cases[:1], tmp_path / "whole", pseudo=cases[1:], log=lambda _: None, answered=clicks)

    class Stop(Exception):
        pass

    def stop_after_first_epoch(progress) -> None:
        if progress.epoch_done is not None and progress.epoch_done.epoch == 1:
            raise Stop

    with pytest.raises(Stop):
        train_3d(
            config,
            cases[:1],
            tmp_path / "cut",
            pseudo=cases[1:],
            log=lambda _: None,
            on_step=stop_after_first_epoch,
            resumable=True,
            answered=clicks,
        )
    train_3d(config, cases[:1], tmp_path / "cut", pseudo=cases[1:], log=lambda _: None, resumable=True, answered=clicks)
    whole, resumed = (load_model(tmp_path / name).model.state_dict() for name in ("whole", "cut"))
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)


@pytest.mark.usefixtures("single_thread_torch")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_answers_clean_gradient_weighs_inverted_pseudo_labels_below_the_true_ones(tmp_path, cases, seed):
    """The run-level twin of the gradient test in test_sample_weights: RGS with answers as the only clean data,
    half the pseudo-labelled volumes inverted (every voxel's class flipped), 4 epochs of 3 steps."""
    inverted = [replace(c, name=f"{c.name}-inverted", label=(1 - c.label).astype(np.uint8)) for c in cases]
    config = tiny_config(StudentMode.RGS, seed=seed, epochs=4, batch_size=3)
    train_3d(
        config, [], tmp_path, pseudo=[*cases, *inverted], log=lambda _: None, answered=[answered(c) for c in cases]
    )
    weights = json.loads((tmp_path / "history.json").read_text())["pseudo_weight_by_case"]
    true = np.mean([weights[c.name]["mean"] for c in cases if c.name in weights])
    flipped = np.mean([weights[c.name]["mean"] for c in inverted if c.name in weights])
    assert true > flipped + 0.1, weights


def test_a_run_needs_expert_or_answered_volumes(tmp_path, cases):
    with pytest.raises(CovidalError, match="no expert-labelled or answered volumes"):
        train_3d(tiny_config(StudentMode.RGS), [], tmp_path, pseudo=cases)
    unanswered = replace(cases[0], label=np.full(cases[0].label.shape, -1, dtype=np.int8))
    with pytest.raises(ValueError, match="without any answered voxel"):
        train_3d(tiny_config(StudentMode.SUPERVISED), [], tmp_path / "none", answered=[unanswered])
