"""A simulated clinician that answers regions from reference masks, for active-learning experiments.

For a region whose native box holds infection, the annotator clicks one
infected pixel of that box, drawn uniformly at random: the generator is
:func:`~covidal.annotation.state.region_rng` ``(seed, region)``, i.e.
``np.random.default_rng([seed, crc32(case), crc32(slice), region])``, and the
click is the ``rng.integers(n)``-th of the box's ``n`` infected pixels in
row-major order. A point therefore depends on the seed and the region alone,
never on which regions were asked before. A region without infection gets the
background tag, which involves no randomness.

Under the ``mask`` answer protocol (:class:`AnswerProtocol`) the annotator delineates a region with infection
in full instead: the answer holds every infected pixel of the box and is ``outlined`` (the rest of the box is
background); an empty region still gets the background tag.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

import numpy as np

from covidal.annotation.reference import ReferenceMasks
from covidal.annotation.state import Answer, RegionLabel, SliceKey, check_seed, region_rng
from covidal.regions.grid import RegionGrid, RegionId
from covidal.validation import check_choice


class AnswerProtocol(StrEnum):
    """How the simulated clinician answers a region with infection: one click, or its full outline."""

    POINT = "point"
    MASK = "mask"


class SimulatedAnnotator:
    """Answers regions from reference infection masks.

    Args:
        masks: ``(case, slice)`` -> native ``[H, W]`` mask (uint8 or bool; non-zero = infection).
        grid: how slices are cut into ``K`` regions.
        seed: non-negative integer; kept as :attr:`seed` so an experiment can record it.
        protocol: one click (``point``) or the full outline (``mask``) of a region with infection.

    Raises:
        ValueError: a mask that is not 2-D or too small for ``grid``, a bad seed or an unknown protocol.
    """

    def __init__(
        self,
        masks: Mapping[SliceKey, np.ndarray],
        grid: RegionGrid,
        seed: int,
        protocol: AnswerProtocol = AnswerProtocol.POINT,
    ) -> None:
        self.seed = check_seed(seed)
        self.protocol = check_choice("answer protocol", protocol, AnswerProtocol)
        self.grid = grid
        self._reference = ReferenceMasks(masks, grid)

    @property
    def slice_shapes(self) -> dict[SliceKey, tuple[int, int]]:
        """Native ``(H, W)`` of every slice with a mask, e.g. for :class:`AnnotationState`."""
        return self._reference.shapes

    def answer(self, region: RegionId) -> RegionLabel:
        """The simulated answer for one region: one click on its infection (or its outline), or the background tag.

        Raises:
            ValueError: the region's slice has no mask, or its index is ``>= K``.
        """
        box, infected = self._reference.in_region(region)
        infected_rows, infected_cols = np.nonzero(infected)
        if infected_rows.size == 0:
            return RegionLabel(region, Answer.BACKGROUND)
        if self.protocol is AnswerProtocol.MASK:
            points = zip((box.row0 + infected_rows).tolist(), (box.col0 + infected_cols).tolist(), strict=True)
            return RegionLabel(region, Answer.INFECTION, tuple(points), outlined=True)
        pick = int(region_rng(self.seed, region).integers(infected_rows.size))
        point = (box.row0 + int(infected_rows[pick]), box.col0 + int(infected_cols[pick]))
        return RegionLabel(region, Answer.INFECTION, (point,))

    def answer_slice(self, key: SliceKey) -> list[RegionLabel]:
        """Answers for all ``K`` regions of one slice, in region order (a fully labelled slice).

        Raises:
            ValueError: the slice has no mask.
        """
        case, slice_id = key
        return [self.answer(RegionId(case, slice_id, index)) for index in range(self.grid.regions)]
