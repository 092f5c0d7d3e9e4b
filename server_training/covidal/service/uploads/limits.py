"""How much an upload may decode to, and the voxel layout a header announces."""

from __future__ import annotations

import math
from dataclasses import dataclass

from covidal.service.volumes import UploadTooLarge

ZIP_BYTES_PER_VOXEL = 4  # a DICOM zip may expand to this many bytes per allowed voxel (32-bit pixels, or headers)
DECODED_BYTES_PER_VOXEL = 8  # the widest voxel a reader may produce (float64, e.g. a rescaled NIfTI or DICOM)


@dataclass(frozen=True)
class DecodeLimits:
    """Limits of decoding one upload.

    Attributes:
        max_voxels: the most voxels a volume may hold.
        timeout_s: the longest its decoding may take, wall clock (CPU time is held to the same).
    """

    max_voxels: int
    timeout_s: float

    @property
    def max_zip_bytes(self) -> int:
        """The most bytes a DICOM zip may expand to."""
        return self.max_voxels * ZIP_BYTES_PER_VOXEL

    def check_voxels(self, layout: VoxelLayout, what: str) -> None:
        """UploadTooLarge (413) when ``layout`` holds more than :attr:`max_voxels`; ``what`` names the upload."""
        if layout.voxels > self.max_voxels:
            dims = " x ".join(str(size) for size in layout.dims)
            raise UploadTooLarge(
                f"{what} holds {layout.voxels} voxels ({dims}), over the limit of {self.max_voxels} "
                "(covidal serve --max-voxels)"
            )


@dataclass(frozen=True)
class VoxelLayout:
    """What a header says its voxels are: ``dims`` (the sizes of its axes, fastest first) and bytes per voxel."""

    dims: tuple[int, ...]
    bytes_per_voxel: int

    @property
    def voxels(self) -> int:
        return math.prod(self.dims)

    @property
    def nbytes(self) -> int:
        return self.voxels * self.bytes_per_voxel
