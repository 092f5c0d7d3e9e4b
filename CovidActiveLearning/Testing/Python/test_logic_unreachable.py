"""The backend goes away mid-cycle: no answer is lost, and they all arrive once it is back."""

from __future__ import annotations

import numpy as np
import pytest

from CovidActiveLearningLib.backend_client import CovidalClient
from CovidActiveLearningLib.geometry import ijk_to_ras
from CovidActiveLearningLib.logic import CovidActiveLearningCoreLogic
from CovidActiveLearningLib.volumes import read_volume


@pytest.fixture
def serve(tmp_path):
    """``serve()``: a context manager running `covidal serve` over the same project folder each time."""
    from covidal.service.local import local_service  # the backend's package: tests only, never inside Slicer

    return lambda: local_service(tmp_path / "projects", tmp_path / "serve.log", environment={"OMP_NUM_THREADS": "1"})


def test_answers_survive_the_backend_going_away_and_arrive_once(mrml, serve, chest_files):
    ct_node = read_volume(mrml.scene, chest_files[0], "chest")
    logic = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    with serve() as first:
        logic.connect(first.base_url)
        logic.open_project("outage")
        regions = logic.get_suggestions(ct_node, 4)
        logic.tag_background()
        report = logic.submit()
        assert report.sent == 1
    # The backend is gone: keep answering.
    box = logic.current_region.box
    voxel = (box.i0, box.j0, box.k)
    logic.add_point_ras(ijk_to_ras(ct_node, voxel))
    logic.next_region()
    logic.tag_background()
    report = logic.submit()
    assert report.unreachable and report.sent == 0 and report.still_pending == 2
    assert logic.has_unsent()  # the widget sends them again on its own every 30 s

    # The answers are in the scene: a new logic on the same scene (the module reopened) still has them.
    reopened = CovidActiveLearningCoreLogic(mrml, annotator="dr-test")
    assert len(reopened.book.pending()) == 2
    with serve() as second:
        reopened.connect(second.base_url)
        reopened.open_project("outage")
        assert reopened.has_unsent() and reopened.submit().sent == 2
        assert not reopened.has_unsent()
        stored = CovidalClient(second.base_url).list_annotations(reopened.project_id)
    assert len(stored) == 3 and len({a["suggestion_id"] for a in stored}) == 3
    assert {a["suggestion_id"] for a in stored} <= {region.id for region in regions}
    assert [list(p) for a in stored for p in a["points"]] == [list(voxel)]
    assert not np.isnan(reopened.effort_seconds())
