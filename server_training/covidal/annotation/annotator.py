"""A simulated clinician that answers regions from reference masks, for active-learning experiments.

For a region whose native box holds infection, the annotator clicks one
infected pixel of that box, drawn uniformly at random: the generator is
:func:`~covidal.annotation.state.region_rng` ``(seed, region)``, i.e.
``np.random.default_rng([seed, crc32(case), crc32(slice), region])``, and the
click is the ``rng.integers(n)``-th of the box's ``n`` infected pixels in
row-major order. A point therefore depends on the seed and the region alone,
never on which regions were asked before. A region without infection gets the
background tag, which involves no randomness.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from covidal.annotation.reference import ReferenceMasks
from covidal.annotation.state import Answer, RegionLabel, SliceKey, check_seed, region_rng
from covidal.regions.grid import RegionGrid, RegionId


class SimulatedAnnotator:
    """Answers regions from reference infection masks.

    Args:
        masks: ``(case, slice)`` -> native ``[H, W]`` mask (uint8 or bool; non-zero = infection).
        grid: how slices are cut into ``K`` regions.
        seed: non-negative integer; kept as :attr:`seed` so an experiment can record it.

    Raises:
        ValueError: a mask that is not 2-D or too small for ``grid``, or a bad seed.
    """

    def __init__(self, masks: Mapping[SliceKey, np.ndarray], grid: RegionGrid, seed: int) -> None:
        self.seed = check_seed(seed)
        self.grid = grid
        self._reference = ReferenceMasks(masks, grid)

    @property
    def slice_shapes(self) -> dict[SliceKey, tuple[int, int]]:
        """Native ``(H, W)`` of every slice with a mask, e.g. for :class:`AnnotationState`."""
        return self._reference.shapes

    def answer(self, region: RegionId) -> RegionLabel:
        """The simulated answer for one region: one click on its infection, or the background tag.

        Raises:
            ValueError: the region's slice has no mask, or its index is ``>= K``.
        """
        box, infected = self._reference.in_region(region)
        infected_rows, infected_cols = np.nonzero(infected)
        if infected_rows.size == 0:
            return RegionLabel(region, Answer.BACKGROUND)
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
