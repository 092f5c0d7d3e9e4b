"""The 'train' job's worker in this process, over a real store: a job resumed from its checkpoint restores the
weights, Adam's state and the random states, so it ends exactly as the same job run without interruption."""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from job_testing import LESION_BOX, TINY_SETTINGS, lesion_ct
from service_testing import write_volume

from covidal.data.io import read_volume
from covidal.errors import CovidalError
from covidal.models.slices.build import build_model
from covidal.regions.grid import RegionGrid
from covidal.service.jobs.job_config import TrainJobConfig
from covidal.service.jobs.progress import JobReporter
from covidal.service.jobs.worker import _warm_start, run_job
from covidal.service.project.layout import JobPaths, ProjectLayout
from covidal.service.store.records import JobProgress, JobStatus, RegionBox, SuggestionSpec, VolumeFormat
from covidal.service.store.store import Store
from covidal.service.volumes import geometry_of
from covidal.training.checkpoint import load_run

CEAL_PARAMS = {"delta": 0.6, "pseudo_weight": 1.0}
pytestmark = pytest.mark.usefixtures("single_thread_torch")  # one thread: the same steps give the same weights


@pytest.fixture
def answered(tmp_path) -> tuple[Store, int]:
    """``(store, project id)``: a unet project with the lesion CT and slice 0's four regions answered."""
    yield from answered_project(tmp_path, "entropy", TINY_SETTINGS)


@pytest.fixture
def answered_ceal(tmp_path) -> tuple[Store, int]:
    """As :func:`answered`, a CEAL project whose every pixel above 0.6 is pseudo-labelled."""
    yield from answered_project(tmp_path, "ceal", {**TINY_SETTINGS, "strategy_params": CEAL_PARAMS})


def answered_project(tmp_path: Path, strategy: str, settings: dict):
    store = Store(tmp_path / "project")
    project = store.create_project(
        "p", model_kind="unet", grid_k=4, strategy=strategy, mc_samples=2, loss="point", settings=settings
    )
    answer_new_volume(store, project.id, tmp_path / "ct.nrrd")
    yield store, project.id
    store.close()


def answer_new_volume(store: Store, project_id: int, path: Path, corner_hu: int = 0) -> None:
    """Add the lesion CT (its corner voxel raised by ``corner_hu``: another content is another volume) as a new
    volume and answer its slice 0's four regions in a new cycle."""
    ct = lesion_ct()
    ct[0, 0, 0] += corner_hu
    write_volume(ct, path)
    with open(path, "rb") as handle:
        stored = store.files.put_stream(store.volume_folder(project_id), ".nrrd", handle, 10**8)
    volume, _ = store.add_volume(project_id, path.stem, stored, VolumeFormat.NRRD, geometry_of(read_volume(path)))
    boxes = RegionGrid(4).boxes((32, 32))
    cycle = store.create_cycle(
        project_id,
        [
            SuggestionSpec(volume.id, 0, region, RegionBox(b.col0, b.col1, b.row0, b.row1), 1.0)
            for region, b in enumerate(boxes)
        ],
    )
    centre = (LESION_BOX[1].start + 4, LESION_BOX[0].start + 4, 0)  # (i, j, k), in region 0
    for suggestion in store.list_suggestions(project_id, cycle.id):
        infected = suggestion.region == 0
        store.submit_annotation(
            project_id,
            suggestion.id,
            annotator="dr-a",
            answer="infection" if infected else "background",
            points=[centre] if infected else [],
            effort_seconds=3.0,
            idempotency_key=f"{cycle.id}:{suggestion.id}",
        )


def run_train_job(store: Store, project_id: int, steps: int, resume_from: Path | None = None) -> Path:
    """Run a 'train' job of ``steps`` steps to the end (first interrupted at ``resume_from``'s checkpoint, if
    given, and resumed from it, as after a service restart); returns its final training state file. Each starts
    from fresh weights (no warm start), so the runs compare step for step."""
    config = TrainJobConfig.for_project(store.get_project(project_id).settings, {"steps": steps, "warm_start": False})
    job = store.enqueue_job(project_id, "train", config.to_dict())
    job = store.claim_next_job("cpu")
    paths = JobPaths(store.root, job.id)
    if resume_from is not None:
        paths.checkpoint.parent.mkdir(parents=True)
        shutil.copyfile(resume_from, paths.checkpoint)
        interrupted = resume_from.parent.parent / paths.pseudo_labels.name  # what the interrupted job left
        if interrupted.is_file():
            shutil.copyfile(interrupted, paths.pseudo_labels)
        saved_step = torch.load(resume_from, weights_only=True)["step"]
        store.update_job_progress(
            job.id, JobProgress(saved_step, steps), paths.checkpoint.relative_to(store.root).as_posix()
        )
        assert [j.id for j in store.mark_running_jobs_interrupted()] == [job.id]
        store.requeue_job(project_id, job.id)
        job = store.claim_next_job("cpu")
    assert run_job(store, store.root, job, JobReporter(store, job.id, os.getppid())) is JobStatus.DONE
    return paths.checkpoint


def test_a_resumed_job_continues_with_the_saved_optimiser_state(answered):
    store, project_id = answered
    uninterrupted = torch.load(run_train_job(store, project_id, steps=4), weights_only=True)
    at_step_2 = run_train_job(store, project_id, steps=2)  # the same job's first two steps: its checkpoint
    saved = torch.load(at_step_2, weights_only=True)
    assert saved["step"] == 2 and all(int(s["step"]) == 2 for s in saved["optimizer"]["state"].values())
    resumed = torch.load(run_train_job(store, project_id, steps=4, resume_from=at_step_2), weights_only=True)
    assert resumed["step"] == 4 and all(int(s["step"]) == 4 for s in resumed["optimizer"]["state"].values())
    # weights, Adam's moments, random states, validation Dice: equal
    assert resumed.pop("format") == uninterrupted.pop("format")
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)


def test_a_resumed_augmented_job_ends_as_an_uninterrupted_one_and_its_model_records_it(tmp_path):
    """The augmentation's generator is part of the job's state: restored, its draws continue where they were."""
    for store, project_id in answered_project(tmp_path, "entropy", {**TINY_SETTINGS, "augment": "intensity+scale"}):
        uninterrupted = torch.load(run_train_job(store, project_id, steps=4), weights_only=True)
        at_step_2 = run_train_job(store, project_id, steps=2)
        resumed = torch.load(run_train_job(store, project_id, steps=4, resume_from=at_step_2), weights_only=True)
        assert resumed["augment_rng"] is not None and resumed.pop("format") == uninterrupted.pop("format")
        torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)
        current = ProjectLayout(store.root).current_model(project_id)
        assert load_run(current, "cpu").config.augment == "intensity+scale"


def test_a_resumed_ceal_job_trains_on_the_pseudo_labels_it_started_with(answered_ceal):
    store, project_id = answered_ceal
    current = ProjectLayout(store.root).current_model(project_id)
    run_train_job(store, project_id, steps=2)  # the project's first model: jobs pseudo-label with it from now on
    first_model = current.read_bytes()
    uninterrupted = torch.load(run_train_job(store, project_id, steps=4), weights_only=True)
    current.write_bytes(first_model)  # the interrupted job starts from the same current model
    at_step_2 = run_train_job(store, project_id, steps=2)
    interrupted_model = current.read_bytes()  # the current model while the job waits to resume
    resumed = torch.load(run_train_job(store, project_id, steps=4, resume_from=at_step_2), weights_only=True)
    # Pseudo-labels made afresh with that model differ: only the kept ones make the resumed job end as the
    # uninterrupted one.
    current.write_bytes(interrupted_model)
    fresh = run_train_job(store, project_id, steps=1)
    kept = np.load(at_step_2.parent.parent / "pseudo_labels.npz")["labels"]
    assert not np.array_equal(kept, np.load(fresh.parent.parent / "pseudo_labels.npz")["labels"])
    assert resumed.pop("format") == uninterrupted.pop("format")
    torch.testing.assert_close(resumed, uninterrupted, rtol=0, atol=0)


def test_a_resumed_ceal_job_refuses_answers_its_kept_pseudo_labels_do_not_cover(answered_ceal, tmp_path):
    store, project_id = answered_ceal
    run_train_job(store, project_id, steps=2)  # a current model: the next job pseudo-labels the pool
    at_step_2 = run_train_job(store, project_id, steps=2)
    answer_new_volume(store, project_id, tmp_path / "second.nrrd", corner_hu=1)  # while the job waits to resume
    with pytest.raises(CovidalError, match=r"answered after this job pseudo-labelled the pool"):
        run_train_job(store, project_id, steps=4, resume_from=at_step_2)


def test_without_the_saved_optimiser_state_the_resumed_job_differs(answered, tmp_path):
    """The control of the test above: Adam restarted from nothing (the old resume) ends elsewhere."""
    store, project_id = answered
    uninterrupted = torch.load(run_train_job(store, project_id, steps=4), weights_only=True)
    saved = torch.load(run_train_job(store, project_id, steps=2), weights_only=True)
    saved["optimizer"]["state"] = {}
    forgetful = tmp_path / "state.pt"
    torch.save(saved, forgetful)
    resumed = torch.load(run_train_job(store, project_id, steps=4, resume_from=forgetful), weights_only=True)
    assert not all(torch.equal(resumed["model"][key], uninterrupted["model"][key]) for key in resumed["model"])


def test_a_job_warm_starts_from_the_current_model_of_the_same_network(answered, tmp_path):
    store, project_id = answered
    run_train_job(store, project_id, steps=2)  # publishes the project's current model
    current = ProjectLayout(store.root).current_model(project_id)
    published = load_run(current, "cpu")
    config = published.config
    fresh = build_model(config.model)
    assert _warm_start(fresh, config, current, torch.device("cpu"))
    for key, value in published.model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)
    wider = replace(config, model=replace(config.model, width=config.model.width * 2))
    assert not _warm_start(build_model(wider.model), wider, current, torch.device("cpu"))  # another network
    assert not _warm_start(fresh, config, tmp_path / "none.pt", torch.device("cpu"))  # no current model yet
