"""Data-parallel training over several processes (PyTorch DistributedDataParallel, launched with torchrun).

``covidal train --gpus N`` starts N processes through ``torch.distributed.run``
(``--standalone``: rendezvous on the loopback interface). Process ``rank`` of
``world_size`` trains on its own shard of every epoch: all processes shuffle the
slices with the same seed and rank r takes positions ``r, r + N, r + 2N, ...``
(as :class:`torch.utils.data.DistributedSampler` does), so the shards partition
the epoch. DDP averages the gradients over the processes, so with a per-sample
mean loss N processes of batch B take the same step as one process of batch N*B.
Backend: NCCL on CUDA (one GPU per process), gloo on the CPU (N is then a
process count; this is how the code path is tested).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from covidal.errors import CovidalError
from covidal.training.train_config import DeviceChoice

TORCHRUN_ENV = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


@dataclass(frozen=True)
class Shard:
    """This process's place among the training processes.

    Attributes:
        rank: 0 .. world_size - 1; rank 0 validates, writes the run folder and prints.
        world_size: number of processes (1: plain single-process training).
        local_rank: index of the process on its machine; its GPU index on CUDA.

    Raises:
        ValueError: world_size < 1 or a rank outside [0, world_size).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    def __post_init__(self) -> None:
        if self.world_size < 1:
            raise ValueError(f"world size must be at least 1, got {self.world_size}")
        if not 0 <= self.rank < self.world_size or self.local_rank < 0:
            raise ValueError(f"rank {self.rank} (local {self.local_rank}) is outside a world of {self.world_size}")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


SINGLE_PROCESS = Shard()


def shard_order(order: torch.Tensor, shard: Shard) -> torch.Tensor:
    """This rank's part of an epoch's order ``[N]``: every ``world_size``-th position from ``rank``.

    The order is first padded by wrapping around to a multiple of ``world_size``
    (as DistributedSampler does), so every rank gets the same number of items and
    therefore takes the same number of optimiser steps (DDP needs that). With one
    process the order is returned as it is.

    Returns:
        ``[ceil(N / world_size)]`` positions (``[N]`` for one process).
    """
    if not shard.is_distributed:
        return order
    total = -(-len(order) // shard.world_size) * shard.world_size
    padded = order.repeat(-(-total // max(len(order), 1)))[:total] if len(order) else order
    return padded[shard.rank :: shard.world_size]


def check_gpus(gpus: int, device: DeviceChoice) -> None:
    """Check that ``gpus`` processes can each have a GPU (``--device cpu`` runs them on the CPU instead).

    Raises:
        CovidalError: fewer CUDA GPUs than asked for, unless the device is ``cpu``.
    """
    if gpus < 1:
        raise CovidalError(f"--gpus must be at least 1, got {gpus}")
    if gpus == 1 or DeviceChoice(device) is DeviceChoice.CPU:
        return
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if available < gpus:
        raise CovidalError(
            f"--gpus {gpus} needs {gpus} CUDA GPUs but {available} are available; "
            f"--device cpu --gpus {gpus} runs {gpus} CPU processes (gloo) instead"
        )


def torchrun_command(processes: int, module: str, arguments: Sequence[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m module arguments...``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={processes}",
        "-m",
        module,
        *arguments,
    ]


def launch(processes: int, module: str, arguments: Sequence[str]) -> None:
    """Run ``module`` in ``processes`` processes under torchrun and wait (their output goes to ours).

    Raises:
        CovidalError: a process failed (its own error is printed above torchrun's report).
    """
    status = subprocess.run(torchrun_command(processes, module, arguments), check=False).returncode
    if status != 0:
        raise CovidalError(f"distributed training failed (torchrun exit status {status}); see the messages above")


def launched_by_torchrun() -> bool:
    """Whether this process is one of torchrun's workers (it sets RANK, WORLD_SIZE and LOCAL_RANK)."""
    return all(name in os.environ for name in TORCHRUN_ENV)


def init_process_group(device: DeviceChoice) -> Shard:
    """Join torchrun's process group: NCCL with one GPU per process on CUDA, gloo on the CPU.

    Raises:
        CovidalError: not started by torchrun, or CUDA asked for without a GPU for this process.
    """
    if not launched_by_torchrun():
        raise CovidalError("a distributed training worker must be started by torchrun (covidal train --gpus N)")
    shard = Shard(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ["LOCAL_RANK"]))
    on_cuda = DeviceChoice(device) is not DeviceChoice.CPU
    if on_cuda:
        check_gpus(shard.local_rank + 1, DeviceChoice.CUDA)
        torch.cuda.set_device(shard.local_rank)
    dist.init_process_group(backend="nccl" if on_cuda else "gloo")
    return shard


def mean_over_ranks(values: Sequence[float], shard: Shard, device: torch.device) -> list[float]:
    """The mean of each value over all processes (every rank must call this); the values themselves for one."""
    if not shard.is_distributed:
        return list(values)
    tensor = torch.tensor(list(values), dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return (tensor / shard.world_size).tolist()
