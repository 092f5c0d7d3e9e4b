"""A project's current model in the HTTP process, per axis: 2D slices, 3D volumes (these import torch)."""
