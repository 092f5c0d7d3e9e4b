"""The MRML scene and the Slicer module logics the core works with, inside Slicer or headless.

Inside the Slicer application :func:`application_context` takes the running logics. Headless
(pytest with the ``slicer-core`` wheel) :func:`headless_context` builds a scene with an
application logic and the logics attached to it, as ``../shared/notes/slicer-headless.md``
records; the terminologies logic is left out (it needs the application's files).
"""

from __future__ import annotations

import functools
import tempfile
from dataclasses import dataclass
from pathlib import Path

import slicer
import vtk


@dataclass(frozen=True)
class MrmlContext:
    """A scene and the module logics acting on it."""

    scene: object  # vtkMRMLScene
    volumes: object  # vtkSlicerVolumesLogic
    segmentations: object  # vtkSlicerSegmentationsModuleLogic
    markups: object  # vtkSlicerMarkupsLogic
    colors: object  # vtkSlicerColorLogic
    subject_hierarchy: object  # vtkMRMLSubjectHierarchyNode of the scene


def application_context() -> MrmlContext:
    """The running Slicer application's scene and logics (only inside Slicer)."""
    modules = slicer.modules
    scene = slicer.mrmlScene
    return MrmlContext(
        scene,
        modules.volumes.logic(),
        modules.segmentations.logic(),
        modules.markups.logic(),
        modules.colors.logic(),
        slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene),
    )


def headless_context() -> MrmlContext:
    """A new scene with the logics attached, and the ``slicer.mrmlScene``/``slicer.modules`` that
    ``slicer.util`` expects (headless only: inside Slicer use :func:`application_context`)."""
    scene = slicer.vtkMRMLScene()
    application = slicer.vtkSlicerApplicationLogic()
    application.SetMRMLScene(scene)
    # The wheel ships no colour files; an empty colour-file folder makes the colour logic skip them quietly.
    application.SetHomeDirectory(str(_empty_home()))
    application.SetShareDirectory("share")
    colors = slicer.vtkSlicerColorLogic()
    colors.SetMRMLApplicationLogic(application)  # before the scene: it looks for colour files through it
    application.SetColorLogic(colors)
    colors.SetMRMLScene(scene)
    colors.AddDefaultColorNodes()
    application.SetSliceLogics(vtk.vtkCollection())
    application.SetViewLogics(vtk.vtkCollection())
    logics = {
        "volumes": slicer.vtkSlicerVolumesLogic(),
        "segmentations": slicer.vtkSlicerSegmentationsModuleLogic(),
        "markups": slicer.vtkSlicerMarkupsLogic(),
        "colors": colors,
        "subjecthierarchy": slicer.vtkSlicerSubjectHierarchyModuleLogic(),
        "plots": slicer.vtkSlicerPlotsLogic(),
    }
    for name, logic in logics.items():
        if logic is not colors:
            logic.SetMRMLScene(scene)
        logic.SetMRMLApplicationLogic(application)
        application.SetModuleLogic(name, logic)
    slicer.mrmlScene = scene
    slicer.modules = _Modules({name: _ModuleHandle(logic) for name, logic in logics.items()})
    slicer._covidal_application_logic = application  # keeps the application logic alive with the scene
    return MrmlContext(
        scene,
        logics["volumes"],
        logics["segmentations"],
        logics["markups"],
        logics["colors"],
        slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(scene),
    )


@functools.cache
def _empty_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="covidal-mrml-home-"))
    (home / "share" / "ColorFiles").mkdir(parents=True)
    return home


class _ModuleHandle:
    def __init__(self, logic) -> None:
        self._logic = logic

    def logic(self):
        return self._logic


class _Modules:
    def __init__(self, handles: dict) -> None:
        self.__dict__.update(handles)
