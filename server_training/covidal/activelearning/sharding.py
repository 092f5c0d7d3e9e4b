"""Split pool scoring over the processes of an initialised ``torch.distributed`` group and gather the results.

Scoring is embarrassingly parallel: each process scores every ``world_size``-th
slice and the scores are gathered on every process with ``all_gather_object``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import torch.distributed as dist

T = TypeVar("T")


def shard_for_rank(items: Sequence[T], rank: int, world_size: int) -> list[T]:
    """The items of process ``rank``: positions ``rank, rank + world_size, ...`` (no padding).

    Raises:
        ValueError: world_size < 1 or rank outside [0, world_size).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} is outside a world of {world_size} process(es)")
    return list(items[rank::world_size])


def distributed_world() -> tuple[int, int]:
    """``(rank, world_size)`` of the initialised process group, ``(0, 1)`` without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def gather_shards(local: list[T], world_size: int) -> list[T]:
    """Every process's ``shard_for_rank`` results, back in the original order (all processes must call this)."""
    shards: list[list[T] | None] = [None] * world_size
    dist.all_gather_object(shards, local)
    total = sum(len(shard) for shard in shards)
    merged: list[T] = [None] * total  # type: ignore[list-item]
    for rank, shard in enumerate(shards):
        merged[rank::world_size] = shard
    return merged
