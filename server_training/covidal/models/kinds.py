"""The one list of network kinds a user, a run or a project can choose, and which axis each works on."""

from __future__ import annotations

from enum import StrEnum


class ModelKind(StrEnum):
    """A segmentation network: 2D on axial slices (``unet``, ``fcn8``) or 3D on volumes (``unet3d``)."""

    UNET = "unet"
    FCN8 = "fcn8"
    UNET3D = "unet3d"

    @property
    def dims(self) -> int:
        """2 for a network of slices, 3 for a network of volumes."""
        return 3 if self is ModelKind.UNET3D else 2


SLICE_MODEL_KINDS = tuple(kind for kind in ModelKind if kind.dims == 2)
VOLUME_MODEL_KINDS = tuple(kind for kind in ModelKind if kind.dims == 3)
