"""Teacher and student runs on real files: the run folder, determinism and bad inputs."""

from __future__ import annotations

import json

import pytest
import torch
from run_testing import tiny_config

from covidal.errors import CovidalError
from covidal.noisyteacher.run import load_model
from covidal.noisyteacher.run_config import Train3DConfig
from covidal.noisyteacher.student_modes import StudentMode
from covidal.noisyteacher.trainer import train_3d
from covidal.volumes.cases import list_volume_cases
from covidal.volumes.preprocess import prepare_cases


@pytest.fixture(scope="module")
def cases(volume_set):
    config = tiny_config(StudentMode.SUPERVISED)
    return prepare_cases(list_volume_cases(volume_set.images, volume_set.labels), config.spacing, config.window)


@pytest.mark.usefixtures("single_thread_torch")
def test_student_run_writes_model_history_and_one_line_per_step(tmp_path, cases):
    config = tiny_config(StudentMode.RGSM_AL)
    lines = []
    result = train_3d(config, cases[:1], tmp_path, pseudo=cases[1:], log=lines.append)
    assert [e.epoch for e in result.epochs] == [1, 2] and len(lines) == 2 and "ETA" in lines[-1]
    steps = [json.loads(line) for line in (tmp_path / "steps.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps] == list(range(1, 7))
    for step in steps:
        assert set(step["pseudo_names"]) <= {c.name for c in cases[1:]}
        assert step["skipped"] == (sum(step["weights"]) == 0)
        assert sum(step["weights"]) == pytest.approx(1.0) or step["skipped"]
    history = json.loads((tmp_path / "history.json").read_text())
    assert history["mode"] == "rgsm-al" and len(history["epochs"]) == 2
    assert sum(v["patches"] for v in history["pseudo_weight_by_case"].values()) == 6 * config.batch_size
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["expert_cases"] == [cases[0].name] and Train3DConfig.from_dict(saved["config"]) == config
    loaded = load_model(tmp_path)
    assert loaded.epoch == 2 and loaded.config == config


@pytest.mark.usefixtures("single_thread_torch")
def test_the_same_seed_gives_the_same_weights(tmp_path, cases):
    config = tiny_config(StudentMode.SEMI)
    train_3d(config, cases[:1], tmp_path / "a", pseudo=cases[1:], log=lambda _: None)
    train_3d(config, cases[:1], tmp_path / "b", pseudo=cases[1:], log=lambda _: None)
    train_3d(tiny_config(StudentMode.SEMI, seed=1), cases[:1], tmp_path / "c", pseudo=cases[1:], log=lambda _: None)
    a, b, c = (load_model(tmp_path / name).model.state_dict() for name in "abc")
    assert all(torch.equal(a[key], b[key]) for key in a)
    assert not all(torch.equal(a[key], c[key]) for key in a)


def test_teacher_trains_on_expert_volumes_only(tmp_path, cases):
    with pytest.raises(CovidalError, match="expert volumes only"):
        train_3d(tiny_config(StudentMode.SUPERVISED), cases[:1], tmp_path, pseudo=cases[1:])
    with pytest.raises(CovidalError, match="needs pseudo-labelled"):
        train_3d(tiny_config(StudentMode.RGS), cases, tmp_path)
    with pytest.raises(CovidalError, match="no expert"):
        train_3d(tiny_config(StudentMode.SUPERVISED), [], tmp_path)


def test_loading_a_2d_model_or_garbage_is_refused(tmp_path, tiny_run):
    with pytest.raises(CovidalError, match="not a covidal 3D model"):
        load_model(tiny_run)
    (tmp_path / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CovidalError, match="not a readable"):
        load_model(tmp_path)
    with pytest.raises(CovidalError, match="no trained 3D model"):
        load_model(tmp_path / "missing")
