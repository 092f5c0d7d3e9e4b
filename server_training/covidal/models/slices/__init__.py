"""2D networks of axial slices: a trunk, then a dropout + 1x1 head (resampled by MC dropout)."""
