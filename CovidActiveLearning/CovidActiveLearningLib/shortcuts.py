"""The module's keyboard shortcuts, one table for every driver (the Slicer panel, the browser harness).

Slice views already use plain letter keys (``vtkMRMLSliceIntersectionWidget``: ``b``/``f`` previous
and next slice, ``g``, ``t``, ``v``, ``r``, arrows, brackets), and a Qt shortcut on Slicer's main window
takes a key before the focused view, so a plain ``B`` stole the view's ``b``. Background is therefore
``Shift+B`` (a deliberate chord, so a stray key does not tag a region); ``N`` and ``P`` are not slice-view
keys and stay plain.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shortcut:
    """One key for one panel action.

    Attributes:
        letter: the key, one lower-case letter.
        shift: whether Shift is part of it (no other modifier ever is).
        action: the action's name: ``"background"``, ``"next"`` or ``"previous"``.
    """

    letter: str
    shift: bool
    action: str

    @property
    def qt_sequence(self) -> str:
        """The text ``QKeySequence`` takes, e.g. ``"Shift+B"``."""
        return ("Shift+" if self.shift else "") + self.letter.upper()

    @property
    def label(self) -> str:
        """How buttons and the README name it, e.g. ``"Shift+B"``."""
        return self.qt_sequence

    def matches(self, key_sym: str, shift: bool, control: bool = False, alt: bool = False) -> bool:
        """Whether a VTK key press (its key sym and modifier state) is this shortcut."""
        return (
            key_sym.lower() == self.letter
            and bool(shift) == self.shift
            and not control
            and not alt
            and len(key_sym) == 1
        )


SHORTCUTS = (Shortcut("b", True, "background"), Shortcut("n", False, "next"), Shortcut("p", False, "previous"))


def shortcut_for(action: str) -> Shortcut:
    """The shortcut of ``action``.

    Raises:
        KeyError: no shortcut has that action.
    """
    for shortcut in SHORTCUTS:
        if shortcut.action == action:
            return shortcut
    raise KeyError(action)


def action_for_key(key_sym: str, shift: bool, control: bool = False, alt: bool = False) -> str | None:
    """The action a VTK key press triggers, or None when it is not a shortcut of the module."""
    return next((shortcut.action for shortcut in SHORTCUTS if shortcut.matches(key_sym, shift, control, alt)), None)
