"""A stored volume's lungs (:func:`covidal.volumes.lungs.find_lungs`), found once and kept in the service's cache:
the first cycle ranks regions inside the aerated lungs, and every prediction is restricted to the filled lungs."""

from __future__ import annotations

from dataclasses import dataclass

from covidal.data.volume import Volume
from covidal.errors import CovidalError
from covidal.service.cache import ServiceCache, VolumeKey
from covidal.volumes.lungs import Lungs, find_lungs


@dataclass(frozen=True)
class LungsKey:
    """What a volume's lungs depend on: the volume's content."""

    volume: VolumeKey


@dataclass(frozen=True)
class NoLungs:
    """A volume in which no lungs were found (not a chest CT in HU), and why."""

    reason: str
    nbytes: int = 0


def volume_lungs(cache: ServiceCache, key: VolumeKey, volume: Volume) -> Lungs | NoLungs:
    """The lungs of ``volume`` (whose content ``key`` names), from the cache when found before."""

    def load() -> Lungs | NoLungs:
        try:
            return find_lungs(volume)
        except CovidalError as error:
            return NoLungs(str(error))

    return cache.derived(LungsKey(key), load, lambda lungs: lungs.nbytes)
