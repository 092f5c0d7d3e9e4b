"""How long annotation takes, in seconds: a small, replaceable model for comparing labelling schemes.

:class:`ClickEffort` prices the region answers this project asks for: a fixed
time per click or tag. :class:`PolygonEffort` prices the per-pixel alternative,
outlining every lesion with a polygon, at a fixed time per polygon vertex;
:class:`OutlineEffort` prices a region answered that way (the simulated ``mask``
protocol), a tag for an empty one.

Counting a polygon's vertices: each 8-connected infected component (holes
filled, since a clinician outlines a lesion, not its holes) is padded with one
background pixel and traced with ``skimage.measure.find_contours`` at level
0.5, which yields one vertex per boundary pixel edge. That outline is
simplified with ``skimage.measure.approximate_polygon`` (Douglas-Peucker) at a
tolerance of 1 pixel by default, so a straight border costs two vertices, not
one per pixel, as a human would draw it: a square lesion costs 4 vertices, a
disc of radius 10 about 8. Tracing starts at the outline's top-left point,
which is a corner of any polygon around the component, so the start adds no
spurious vertex. A polygon has at least 3 vertices: a 1-pixel lesion costs 3.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping

import numpy as np
from scipy import ndimage
from skimage.measure import approximate_polygon, find_contours

from covidal.annotation.reference import ReferenceMasks
from covidal.annotation.state import Answer, RegionLabel, SliceKey
from covidal.regions.grid import RegionGrid, RegionId
from covidal.validation import check_real

DEFAULT_SECONDS = 3.0
DEFAULT_TOLERANCE = 1.0
"""Douglas-Peucker tolerance in pixels for polygon outlines."""
MIN_POLYGON_VERTICES = 3

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)


class EffortModel(ABC):
    """Seconds a clinician spends on one region answer."""

    @abstractmethod
    def seconds(self, label: RegionLabel) -> float:
        """Seconds spent producing ``label``."""

    def total_seconds(self, labels: Iterable[RegionLabel]) -> float:
        """Sum of :meth:`seconds` over ``labels``."""
        return float(sum(self.seconds(label) for label in labels))


class ClickEffort(EffortModel):
    """A fixed time per click: an infection answer with ``n`` points costs ``n`` clicks, a background tag one.

    Args:
        seconds_per_answer: seconds per point or tag (positive, finite).

    Raises:
        ValueError: ``seconds_per_answer`` is not positive and finite.
    """

    def __init__(self, seconds_per_answer: float = DEFAULT_SECONDS) -> None:
        self.seconds_per_answer = _positive_seconds(seconds_per_answer, "seconds_per_answer")

    def seconds(self, label: RegionLabel) -> float:
        clicks = len(label.points) if label.answer is Answer.INFECTION else 1
        return clicks * self.seconds_per_answer


class PolygonEffort(EffortModel):
    """A fixed time per polygon vertex, outlining each infected component (see the module docstring).

    As an :class:`EffortModel`, a label costs what outlining its region's
    infection would cost (:meth:`region_seconds`), whatever the answer was.

    Args:
        masks: ``(case, slice)`` -> native ``[H, W]`` reference mask (non-zero = infection).
        grid: how slices are cut into ``K`` regions.
        seconds_per_vertex: positive, finite.
        tolerance: Douglas-Peucker tolerance in pixels, non-negative (0 keeps
            every boundary-pixel vertex).

    Raises:
        ValueError: bad seconds or tolerance, or a mask that is not 2-D or too small for ``grid``.
    """

    def __init__(
        self,
        masks: Mapping[SliceKey, np.ndarray],
        grid: RegionGrid,
        seconds_per_vertex: float = DEFAULT_SECONDS,
        tolerance: float = DEFAULT_TOLERANCE,
    ) -> None:
        self.seconds_per_vertex = _positive_seconds(seconds_per_vertex, "seconds_per_vertex")
        self.tolerance = check_real("tolerance (pixels)", tolerance, minimum=0.0)
        self.grid = grid
        self._reference = ReferenceMasks(masks, grid)

    def seconds(self, label: RegionLabel) -> float:
        return self.region_seconds(label.region)

    def region_seconds(self, region: RegionId) -> float:
        """Seconds to outline the infection inside one region's native box (components cut at its edges); 0 if none.

        Raises:
            ValueError: no mask for the region's slice, or its index is ``>= K``.
        """
        _, infected = self._reference.in_region(region)
        return polygon_vertices(infected, self.tolerance) * self.seconds_per_vertex

    def slice_seconds(self, key: SliceKey) -> float:
        """Seconds to outline every infected component of a whole slice (components not cut by regions).

        Raises:
            ValueError: no mask for ``key``.
        """
        return polygon_vertices(self._reference.whole(key), self.tolerance) * self.seconds_per_vertex

    def pool_seconds(self, keys: Iterable[SliceKey]) -> float:
        """Sum of :meth:`slice_seconds` over ``keys``."""
        return float(sum(self.slice_seconds(key) for key in keys))


class OutlineEffort(EffortModel):
    """The ``mask`` answer protocol's price: outlining a region's infection (:meth:`PolygonEffort.region_seconds`),
    or one tag for a region without any.

    Args:
        polygon: prices the outlines.
        seconds_per_tag: the price of an empty region (positive, finite).

    Raises:
        ValueError: ``seconds_per_tag`` is not positive and finite.
    """

    def __init__(self, polygon: PolygonEffort, seconds_per_tag: float = DEFAULT_SECONDS) -> None:
        self.polygon = polygon
        self.seconds_per_tag = _positive_seconds(seconds_per_tag, "seconds_per_tag")

    def seconds(self, label: RegionLabel) -> float:
        return self.polygon.region_seconds(label.region) or self.seconds_per_tag


def polygon_vertices(mask: np.ndarray, tolerance: float = DEFAULT_TOLERANCE) -> int:
    """Total vertices of the polygons outlining each 8-connected component of ``mask`` ``[h, w]`` (bool).

    Each component costs at least :data:`MIN_POLYGON_VERTICES`; an empty mask costs 0.
    """
    labels, _ = ndimage.label(mask, structure=_EIGHT_CONNECTED)
    total = 0
    for index, box in enumerate(ndimage.find_objects(labels), start=1):
        component = ndimage.binary_fill_holes(labels[box] == index)
        total += _outline_vertices(component, tolerance)
    return total


def _outline_vertices(component: np.ndarray, tolerance: float) -> int:
    """Vertices of the simplified outline of one hole-free 8-connected component ``[h, w]``."""
    padded = np.pad(component, 1).astype(np.float64)
    # "high": infected pixels touching at a corner are one outline, matching 8-connectivity.
    outline = max(find_contours(padded, 0.5, fully_connected="high"), key=len)
    ring = outline[:-1]  # closed contour: the last point repeats the first
    start = int(np.lexsort((ring[:, 1], ring[:, 0]))[0])
    ring = np.roll(ring, -start, axis=0)
    closed = np.vstack([ring, ring[:1]])
    polygon = approximate_polygon(closed, tolerance)
    return max(len(polygon) - 1, MIN_POLYGON_VERTICES)


def _positive_seconds(value: float, name: str) -> float:
    """``value`` as a float; ConfigError unless positive and finite."""
    return check_real(f"{name} (seconds)", value, above=0.0)
