"""A prediction corrected by the clinician, made the backend's expert label volume of its CT.

"Correct in Segment Editor" readies the scene for Slicer's Segment Editor module: that module edits with the
scene's segment editor node of singleton tag ``"SegmentEditor"`` (its ``selectParameterNode``), so setting that
node's segmentation, source volume and selected segment here is what the module shows once selected.
"Use as expert label" exports the corrected ``INFECTION_SEGMENT`` on the CT's exact grid as a uint8 0/1 volume
(written by :func:`volumes.write_nrrd`, uploaded with ``PUT .../label?format=nrrd``). The project's volumes are
listed with whether each has an expert label (``GET .../labels``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import slicer

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.geometry import ijk_to_ras_matrix
from CovidActiveLearningLib.mrml import MrmlContext
from CovidActiveLearningLib.prediction import INFECTION_SEGMENT, exported_labelmap
from CovidActiveLearningLib.volumes import VolumeSnapshot

SEGMENT_EDITOR_TAG = "SegmentEditor"  # the singleton tag of the Segment Editor module's parameter node


@dataclass(frozen=True)
class EditingTarget:
    """What Slicer's Segment Editor module will edit: its parameter node (``vtkMRMLSegmentEditorNode``, singleton
    ``SEGMENT_EDITOR_TAG``), the segmentation, the source volume (the CT) and the selected segment's id."""

    editor_node: object
    segmentation_node: object
    source_volume: object
    segment_id: str


def prepare_for_editing(context: MrmlContext, segmentation_node, reference_volume) -> EditingTarget:
    """Make the scene's Segment Editor parameter node edit the ``INFECTION_SEGMENT`` of ``segmentation_node`` over
    the CT ``reference_volume`` (created when the scene has none); the segmentation is shown in the slice views.

    Raises:
        UserFacingError: no segmentation or CT, or no ``INFECTION_SEGMENT`` segment in it.
    """
    segment_id = infection_segment_id(segmentation_node)
    if reference_volume is None:
        raise UserFacingError("The CT of this prediction is no longer in the scene; load it and predict again.")
    editor = context.scene.GetSingletonNode(SEGMENT_EDITOR_TAG, "vtkMRMLSegmentEditorNode")
    if editor is None:
        editor = slicer.vtkMRMLSegmentEditorNode()
        editor.SetSingletonTag(SEGMENT_EDITOR_TAG)
        editor = context.scene.AddNode(editor)
    editor.SetAndObserveSegmentationNode(segmentation_node)
    editor.SetAndObserveSourceVolumeNode(reference_volume)
    editor.SetSelectedSegmentID(segment_id)
    display = segmentation_node.GetDisplayNode()
    if display is not None:
        display.SetVisibility(True)
        display.SetSegmentVisibility(segment_id, True)
    return EditingTarget(editor, segmentation_node, reference_volume, segment_id)


def infection_segment_id(segmentation_node) -> str:
    """The id of the segmentation's ``INFECTION_SEGMENT`` segment.

    Raises:
        UserFacingError: no segmentation (None or removed from its scene), or no segment of that name.
    """
    if segmentation_node is None or segmentation_node.GetScene() is None:
        raise UserFacingError("There is no prediction to correct; predict the volume first.")
    segment_id = segmentation_node.GetSegmentation().GetSegmentIdBySegmentName(INFECTION_SEGMENT)
    if not segment_id:
        raise UserFacingError(
            f"The segmentation '{segmentation_node.GetName()}' has no '{INFECTION_SEGMENT}' segment; "
            "predict the volume again, or name the corrected segment so."
        )
    return segment_id


def expert_label(context: MrmlContext, segmentation_node, reference_volume) -> VolumeSnapshot:
    """The ``INFECTION_SEGMENT`` of ``segmentation_node`` as uint8 ``[K, J, I]`` voxels (1: infection, 0: not) on the
    grid of ``reference_volume`` (its voxel counts and IJK-to-RAS), ready for :func:`volumes.write_nrrd`.

    Raises:
        UserFacingError: as :func:`infection_segment_id`; no CT; the segment is empty (an expert label with no
            infection is refused: it would teach the 3D model that the CT is clean).
    """
    segment_id = infection_segment_id(segmentation_node)
    if reference_volume is None:
        raise UserFacingError("The CT of this segmentation is no longer in the scene; load it and predict again.")
    with exported_labelmap(context, segmentation_node, [segment_id], reference_volume) as labelmap:
        voxels = (slicer.util.arrayFromVolume(labelmap) != 0).astype(np.uint8)
        matrix = ijk_to_ras_matrix(labelmap)
    if not voxels.any():
        raise UserFacingError(
            f"The '{INFECTION_SEGMENT}' segment of '{segmentation_node.GetName()}' is empty; paint the infection in "
            "the Segment Editor before using it as an expert label."
        )
    return VolumeSnapshot(voxels, matrix, key=("expert label", segmentation_node.GetID()))


@dataclass(frozen=True)
class ProjectVolume:
    """One volume of the backend's project and its expert label (``expert_voxels``: its infected voxels; None when
    the volume has no expert label)."""

    id: int
    name: str
    expert_voxels: int | None

    @property
    def expert_labelled(self) -> bool:
        return self.expert_voxels is not None

    def text(self) -> str:
        """The list's line: ``"chest (id 3): expert label, 1234 voxels"`` or ``"chest (id 3)"``."""
        line = f"{self.name} (id {self.id})"
        return f"{line}: expert label, {self.expert_voxels} voxels" if self.expert_labelled else line


def project_volumes(volumes: Iterable[Mapping[str, Any]], labels: Iterable[Mapping[str, Any]]) -> list[ProjectVolume]:
    """The project's volumes by id, each with its expert label, from ``GET .../volumes`` and ``GET .../labels``.

    Raises:
        ValueError: a volume or label without its id (or name, voxel count).
    """
    try:
        expert = {int(label["volume_id"]): int(label["foreground_voxels"]) for label in labels}
        listed = [ProjectVolume(int(v["id"]), str(v["name"]), expert.get(int(v["id"]))) for v in volumes]
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"a malformed volume or label list from the backend: {error!r}") from None
    return sorted(listed, key=lambda volume: volume.id)
