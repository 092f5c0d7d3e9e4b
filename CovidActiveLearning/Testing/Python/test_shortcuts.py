"""Tests of CovidActiveLearningLib/shortcuts.py against the key tables of Slicer's own view widgets (slicer-core)."""

import pytest
import slicer
import vtk

from CovidActiveLearningLib.shortcuts import SHORTCUTS, action_for_key, shortcut_for


def widget_event(widget, key_sym: str, shift: bool) -> int:
    """What ``widget`` does with a key press (``WidgetEventNone``: it leaves the key alone)."""
    event = slicer.vtkMRMLInteractionEventData()
    event.SetType(vtk.vtkCommand.KeyPressEvent)
    event.SetKeySym(key_sym)
    event.SetKeyCode(key_sym if len(key_sym) == 1 else "\0")
    event.SetModifiers(vtk.vtkEvent.ShiftModifier if shift else 0)
    return widget.TranslateInteractionEventToWidgetEvent(event)


def slice_view_widgets():
    """The slice view's intersection widget (slice browsing keys) and a markups points widget in place mode."""
    intersection = slicer.vtkMRMLSliceIntersectionWidget()
    intersection.UpdateInteractionEventMapping()
    points = slicer.vtkSlicerPointsWidget()
    points.SetWidgetState(points.WidgetStateDefine)
    return {"slice intersection": intersection, "markups in place mode": points}


@pytest.mark.parametrize("shortcut", SHORTCUTS, ids=lambda shortcut: shortcut.qt_sequence)
def test_no_shortcut_takes_a_key_of_the_slice_view(shortcut):
    key_sym = shortcut.letter.upper() if shortcut.shift else shortcut.letter
    for name, widget in slice_view_widgets().items():
        assert widget_event(widget, key_sym, shortcut.shift) == widget.WidgetEventNone, name


def test_the_old_plain_b_was_the_slice_views_previous_slice():
    """Why Background moved to Shift+B: a plain b steps the slice view back one slice."""
    intersection = slice_view_widgets()["slice intersection"]
    assert widget_event(intersection, "b", False) == intersection.WidgetEventDecrementSlice
    assert action_for_key("b", shift=False) is None


def test_keys_map_to_actions_with_exact_modifiers():
    assert shortcut_for("background").qt_sequence == "Shift+B"
    assert (shortcut_for("next").qt_sequence, shortcut_for("previous").qt_sequence) == ("N", "P")
    assert action_for_key("B", shift=True) == "background"
    assert action_for_key("n", shift=False) == "next" and action_for_key("p", shift=False) == "previous"
    assert action_for_key("N", shift=True) is None  # Shift+N is not Next
    assert action_for_key("B", shift=True, control=True) is None
    assert action_for_key("BackSpace", shift=False) is None
    with pytest.raises(KeyError):
        shortcut_for("export")
