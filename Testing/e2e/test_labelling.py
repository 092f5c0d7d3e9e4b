"""Labelling through Slicer's own views in a browser: the real DICOM series, mouse clicks placed by Slicer's markups
widget, keys handled by Slicer's slice view, answers stored by a real ``covidal serve``."""

from __future__ import annotations

import numpy as np
import pytest

from steps import (
    click_voxel,
    control_points,
    current_region,
    get_suggestions,
    load,
    stored_answers,
    voxel_ras,
    voxel_under,
)

REGIONS = 4


@pytest.fixture
def dicom_cycle(fresh, shared_dicom):
    """The harness with the real DICOM series loaded, connected, and a first cycle of ``REGIONS`` regions on screen."""
    load(fresh, shared_dicom)
    get_suggestions(fresh, REGIONS)
    return fresh


def wait_for_rank(harness, rank: int) -> None:
    """Wait until the region of this rank is the current one (a key or click reaches the app asynchronously)."""
    harness.wait_until(lambda app: app.logic.current_region.rank == rank, timeout=20, what=f"region {rank}")


def inside_voxel(region, fraction=(0.3, 0.7)) -> tuple[int, int, int]:
    """A voxel inside the region's box, off its centre."""
    box = region.box
    return (box.i0 + int(fraction[0] * (box.i1 - box.i0)), box.j0 + int(fraction[1] * (box.j1 - box.j0)), box.k)


def test_get_suggestions_makes_infection_points_the_place_target(fresh, shared_dicom):
    load(fresh, shared_dicom)
    regions = get_suggestions(fresh, REGIONS)

    def place_target(app):
        interaction = app.slicer.scene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
        active = app.slicer.scene.GetNodeByID(app.context.markups.GetActiveListID())
        return (
            active.GetName(),
            active.GetClassName(),
            interaction.GetCurrentInteractionMode() == interaction.Place,
            bool(interaction.GetPlaceModePersistence()),
            app.slicer.scene.GetNumberOfNodesByClass("vtkMRMLMarkupsROINode"),
        )

    assert fresh.call(place_target) == ("Infection points", "vtkMRMLMarkupsFiducialNode", True, True, REGIONS)
    assert fresh.text("placing") == "Clicks in the views go to 'Infection points'."

    def legend_drawn(app):
        heatmap = app.slicer.scene.GetNodeByID(app.logic.layer.heatmap_ids()[0])
        legend = app.context.colors.GetColorLegendDisplayNode(heatmap)
        manager = app.slice_views()["Red"].get_displayable_manager_by_class("vtkMRMLColorLegendDisplayableManager")
        actor = manager.GetColorLegendActor(legend)
        return actor is not None and bool(actor.GetVisibility()) and actor.GetTitle() == "Uncertainty"

    assert fresh.call(legend_drawn)  # the heat map's legend is drawn by Slicer's legend displayable manager
    box = regions[0].box
    spacing = fresh.call(lambda app: app.volume.GetSpacing()[0])
    shown = fresh.call(lambda app: app.slice_node("Red").GetFieldOfView()[:2])
    # Zoomed on the region: the view's shorter side spans twice the box (the whole slice is 512 voxels wide).
    assert min(shown) == pytest.approx(2 * max(box.i1 - box.i0, box.j1 - box.j0) * spacing, rel=1e-3)
    fresh.screenshot("get_suggestions")
    assert fresh.text("current-region").endswith(f"slice {box.k}")


def test_a_click_in_the_box_stores_the_voxel_under_the_cursor(dicom_cycle, backend):
    harness = dicom_cycle
    region = current_region(harness)
    x, y = click_voxel(harness, inside_voxel(region))
    under_cursor = voxel_under(harness, x, y)
    harness.wait_until(lambda app: app.logic.book.answer_for(region.id), what="the click's answer")
    path = harness.screenshot("click_inside")
    answer = harness.call(lambda app: app.logic.book.answer_for(region.id))
    assert len(answer.points) == 1
    assert np.abs(np.subtract(answer.points[0], under_cursor)).max() <= 1, path
    assert region.box.contains(answer.points[0])
    assert [status for status, _ in control_points(harness)].count("defined") == 1

    harness.run(harness.page.get_by_label("Train after submit").set_checked(False))
    harness.click_button("Submit")
    harness.wait_for_text("submit-status", "1 answer(s) sent")
    stored = stored_answers(backend, harness)[region.id]
    assert stored["answer"] == "infection"
    assert np.abs(np.subtract(stored["points"][0], under_cursor)).max() <= 1


def test_a_click_outside_the_box_is_refused_and_nothing_is_stored(dicom_cycle, backend):
    harness = dicom_cycle
    region = current_region(harness)
    box = region.box
    outside = (box.i1 + 4, box.j0 + 1, box.k)  # same slice, four voxels to the side
    click_voxel(harness, outside)
    notice = harness.wait_for_text("notice", f"outside region {region.rank}")
    harness.screenshot("click_outside")
    assert "click inside the highlighted box" in notice
    assert harness.call(lambda app: app.logic.book.answer_for(region.id)) is None
    assert [status for status, _ in control_points(harness)] in ([], ["preview"])  # the refused point is gone
    assert not harness.button_enabled("Submit")  # nothing to send
    assert stored_answers(backend, harness) == {}


def test_a_preview_point_is_never_taken_for_a_click(dicom_cycle, backend):
    """Persistent place mode keeps a preview point under the mouse: it is neither taken for a click nor removed
    by Undo, and the next click is taken where it was made."""
    harness = dicom_cycle
    region = current_region(harness)
    first = inside_voxel(region, (0.25, 0.25))
    click_voxel(harness, first)
    harness.wait_until(lambda app: app.logic.book.answer_for(region.id), what="the first click")
    elsewhere = harness.page_point(voxel_ras(harness, inside_voxel(region, (0.75, 0.75))))
    harness.hover(*elsewhere)  # the preview follows the mouse; no click
    assert [status for status, _ in control_points(harness)] == ["defined", "preview"]
    assert harness.call(lambda app: app.logic.book.answer_for(region.id).points) == (first,)

    harness.click_button("Undo")
    harness.wait_until(lambda app: app.logic.book.answer_for(region.id) is None, what="the undo")
    assert [status for status, _ in control_points(harness)] == ["preview"]  # Undo left the live preview alone

    second = inside_voxel(region, (0.6, 0.4))
    x, y = click_voxel(harness, second)
    harness.wait_until(lambda app: app.logic.book.answer_for(region.id), what="the second click")
    harness.screenshot("preview_point")
    assert harness.call(lambda app: app.logic.book.answer_for(region.id).points) == (voxel_under(harness, x, y),)


def test_background_by_keyboard_and_next_previous(dicom_cycle, backend):
    harness = dicom_cycle
    regions = harness.call(lambda app: app.logic.cycle.regions)
    first = current_region(harness)
    before = harness.call(lambda app: app.slice_views()["Red"].get_slice_value())
    harness.press("b")  # Slicer's slice view: previous slice; not the module's Background
    assert harness.call(lambda app: app.slice_views()["Red"].get_slice_value()) < before
    assert harness.call(lambda app: app.logic.book.answers()) == []

    harness.press("Shift+B")  # Background: tags the region and moves on to the next unanswered one
    harness.wait_until(lambda app: app.logic.book.answer_for(first.id), what="the background tag")
    wait_for_rank(harness, 2)
    for key, rank in (("n", 3), ("p", 2)):
        harness.press(key)
        wait_for_rank(harness, rank)
    for button, rank in (("Next (N)", 3), ("Next (N)", 4), ("Next (N)", 1), ("Previous (P)", 4)):  # wraps around
        harness.click_button(button)
        wait_for_rank(harness, rank)
    harness.wait_for_text("current-region", f"Region 4 ({regions[3].score:.3f}), slice {regions[3].box.k}")
    harness.screenshot("background_and_navigation")

    harness.run(harness.page.get_by_label("Train after submit").set_checked(False))
    harness.click_button("Submit")
    harness.wait_for_text("submit-status", "1 answer(s) sent")
    stored = stored_answers(backend, harness)
    assert {suggestion: answer["answer"] for suggestion, answer in stored.items()} == {first.id: "background"}
    assert stored[first.id]["points"] == []
