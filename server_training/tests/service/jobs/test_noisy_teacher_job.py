"""A noisy-teacher job's volumes (fixed at its first start, so a resume trains on the same ones, and refused
when an expert label changed meanwhile) and the resumable 3D runs its resume rests on."""

from __future__ import annotations

import pytest
import torch
from service_testing import write_volume
from volume3d_testing import lesion_case, unet3d_project

from covidal.errors import CovidalError
from covidal.noisyteacher.run import load_model
from covidal.noisyteacher.student_modes import StudentMode
from covidal.noisyteacher.trainer import train_3d
from covidal.service.jobs.noisy_teacher_config import NoisyTeacherJobConfig
from covidal.service.jobs.noisy_teacher_job import check_volumes, job_volumes
from covidal.service.store.store import Store
from covidal.volumes.cases import list_volume_cases
from covidal.volumes.preprocess import prepare_cases


def checked(project: dict, config: NoisyTeacherJobConfig):
    """The volume check of a noisy-teacher job of ``project`` (what the job passes to ``job_volumes``)."""
    return lambda found: check_volumes(project["id"], found, config)


def test_a_jobs_volumes_are_fixed_at_its_start_and_a_changed_label_is_refused(service, tmp_path):
    client = service.client
    project, volumes = unet3d_project(client, tmp_path, count=2, labelled=1)
    record = tmp_path / "job" / "volumes.json"
    config = NoisyTeacherJobConfig()
    with Store(service.settings.project_dir) as store:
        first = job_volumes(store, project["id"], record, checked(project, config))
        assert [v.id for v in first.expert] == [volumes[0]["id"]] and [v.id for v in first.pool] == [volumes[1]["id"]]
        later, _ = client.upload_volume(project["id"], write_volume(lesion_case(5)[0], tmp_path / "later.nrrd"))
        client.upload_label(project["id"], volumes[1]["id"], write_volume(lesion_case(1)[1], tmp_path / "l1.nrrd"))
        again = job_volumes(
            store, project["id"], record, checked(project, config)
        )  # the new volume and label are not the job's
        assert (again.expert, again.pool) == (first.expert, first.pool) and later["id"] not in {
            v.id for v in again.pool
        }
        original = tmp_path / "label0.nrrd"  # unet3d_project's label of volume 0
        client.upload_label(project["id"], volumes[0]["id"], write_volume(lesion_case(2)[1], tmp_path / "l0.nrrd"))
        with pytest.raises(CovidalError, match=rf"label of volume\(s\) \[{volumes[0]['id']}\] was replaced"):
            job_volumes(store, project["id"], record, checked(project, config))
        client.upload_label(project["id"], volumes[0]["id"], original)  # the same content again: accepted
        assert job_volumes(store, project["id"], record, checked(project, config)).expert == first.expert


def test_a_job_needs_expert_volumes_and_a_pool_for_its_student(service, tmp_path):
    project, _ = unet3d_project(service.client, tmp_path, count=1, labelled=1)
    with Store(service.settings.project_dir) as store:
        with pytest.raises(CovidalError, match="nothing to pseudo-label"):
            job_volumes(
                store, project["id"], tmp_path / "job" / "volumes.json", checked(project, NoisyTeacherJobConfig())
            )
        assert not (tmp_path / "job" / "volumes.json").exists()
        supervised = job_volumes(
            store,
            project["id"],
            tmp_path / "job" / "volumes.json",
            checked(project, NoisyTeacherJobConfig(mode="supervised")),
        )
        assert len(supervised.expert) == 1 and supervised.pool == []


class _Stop(Exception):
    """Raised by ``on_step`` to stop a run, as a cancel or the service's end stops a job."""


@pytest.fixture(scope="module")
def prepared(volume_set):
    return prepare_cases(list_volume_cases(volume_set.images, volume_set.labels), (2.0, 2.0, 4.0))


@pytest.mark.usefixtures("single_thread_torch")
def test_a_resumable_3d_run_stopped_mid_epoch_ends_as_an_uninterrupted_one(prepared, tmp_path):
    """What the job's resume rests on: ``train_3d(resumable=True)`` restarted after a stop in epoch 3 (with
    steps.jsonl lines of that epoch written, as by a crash before the state) gives the same weights and steps."""
    config = NoisyTeacherJobConfig(
        mode="rgsm-al",
        epochs=4,
        steps_per_epoch=2,
        batch_size=2,
        patch_size=[8, 8, 8],
        spacing=[2.0, 2.0, 4.0],
        channels=[4, 8],
    ).train_config(StudentMode.RGSM_AL, "cpu")
    expert, pseudo = prepared[:1], prepared[1:]
    train_3d(config, expert, tmp_path / "whole", pseudo, log=lambda _: None, resumable=True)

    def stop_in_epoch_3(progress):
        if progress.step == 5:
            raise _Stop()

    with pytest.raises(_Stop):
        train_3d(
            config, expert, tmp_path / "stopped", pseudo, log=lambda _: None, on_step=stop_in_epoch_3, resumable=True
        )
    steps = tmp_path / "stopped" / "steps.jsonl"
    steps.write_text(steps.read_text() + '{"epoch": 3, "step": 5}\n')
    lines = []
    result = train_3d(config, expert, tmp_path / "stopped", pseudo, log=lines.append, resumable=True)
    assert lines[0].startswith("resuming after epoch 2/4") and [e.epoch for e in result.epochs] == [1, 2, 3, 4]
    whole, resumed = (load_model(tmp_path / run).model.state_dict() for run in ("whole", "stopped"))
    assert all(torch.equal(whole[key], resumed[key]) for key in whole)
    assert steps.read_text() == (tmp_path / "whole" / "steps.jsonl").read_text()
    finished = train_3d(config, expert, tmp_path / "stopped", pseudo, log=lines.append, resumable=True)
    assert lines[-1].startswith("already trained: 4/4") and len(finished.epochs) == 4
    with pytest.raises(CovidalError, match="another configuration or other volumes"):
        train_3d(config, expert, tmp_path / "stopped", pseudo[:1], log=lambda _: None, resumable=True)
