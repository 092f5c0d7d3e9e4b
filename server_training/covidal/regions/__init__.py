"""Regions: each axial slice cut into ``K`` equal rectangles, the unit that active learning ranks and queries."""
