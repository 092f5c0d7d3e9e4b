"""The unlabelled pool of a simulation: slices, their network inputs and reference masks, by slice key."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from covidal.data.slices import SliceRecord
from covidal.errors import CovidalError
from covidal.training.dataset import network_input

SliceKey = tuple[str, str]
"""``(case, slice)``: what identifies a slice in region ids, annotations and scores."""


def slice_key(record: SliceRecord) -> SliceKey:
    return (record.case_id, record.slice_id)


@dataclass
class Pool:
    """Slices the active learner may query.

    Attributes:
        records: the slices, in a fixed order.
        images: ``[N, 1, S, S]`` standardised network inputs, in the same order.
    """

    records: list[SliceRecord]
    images: Tensor

    @classmethod
    def build(cls, records: Sequence[SliceRecord], image_size: int) -> Pool:
        """Prepare the pool once; every cycle reuses its network inputs.

        Raises:
            CovidalError: no slices, a slice given twice, or a slice without a reference mask
                (the simulated annotator answers from it).
        """
        if not records:
            raise CovidalError("the pool holds no slices")
        keys = [slice_key(r) for r in records]
        if len(set(keys)) != len(keys):
            raise CovidalError("the pool holds a slice twice; give each slice once")
        missing = [r.slice_id for r in records if r.mask is None]
        if missing:
            raise CovidalError(
                f"the simulated annotator needs reference masks; {len(missing)} pool slice(s) have none "
                f"(e.g. {missing[0]})"
            )
        return cls(list(records), network_input([r.image for r in records], image_size))

    @property
    def keys(self) -> list[SliceKey]:
        return [slice_key(r) for r in self.records]

    @property
    def shapes(self) -> dict[SliceKey, tuple[int, int]]:
        """Native ``(H, W)`` of every slice."""
        return {slice_key(r): r.image.shape for r in self.records}

    @property
    def masks(self) -> dict[SliceKey, np.ndarray]:
        """Reference masks ``[H, W]`` in {0, 1}: what the simulated annotator sees."""
        return {slice_key(r): r.mask for r in self.records}

    def index_of(self, keys: Sequence[SliceKey]) -> list[int]:
        """Positions of ``keys`` in the pool."""
        position = {key: i for i, key in enumerate(self.keys)}
        return [position[key] for key in keys]

    def __len__(self) -> int:
        return len(self.records)
