"""A project's volumes and answers as 2D training data: axial slices, an AnnotationState, known pixels.

A volume ``v`` is case ``str(v)``; its slice ``k`` is ``f"{v}:{k}"`` (as
:func:`covidal.data.slices.load_volume_slices` names them). A store answer for
region ``r`` of slice ``k`` becomes a :class:`RegionLabel` with its points
``(i, j, k)`` as native ``(row j, col i)``. Label maps then follow
:class:`AnnotationState`: a background region trains all its pixels as
background, an infection region only its clicked points, the rest is ignored.
A region answered in two cycles counts once (the oldest answer).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from covidal.annotation.state import AnnotationState, RegionLabel
from covidal.data.slices import SliceRecord, load_volume_slices
from covidal.data.volume import Volume
from covidal.data.window import HUWindow
from covidal.errors import CovidalError
from covidal.regions.grid import RegionGrid, RegionId
from covidal.service.store import records
from covidal.service.store.store import Store
from covidal.service.volumes import read_stored_volume

MAX_EXPANDED_BYTES = 64 * 2**30  # volumes were checked at upload; this only bounds re-reading a DICOM zip


@dataclass(frozen=True)
class AnsweredRegion:
    """One stored answer placed on its slice: volume, slice ``k``, region index, answer, ``(i, j, k)`` points."""

    volume_id: int
    k: int
    region: int
    answer: records.Answer
    points: tuple[records.Point, ...]
    effort_seconds: float


@dataclass
class ProjectAnnotations:
    """The answered slices of a project.

    Attributes:
        slices: the axial slices with at least one answered region, by volume then ``k``.
        state: every answer, on the project's region grid.
        answers: how many answers (one per region), and ``effort_seconds`` their summed effort.
    """

    slices: list[SliceRecord]
    state: AnnotationState
    answers: int
    effort_seconds: float
    regions: tuple[AnsweredRegion, ...] = ()

    def since(self, count: int) -> ProjectAnnotations:
        """The answers after the first ``count`` (answers are kept oldest first, so a model trained on
        ``count`` answers never saw these) and only the slices they are on; ``answers`` and ``effort_seconds``
        count them alone."""
        later = self.regions[count:]
        places = {(str(a.volume_id), f"{a.volume_id}:{a.k}") for a in later}
        slices = [s for s in self.slices if (s.case_id, s.slice_id) in places]
        state = AnnotationState(self.state.grid, {(s.case_id, s.slice_id): s.image.shape for s in slices})
        state.add_many(region_label(answer) for answer in later)
        return ProjectAnnotations(slices, state, len(later), float(sum(a.effort_seconds for a in later)), later)


def answered_regions(store: Store, project_id: int) -> list[AnsweredRegion]:
    """Every answer of the project with its suggestion's place, oldest first, one per region."""
    seen: set[tuple[int, int, int]] = set()
    answered = []
    for annotation in store.annotation_history(project_id):
        suggestion = store.get_suggestion(project_id, annotation.suggestion_id)
        place = (suggestion.volume_id, suggestion.k, suggestion.region)
        if place in seen:
            continue
        seen.add(place)
        answered.append(AnsweredRegion(*place, annotation.answer, annotation.points, annotation.effort_seconds))
    return answered


def region_label(answer: AnsweredRegion) -> RegionLabel:
    """The :class:`RegionLabel` of a stored answer (points ``(i, j, k)`` -> ``(row j, col i)``)."""
    region = RegionId(str(answer.volume_id), f"{answer.volume_id}:{answer.k}", answer.region)
    return RegionLabel(region, answer.answer.value, tuple((j, i) for i, j, _ in answer.points))


def read_project_volume(store: Store, volume: records.Volume) -> Volume:
    """The stored volume's voxels, ``array`` ``[K, J, I]``."""
    return read_stored_volume(store.files.path(volume.path), volume.format, MAX_EXPANDED_BYTES)


def project_annotations(store: Store, project: records.Project, window: HUWindow) -> ProjectAnnotations:
    """The project's answered slices and their answers (only the volumes with answers are read).

    Raises:
        ValueError: an answer that does not fit its slice (the store checked it, so a damaged store).
    """
    answered = answered_regions(store, project.id)
    grid = RegionGrid(project.grid_k)
    wanted = {(a.volume_id, a.k) for a in answered}
    slices: list[SliceRecord] = []
    for volume_id in sorted({volume_id for volume_id, _ in wanted}):
        volume = read_project_volume(store, store.get_volume(project.id, volume_id))
        slices += [
            record
            for record in load_volume_slices(volume, None, str(volume_id), window)
            if (volume_id, record.slice_index) in wanted
        ]
    state = AnnotationState(grid, {(s.case_id, s.slice_id): s.image.shape for s in slices})
    state.add_many(region_label(answer) for answer in answered)
    return ProjectAnnotations(
        slices, state, len(answered), float(sum(a.effort_seconds for a in answered)), tuple(answered)
    )


def known_pixel_counts(
    state: AnnotationState, slices: Iterable[SliceRecord], predictions: Iterable[np.ndarray]
) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of binary ``predictions`` ``[H, W]`` against the known pixels of each slice's label map.

    Known pixels are those of :meth:`AnnotationState.label_map` other than -1 (background regions and clicks).
    """
    tp = fp = fn = 0
    for record, prediction in zip(slices, predictions, strict=True):
        target = state.label_map((record.case_id, record.slice_id))
        predicted = np.asarray(prediction, dtype=bool)
        tp += int(np.sum(predicted & (target == 1)))
        fp += int(np.sum(predicted & (target == 0)))
        fn += int(np.sum(~predicted & (target == 1)))
    return tp, fp, fn


def answer_agreement(data: ProjectAnnotations, predictions: Iterable[np.ndarray]) -> int:
    """How many of ``data``'s answers the binary ``predictions`` ``[H, W]`` (one per slice of ``data.slices``, native
    grid) agree with: an infection answer when the model calls a clicked pixel infected, a background answer when it
    calls no pixel of the region infected.

    A Dice on these pixels means little: an infection answer gives one known pixel, a background answer hundreds.
    """
    predicted = {
        (s.case_id, s.slice_id): np.asarray(p, dtype=bool) for s, p in zip(data.slices, predictions, strict=True)
    }
    agreed = 0
    for answer in data.regions:
        label = region_label(answer)
        infected = predicted[label.key]
        if answer.answer is records.Answer.INFECTION:
            agreed += any(infected[row, col] for row, col in label.points)
        else:
            box = data.state.grid.boxes(infected.shape)[answer.region]
            agreed += not infected[box.slices].any()
    return agreed


def dice_of(tp: int, fp: int, fn: int) -> float | None:
    """``2 tp / (2 tp + fp + fn)``, or None when nothing is positive in either (undefined)."""
    denominator = 2 * tp + fp + fn
    return None if denominator == 0 else 2 * tp / denominator


def project_window(settings: dict) -> HUWindow:
    """The HU window of the project's ``"window": [level, width]`` setting, else the lung window.

    Raises:
        CovidalError: a ``window`` setting that is not two numbers with a positive width.
    """
    value = settings.get("window")
    if value is None:
        return HUWindow()
    try:
        level, width = value
        return HUWindow(float(level), float(width))
    except (TypeError, ValueError) as error:
        raise CovidalError(
            f"project setting window must be [level, width] in HU with width > 0, got {value!r}"
        ) from error


def answer_volume(answers: Iterable[AnsweredRegion], volume_id: int, shape: tuple[int, int, int], grid: RegionGrid):
    """The answers of one volume as an answer label (:mod:`covidal.volumes.answer_labels`) on its own grid.

    Args:
        answers: answered regions (those of other volumes are skipped).
        volume_id: the volume.
        shape: the volume's ``[K, J, I]``.
        grid: the project's region grid.

    Returns:
        int8 ``[K, J, I]``: 1 at clicks, 0 in background answers, -1 elsewhere (as :meth:`AnnotationState.label_map`).
    """
    mine = [(answer.k, region_label(answer)) for answer in answers if answer.volume_id == volume_id]
    state = AnnotationState(grid, {label.key: shape[1:] for _, label in mine})
    state.add_many(label for _, label in mine)
    labels = np.full(shape, -1, dtype=np.int8)
    for k, key in {k: label.key for k, label in mine}.items():  # each answered slice once
        labels[k] = state.label_map(key)
    return labels
