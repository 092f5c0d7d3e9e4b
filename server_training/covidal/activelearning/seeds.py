"""Named, reproducible seeds: every random draw of a run is derived from its one seed under a purpose name."""

from __future__ import annotations

import zlib


def derived_seed(seed: int, purpose: str, index: int = 0) -> int:
    """A 31-bit seed for ``purpose`` (e.g. ``"dropout-masks"``) and ``index`` (e.g. the cycle or the pool part),
    stable across processes and platforms.

    CRC-32 rather than ``hash``, which Python salts per process.
    """
    return zlib.crc32(f"{seed}:{purpose}:{index}".encode()) & 0x7FFFFFFF
