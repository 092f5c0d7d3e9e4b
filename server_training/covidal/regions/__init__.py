"""Regions: each axial slice cut into ``K`` equal rectangles, the unit that active learning ranks and queries."""

from covidal.regions.grid import Box, RegionGrid, RegionId

__all__ = ["Box", "RegionGrid", "RegionId"]
