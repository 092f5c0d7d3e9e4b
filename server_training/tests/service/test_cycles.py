"""Cycles scored by a model through the service cache: the very suggestions of a service without one, and a
model a job publishes is the one the next cycle uses. Two real servers over copies of one trained project."""

from __future__ import annotations

import shutil

from job_testing import answer_slices, finished, tiny_project, wait_for_job

from covidal.service.cache import VolumeKey
from covidal.service.jobs.progress import publish_model
from covidal.service.project.layout import ProjectLayout
from covidal.service.settings import ServiceSettings

UPLOAD_LIMIT = 64 * 2**20


def suggestions(cycle: dict) -> list[tuple]:
    """What a cycle suggests, in its order: place, box and score."""
    return [(s["volume_id"], s["k"], s["region"], tuple(s["box"].values()), s["score"]) for s in cycle["suggestions"]]


def train(client, project_id: int, steps: int) -> None:
    job = client.start_training(project_id, steps=steps)
    job = wait_for_job(client, project_id, job["id"], finished)
    assert job["status"] == "done", client.job_log(project_id, job["id"])


def test_cycles_with_the_cache_equal_those_without_and_follow_a_new_model(service_starter, tmp_path):
    trainer = service_starter(ServiceSettings(tmp_path / "trained", max_upload_bytes=UPLOAD_LIMIT))
    project, volume = tiny_project(trainer.client, tmp_path / "lesion.nrrd")
    project_id = project["id"]
    assert trainer.app.state.cache.arrays.keys() == [VolumeKey(volume["id"], volume["sha256"])]  # kept at upload
    answer_slices(trainer.client, project_id, {0, 1})
    train(trainer.client, project_id, steps=6)
    trainer.stop()  # the folder is copied closed, so both copies hold the same store
    for name in ("cached", "uncached"):
        shutil.copytree(tmp_path / "trained", tmp_path / name)
    cached = service_starter(ServiceSettings(tmp_path / "cached", max_upload_bytes=UPLOAD_LIMIT))
    uncached = service_starter(ServiceSettings(tmp_path / "uncached", max_upload_bytes=UPLOAD_LIMIT, cache_bytes=0))

    def both_cycles() -> tuple[list[tuple], list[tuple]]:
        return (
            suggestions(cached.client.create_cycle(project_id, count=16)),
            suggestions(uncached.client.create_cycle(project_id, count=16)),
        )

    for _ in range(3):  # cold, then from the cache
        with_cache, without = both_cycles()
        assert with_cache == without
        assert len(with_cache) == 8 and len({score for *_, score in with_cache}) > 1
    kept = cached.app.state.cache.arrays.keys()
    assert VolumeKey(volume["id"], volume["sha256"]) in kept and len(kept) == 2  # the CT and its network input
    assert uncached.app.state.cache.arrays.keys() == []

    # A second job publishes another model in the cached service's folder only: its next cycle differs from
    # the one the old model gives; once the uncached service has the same file, they agree again.
    new_model, old_model = (ProjectLayout(tmp_path / name).current_model(project_id) for name in ("cached", "uncached"))
    train(cached.client, project_id, steps=3)
    assert new_model.read_bytes() != old_model.read_bytes()
    with_new, with_old = both_cycles()
    assert with_new != with_old
    publish_model(new_model, old_model)
    with_cache, without = both_cycles()
    assert with_cache == without
