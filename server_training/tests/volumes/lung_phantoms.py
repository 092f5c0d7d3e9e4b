"""Chest phantoms in HU with known lungs, for the lung tests (tests/volumes) and the lung benchmark's tests."""

from __future__ import annotations

import numpy as np

from covidal.data.volume import Volume


def chest_phantom() -> tuple[Volume, np.ndarray]:
    """A 40 x 64 x 80 chest at 2 mm: body, two lungs with vessels, trachea and bronchi, bowel gas.

    Returns the CT and the true lung mask ``[K, J, I]`` (ellipsoids, vessels included).
    """
    k, j, i = np.ogrid[:40, :64, :80]
    hu = np.full((40, 64, 80), -1000, dtype=np.int16)
    hu[np.broadcast_to(((j - 32) / 28) ** 2 + ((i - 40) / 36) ** 2 <= 1, hu.shape)] = 40
    lungs = np.zeros(hu.shape, dtype=bool)
    for centre_i in (22, 58):
        lungs |= ((k - 18) / 12) ** 2 + ((j - 32) / 14) ** 2 + ((i - centre_i) / 11) ** 2 <= 1
    hu[lungs] = -850
    hu[16:19, 30:33, 20:23] = 40  # vessels inside each lung
    hu[16:19, 30:33, 57:60] = 40
    trachea = ((j - 32) ** 2 + (i - 40) ** 2 <= 9) & (k >= 22)
    bronchi = ((k - 22) ** 2 + (j - 32) ** 2 <= 4) & (i >= 28) & (i <= 52)
    hu[np.broadcast_to(trachea, hu.shape) | np.broadcast_to(bronchi, hu.shape)] = -1000
    hu[2:4, 40:42, 40:42] = -1000  # gas in the bowel
    return Volume(hu, spacing=(2.0, 2.0, 2.0)), lungs


def fine_chest_phantom() -> Volume:
    """The phantom at 0.8 mm in-plane (each voxel repeated 2 x 2), 127 x 159 so that neither side is even."""
    ct, _ = chest_phantom()
    fine = np.repeat(np.repeat(ct.array, 2, axis=1), 2, axis=2)[:, :127, :159]
    return Volume(np.ascontiguousarray(fine), spacing=(0.8, 0.8, 2.0))
