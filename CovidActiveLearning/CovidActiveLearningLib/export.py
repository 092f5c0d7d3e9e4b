"""Export of the results: the segmentation (``.seg.nrrd``), its labelmap on the CT grid (``.nrrd``), the points.

Every file is first written under a temporary name in the target folder and renamed once all writes
succeeded, so a failed export leaves no half-written or half-updated set of files behind.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import slicer

from CovidActiveLearningLib.errors import UserFacingError
from CovidActiveLearningLib.mrml import MrmlContext
from CovidActiveLearningLib.prediction import INFECTION_SEGMENT, exported_labelmap

SEGMENTATION_SUFFIX = ".seg.nrrd"
LABELMAP_SUFFIX = ".nrrd"
POINTS_SUFFIX = "_points.mrk.json"


@dataclass(frozen=True)
class ExportedFiles:
    """Absolute paths of the written files (``points`` is None when no points node was given)."""

    segmentation: Path
    labelmap: Path
    points: Path | None

    def paths(self) -> list[Path]:
        """The files written, in the order above."""
        return [path for path in (self.segmentation, self.labelmap, self.points) if path is not None]


def export_results(
    context: MrmlContext, segmentation_node, reference_volume, points_node, folder: Path, stem: str
) -> ExportedFiles:
    """Write ``{stem}.seg.nrrd``, ``{stem}.nrrd`` and (with a points node) ``{stem}_points.mrk.json`` to ``folder``.

    The labelmap has the reference volume's exact grid (voxel counts, spacing, origin, directions);
    its label values follow the segment order with the ``INFECTION_SEGMENT`` segment first, so a
    prediction's labelmap holds 1 = infection and 0 elsewhere (all zero for an empty segment). The
    ``.seg.nrrd`` keeps the segment names and colours; the points are in Slicer's markups JSON.

    Args:
        segmentation_node: a vtkMRMLSegmentationNode with at least one segment.
        reference_volume: the CT whose grid the labelmap takes.
        points_node: a markups node, or None.
        folder: created when missing.
        stem: file name stem (no folder separators).

    Raises:
        UserFacingError: no segmentation or reference, no segment, a bad stem, the folder cannot be
            created or written, or a writer failed.
    """
    segment_ids = _segment_ids_infection_first(segmentation_node)
    if reference_volume is None:
        raise UserFacingError("Select the CT volume the segmentation belongs to.")
    folder = _writable_folder(folder)
    stem = _checked_stem(stem)
    targets = {"segmentation": folder / f"{stem}{SEGMENTATION_SUFFIX}", "labelmap": folder / f"{stem}{LABELMAP_SUFFIX}"}
    if points_node is not None:
        targets["points"] = folder / f"{stem}{POINTS_SUFFIX}"
    partials = {key: _partial_name(path) for key, path in targets.items()}
    try:
        _write_segmentation(segmentation_node, partials["segmentation"])
        _write_labelmap(context, segmentation_node, segment_ids, reference_volume, partials["labelmap"])
        if points_node is not None:
            _write_points(points_node, partials["points"])
        for key, partial in partials.items():
            os.replace(partial, targets[key])
    except OSError as error:  # e.g. a folder already holds a target's name
        raise UserFacingError(f"Could not write the export files to {folder} ({error.strerror or error}).") from None
    finally:
        for partial in partials.values():
            partial.unlink(missing_ok=True)
    return ExportedFiles(targets["segmentation"], targets["labelmap"], targets.get("points"))


def _segment_ids_infection_first(segmentation_node) -> list[str]:
    """All segment ids, the ``INFECTION_SEGMENT`` one first (so it gets label 1), the rest in their order."""
    if segmentation_node is None:
        raise UserFacingError("There is no segmentation to export; predict the volume first.")
    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(index) for index in range(segmentation.GetNumberOfSegments())]
    if not ids:
        raise UserFacingError(f"The segmentation '{segmentation_node.GetName()}' has no segment to export.")
    infection = segmentation.GetSegmentIdBySegmentName(INFECTION_SEGMENT)
    return sorted(ids, key=lambda segment_id: segment_id != infection)


def _writable_folder(folder: Path) -> Path:
    folder = Path(folder).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UserFacingError(f"Cannot create the export folder {folder} ({error.strerror}).") from None
    if not os.access(folder, os.W_OK):
        raise UserFacingError(f"The export folder {folder} is not writable; choose another folder.")
    return folder


def _checked_stem(stem: str) -> str:
    stem = str(stem).strip()
    if not stem or stem in {".", ".."} or os.sep in stem or (os.altsep and os.altsep in stem):
        raise UserFacingError(f"'{stem}' cannot be used as an export file name.")
    return stem


def _partial_name(path: Path) -> Path:
    """A unique hidden temporary name beside ``path`` ending like it (the writers pick the format by the suffix)."""
    return path.with_name(f".partial-{uuid.uuid4().hex[:8]}-{path.name}")


def _write_segmentation(segmentation_node, path: Path) -> None:
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    storage.SetUseCompression(True)
    if not storage.WriteData(segmentation_node):
        raise UserFacingError(f"Could not write the segmentation to {path.parent}.")


def _write_labelmap(
    context: MrmlContext, segmentation_node, segment_ids: list[str], reference_volume, path: Path
) -> None:
    with exported_labelmap(context, segmentation_node, segment_ids, reference_volume) as labelmap:
        storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
        storage.SetFileName(str(path))
        storage.SetUseCompression(True)
        if not storage.WriteData(labelmap):
            raise UserFacingError(f"Could not write the labelmap to {path.parent}.")


def _write_points(points_node, path: Path) -> None:
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()  # constructed directly: AddNewNodeByClass fails headless
    storage.SetFileName(str(path))
    if not storage.WriteData(points_node):
        raise UserFacingError(f"Could not write the points to {path.parent}.")
