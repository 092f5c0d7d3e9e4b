"""The store: projects, volumes, cycles, leases and annotations, with every refusal's message."""

from __future__ import annotations

import io

import pytest
from store_testing import DIMS, GEOMETRY, T0, region_specs

from covidal.service.store.errors import Conflict, Invalid, LeaseError, NotFound
from covidal.service.store.records import (
    Answer,
    CycleStatus,
    RegionBox,
    SuggestionSpec,
    VolumeFormat,
)
from covidal.service.store.store import Store

LEASE = 600.0


def submit(store, project, suggestion, annotator="alice", points=None, key=None, now=T0 + 1, effort=12.5, answer=None):
    """Answer ``suggestion`` with a click on its first voxel unless ``points``/``answer`` say otherwise."""
    if points is None:
        points = [[suggestion.box.i0, suggestion.box.j0, suggestion.k]]
    answer = answer or (Answer.INFECTION if points else Answer.BACKGROUND)
    return store.submit_annotation(
        project.id,
        suggestion.id,
        annotator=annotator,
        answer=answer,
        points=points,
        effort_seconds=effort,
        idempotency_key=key or f"{annotator}:{suggestion.id}",
        now=now,
    )


def lease(store, project, cycle, annotator, limit=2, now=T0, seconds=LEASE):
    return store.lease_suggestions(project.id, cycle.id, annotator, limit=limit, lease_seconds=seconds, now=now)


# Projects


def test_a_project_round_trips_and_its_name_is_unique(tmp_path):
    with Store(tmp_path) as store:
        project = store.create_project(
            "lungs",
            model_kind="unet3d",
            grid_k=64,
            strategy="entropy",
            mc_samples=8,
            loss="point",
            settings={"lr": 0.001, "patch": [32, 32, 16]},
            now=T0,
        )
        assert (project.name, project.grid_k, project.mc_samples, project.created_at) == ("lungs", 64, 8, T0)
        assert store.get_project(project.id) == project and store.list_projects() == [project]
        with pytest.raises(Conflict, match=rf"a project named 'lungs' already exists \(id {project.id}\)"):
            store.create_project(
                "lungs", model_kind="unet3d", grid_k=64, strategy="entropy", mc_samples=8, loss="point"
            )
    with Store(tmp_path) as store:  # durable
        assert store.get_project(project.id).settings == {"lr": 0.001, "patch": [32, 32, 16]}


def test_settings_updates_merge_top_level_keys(opened):
    store, project, _, _ = opened
    store.update_project_settings(project.id, {"lr": 0.01, "epochs": 5})
    assert store.update_project_settings(project.id, {"lr": 0.1}).settings == {"lr": 0.1, "epochs": 5}
    with pytest.raises(Invalid, match="project settings is not valid JSON"):
        store.update_project_settings(project.id, {"lr": float("nan")})
    with pytest.raises(NotFound, match="project 99 does not exist"):
        store.update_project_settings(99, {})


@pytest.mark.parametrize(
    "change, message",
    [
        ({"name": " "}, "project name must be 1 to 100 printable characters"),
        ({"grid_k": 0}, "grid_k must be an integer >= 1, got 0"),
        ({"mc_samples": 2.5}, "mc_samples must be an integer >= 1, got 2.5"),
        ({"loss": ""}, "loss must be 1 to 100"),
        ({"settings": [1]}, "project settings must be a JSON object"),
    ],
)
def test_bad_project_values_are_refused(tmp_path, change, message):
    values = {
        "name": "p",
        "model_kind": "unet3d",
        "grid_k": 16,
        "strategy": "entropy",
        "mc_samples": 4,
        "loss": "point",
        **change,
    }
    with Store(tmp_path) as store:
        with pytest.raises(Invalid, match=message):
            store.create_project(**values)
        assert store.list_projects() == []


# Volumes


def test_a_volume_round_trips_with_its_geometry(opened):
    store, project, volume, _ = opened
    assert (volume.name, volume.format, volume.geometry, volume.project_id) == (
        "ct1.nrrd",
        VolumeFormat.NRRD,
        GEOMETRY,
        project.id,
    )
    assert store.files.sha256(volume.path) == volume.sha256
    assert store.list_volumes(project.id) == [volume] == [store.find_volume_by_sha256(project.id, volume.sha256)]
    assert store.find_volume_by_sha256(project.id, "0" * 64) is None


def test_the_same_content_again_returns_the_existing_volume_and_drops_the_upload(opened):
    store, project, volume, _ = opened
    again = store.files.put_stream(store.volume_folder(project.id), ".nrrd", io.BytesIO(b"lungs" * 100), 10**6)
    assert again.sha256 == volume.sha256
    assert store.add_volume(project.id, "copy.nrrd", again, "nrrd", GEOMETRY) == (volume, False)
    assert store.files.files("volumes") == [volume.path]
    assert store.integrity_check() == []


def test_a_refused_volume_drops_its_upload(opened):
    store, project, volume, _ = opened
    folder = store.volume_folder(project.id)
    bad_format = store.files.put_stream(folder, ".mha", [b"other"], 100)
    with pytest.raises(Invalid, match="volume format must be one of 'nifti', 'nrrd', 'dicom-zip', got 'mha'"):
        store.add_volume(project.id, "x.mha", bad_format, "mha", GEOMETRY)
    orphan = store.files.put_stream(store.volume_folder(99), ".nrrd", [b"other"], 100)
    with pytest.raises(NotFound, match="project 99 does not exist"):
        store.add_volume(99, "x.nrrd", orphan, "nrrd", GEOMETRY)
    assert store.files.files("volumes") == [volume.path] and store.list_volumes(project.id) == [volume]


def test_an_upload_from_another_projects_folder_is_left_alone(opened):
    store, project, volume, _ = opened
    elsewhere = store.files.put_stream(store.volume_folder(project.id + 1), ".nrrd", [b"other"], 100)
    with pytest.raises(ValueError, match=r"was not uploaded to 'volumes/1'"):
        store.add_volume(project.id, "x.nrrd", elsewhere, "nrrd", GEOMETRY)
    assert store.files.files("volumes") == sorted([volume.path, elsewhere.relative_path])


def test_ids_of_another_project_are_not_found(project_opener):
    store, first, volume, cycle = project_opener("first")
    store.close()
    store, second, _, _ = project_opener("second", root=store.root)
    suggestion = store.list_suggestions(first.id, cycle.id)[0]
    for call, message in [
        (lambda: store.get_volume(second.id, volume.id), f"volume {volume.id} is not part of project {second.id}"),
        (lambda: store.get_cycle(second.id, cycle.id), f"cycle {cycle.id} is not part of project {second.id}"),
        (lambda: lease(store, second, cycle, "bob"), f"cycle {cycle.id} is not part of project {second.id}"),
        (lambda: submit(store, second, suggestion), f"suggestion {suggestion.id} is not part of project {second.id}"),
        (lambda: store.get_suggestion(first.id, 999), "suggestion 999 does not exist"),
        (lambda: store.list_volumes(7), "project 7 does not exist"),
    ]:
        with pytest.raises(NotFound, match=message):
            call()
    assert store.annotation_history(first.id) == store.annotation_history(second.id) == []


# Cycles


def test_cycles_are_numbered_per_project_and_a_new_one_closes_the_old(project_opener):
    store, project, volume, first = project_opener(regions=3)
    second = store.create_cycle(project.id, region_specs(volume.id, 2)[::-1], now=T0 + 5)
    assert (first.number, second.number, second.status) == (1, 2, CycleStatus.OPEN)
    assert [c.status for c in store.list_cycles(project.id)] == [CycleStatus.CLOSED, CycleStatus.OPEN]
    ranked = store.list_suggestions(project.id, second.id)
    assert [(s.rank, s.region) for s in ranked] == [(1, 1), (2, 0)]  # ranks follow the list order
    assert ranked[1].box == RegionBox(0, 16, 0, 16) and not ranked[1].answered and ranked[1].lease_holder is None
    with pytest.raises(Conflict, match=rf"cycle 1 \(id {first.id}\) of project {project.id} is closed"):
        lease(store, project, first, "alice")
    assert project_opener("other", root=store.root)[3].number == 1


@pytest.mark.parametrize(
    "specs, error, message",
    [
        ([], Invalid, "a cycle needs one or more suggestions"),
        (
            [SuggestionSpec(1, 0, 3, RegionBox(0, 1, 0, 1), 1)] * 2,
            Invalid,
            "region 3 of slice k=0 of volume 1 is suggested twice",
        ),
        (
            [SuggestionSpec(1, 0, 16, RegionBox(0, 1, 0, 1), 1)],
            Invalid,
            "region index must be below the project's grid_k 16",
        ),
        (
            [SuggestionSpec(1, 0, 0, RegionBox(60, 65, 0, 1), 1)],
            Invalid,
            rf"box i \[60, 65\), j \[0, 1\) lies outside the volume of {DIMS[0]} x {DIMS[1]} x {DIMS[2]} voxels",
        ),
        ([SuggestionSpec(1, DIMS[2], 0, RegionBox(0, 1, 0, 1), 1)], Invalid, "lies outside the volume"),
        ([SuggestionSpec(1, 0, 0, RegionBox(0, 1, 0, 49), 1)], Invalid, "lies outside the volume"),
        ([SuggestionSpec(2, 0, 0, RegionBox(0, 1, 0, 1), 1)], NotFound, "volume 2 does not exist"),
    ],
)
def test_bad_cycles_are_refused_and_write_nothing(opened, specs, error, message):
    store, project, _, cycle = opened
    with pytest.raises(error, match=message):
        store.create_cycle(project.id, specs)
    assert store.list_cycles(project.id) == [cycle]


# Leases


def test_two_annotators_get_disjoint_regions_best_ranks_first(opened):
    store, project, _, cycle = opened
    alice, bob = lease(store, project, cycle, "alice"), lease(store, project, cycle, "bob", limit=3)
    assert [s.rank for s in alice] == [1, 2] and [s.rank for s in bob] == [3, 4, 5]
    assert {s.lease_holder for s in alice} == {"alice"} and {s.lease_expires_at for s in bob} == {T0 + LEASE}


def test_own_unexpired_leases_come_back_renewed_before_new_ones(opened):
    store, project, _, cycle = opened
    first = lease(store, project, cycle, "alice")
    lease(store, project, cycle, "bob")
    again = lease(store, project, cycle, "alice", limit=3, now=T0 + 10)
    assert [s.rank for s in again] == [1, 2, 5]  # her two, then the best free one (3 and 4 are bob's)
    assert [s.id for s in again[:2]] == [s.id for s in first]
    assert {s.lease_expires_at for s in again} == {T0 + 10 + LEASE}
    assert [s.rank for s in lease(store, project, cycle, "alice", limit=1, now=T0 + 20)] == [1]


@pytest.mark.parametrize("delay, bob_gets", [(LEASE - 0.001, [3, 4]), (LEASE, [1, 2])])
def test_an_expired_lease_can_be_taken_by_another_annotator(opened, delay, bob_gets):
    store, project, _, cycle = opened
    lease(store, project, cycle, "alice")
    assert [s.rank for s in lease(store, project, cycle, "bob", now=T0 + delay)] == bob_gets


def test_answered_regions_are_never_leased(project_opener):
    store, project, _, cycle = project_opener(regions=3)
    first = lease(store, project, cycle, "alice", limit=1)[0]
    submit(store, project, first)
    assert [s.rank for s in lease(store, project, cycle, "bob", limit=5, now=T0 + 2 * LEASE)] == [2, 3]
    for suggestion in store.list_suggestions(project.id, cycle.id)[1:]:
        submit(store, project, suggestion, annotator="bob")
    assert lease(store, project, cycle, "alice", limit=5) == []
    assert all(s.answered for s in store.list_suggestions(project.id, cycle.id))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"annotator": ""}, "annotator must be 1 to 100 printable characters"),
        ({"limit": 0}, "limit must be an integer >= 1, got 0"),
        ({"lease_seconds": 0}, "lease_seconds must be a finite number > 0, got 0"),
        ({"lease_seconds": float("inf")}, "lease_seconds must be a finite number > 0"),
    ],
)
def test_bad_lease_requests_are_refused(opened, kwargs, message):
    store, project, _, cycle = opened
    arguments = {"annotator": "alice", "limit": 2, "lease_seconds": 60.0, **kwargs}
    with pytest.raises(Invalid, match=message):
        store.lease_suggestions(project.id, cycle.id, arguments.pop("annotator"), **arguments)
    assert all(s.lease_holder is None for s in store.list_suggestions(project.id, cycle.id))


# Annotations


def test_answers_are_stored_with_who_when_and_effort_in_time_order(opened):
    store, project, _, cycle = opened
    first, second = lease(store, project, cycle, "alice")
    background, created = submit(store, project, second, points=[], now=T0 + 30, effort=4.0)
    infection, _ = submit(store, project, first, points=[[2, 3, 0], [15, 15, 0]], now=T0 + 20)
    assert created and (background.answer, background.points, background.effort_seconds) == (Answer.BACKGROUND, (), 4.0)
    assert (infection.answer, infection.points, infection.annotator, infection.created_at) == (
        Answer.INFECTION,
        ((2, 3, 0), (15, 15, 0)),
        "alice",
        T0 + 20,
    )
    assert store.annotation_history(project.id) == [infection, background]
    assert store.get_suggestion(project.id, first.id).answered


def test_resending_the_same_answer_and_key_returns_the_stored_one(opened):
    store, project, _, cycle = opened
    suggestion = lease(store, project, cycle, "alice", limit=1)[0]
    stored, created = submit(store, project, suggestion, key="k1")
    lease(store, project, cycle, "bob", now=T0 + 2 * LEASE)  # the lease has moved on: a retry must still succeed
    assert submit(store, project, suggestion, key="k1", now=T0 + 3 * LEASE) == (stored, False)
    assert created and store.annotation_history(project.id) == [stored]


@pytest.mark.parametrize(
    "change",
    [
        {"points": [[1, 1, 0]]},
        {"annotator": "bob"},
        {"effort": 13.0},
        {"points": [], "answer": "background"},
        {"other_region": True},
    ],
)
def test_a_key_reused_for_a_different_answer_is_a_conflict(opened, change):
    store, project, _, cycle = opened
    first, second = store.list_suggestions(project.id, cycle.id)[:2]
    stored, _ = submit(store, project, first, key="k1")
    target = second if change.pop("other_region", False) else first
    with pytest.raises(
        Conflict,
        match=rf"idempotency key 'k1' was already used for a different answer "
        rf"\(infection for suggestion {first.id} by 'alice' at 2023-11-14T22:13:21Z\)",
    ):
        submit(store, project, target, key="k1", **change)
    assert store.annotation_history(project.id) == [stored]


def test_a_region_answered_under_another_key_is_a_conflict_naming_when_and_who(opened):
    store, project, _, cycle = opened
    suggestion = store.list_suggestions(project.id, cycle.id)[4]
    stored, _ = submit(store, project, suggestion, annotator="alice", now=T0 + 60)
    with pytest.raises(
        Conflict,
        match=rf"suggestion {suggestion.id} \(region 4 of slice k=0\) was already answered at "
        r"2023-11-14T22:14:20Z by 'alice'",
    ):
        submit(store, project, suggestion, annotator="bob", key="other")
    assert store.annotation_history(project.id) == [stored]


def test_a_region_leased_to_someone_else_is_refused(opened):
    store, project, _, cycle = opened
    held = lease(store, project, cycle, "bob", limit=1)[0]
    with pytest.raises(
        LeaseError,
        match=rf"suggestion {held.id} is leased to 'bob' until 2023-11-14T22:23:20Z "
        r"\(your lease on it, if you had one, has expired\): fetch new suggestions",
    ):
        submit(store, project, held, annotator="alice", now=T0 + LEASE - 1)
    assert store.annotation_history(project.id) == []


def test_an_expired_lease_taken_over_by_another_annotator_is_refused(opened):
    store, project, _, cycle = opened
    mine = lease(store, project, cycle, "alice", limit=1)[0]
    assert lease(store, project, cycle, "bob", limit=1, now=T0 + LEASE + 1)[0].id == mine.id
    with pytest.raises(LeaseError, match=f"suggestion {mine.id} is leased to 'bob'"):
        submit(store, project, mine, annotator="alice", now=T0 + LEASE + 2)


@pytest.mark.parametrize(
    "leases, annotator",
    [
        ([], "alice"),  # nobody ever leased it
        ([("alice", T0)], "alice"),  # her own lease expired, nobody took it over
        ([("bob", T0)], "alice"),  # bob's lease lapsed: nobody is working on it
    ],
)
def test_a_region_nobody_holds_now_is_accepted(opened, leases, annotator):
    store, project, _, cycle = opened
    for holder, when in leases:
        lease(store, project, cycle, holder, limit=1, now=when)
    suggestion = store.list_suggestions(project.id, cycle.id)[0]
    assert submit(store, project, suggestion, annotator=annotator, now=T0 + LEASE + 1)[1]


@pytest.mark.parametrize(
    "index, points, message",
    [
        (
            0,
            [[16, 0, 0]],
            (
                r"point #1 \[16, 0, 0\] lies outside suggestion \d+: its region is i in \[0, 16\), j in "
                r"\[0, 16\) on slice k = 0"
            ),
        ),
        (
            5,
            [[20, 16, 0], [19, 15, 0]],
            r"point #2 \[19, 15, 0\] lies outside suggestion",
        ),  # region 5: i 16-32, j 16-32
        (0, [[0, 0, 1]], r"point #1 \[0, 0, 1\] lies outside suggestion"),  # the right box on the wrong slice
        (0, [[64, 0, 0]], r"point #1 \[64, 0, 0\] lies outside volume \d+ \('ct1.nrrd'\) of 64 x 48 x 10 voxels"),
        (0, [[0, -1, 0]], r"point #1 \[0, -1, 0\] lies outside volume"),
        (0, [[0, 0, 10]], r"point #1 \[0, 0, 10\] lies outside volume"),
        (0, [[0, 0]], r"point #1 must be three integers \[i, j, k\], got \[0, 0\]"),
        (0, [[0, 0, 0], [0, 0, 0]], r"point #2 \[0, 0, 0\] is given twice"),
    ],
)
def test_points_outside_the_region_or_the_volume_are_refused(opened, index, points, message):
    store, project, _, cycle = opened
    suggestion = store.list_suggestions(project.id, cycle.id)[index]
    with pytest.raises(Invalid, match=message):
        submit(store, project, suggestion, points=points)
    assert store.annotation_history(project.id) == []


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"answer": "infection", "points": []}, "an infection answer needs one or more points"),
        (
            {"answer": "background", "points": [[0, 0, 0]]},
            "a background tag covers the whole region and takes no points",
        ),
        ({"answer": "maybe"}, "answer must be one of 'background', 'infection', got 'maybe'"),
        ({"effort": -1.0}, "effort_seconds must be a finite number >= 0, got -1.0"),
        ({"effort": float("nan")}, "effort_seconds must be a finite number >= 0, got nan"),
        ({"effort": True}, "effort_seconds must be a finite number >= 0, got True"),
        ({"annotator": "\t"}, "annotator must be 1 to 100 printable characters"),
        ({"key": "k" * 201}, "idempotency key must be 1 to 200 printable characters"),
    ],
)
def test_bad_answers_are_refused(opened, kwargs, message):
    store, project, _, cycle = opened
    suggestion = store.list_suggestions(project.id, cycle.id)[0]
    with pytest.raises(Invalid, match=message):
        submit(store, project, suggestion, **kwargs)
    assert store.annotation_history(project.id) == []


def test_an_unknown_region_is_not_found(opened):
    store, project, _, _ = opened
    with pytest.raises(NotFound, match="suggestion 999 does not exist"):
        store.submit_annotation(
            project.id, 999, annotator="alice", answer="background", points=[], effort_seconds=1, idempotency_key="k"
        )


def test_a_closed_cycles_regions_can_still_be_answered(opened):
    store, project, volume, cycle = opened
    old = store.list_suggestions(project.id, cycle.id)[0]
    store.create_cycle(project.id, region_specs(volume.id, 2))
    assert submit(store, project, old)[1]


def test_a_healthy_store_passes_the_integrity_check_and_a_damaged_file_does_not(opened):
    store, project, volume, cycle = opened
    submit(store, project, store.list_suggestions(project.id, cycle.id)[0])
    assert store.integrity_check() == []
    store.files.path(volume.path).write_bytes(b"tampered")
    (store.files.root / "volumes" / "1" / "stray.nrrd").write_bytes(b"x")
    assert store.integrity_check() == [
        (
            f"volume {volume.id} ('ct1.nrrd') of project {project.id}: file {volume.path} does not have the "
            f"recorded sha256 {volume.sha256}"
        ),
        "file volumes/1/stray.nrrd: not referenced by any volume",
    ]
    store.files.path(volume.path).unlink()
    assert store.integrity_check()[0].endswith(f"file {volume.path} is missing")
